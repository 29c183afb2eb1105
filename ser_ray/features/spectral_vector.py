"""Per-utterance feature vectors from frame descriptors, batched on torch.

Two recipes share the framing (2.5 s from 0.6 s at 22,050 Hz; frame 2048, hop 512; librosa
0.10 defaults otherwise):

* cnn1d_csa (spec §3.2): [ZCR per frame ; MFCC (20) flattened frame-major], right-padded
  with zeros to L = 21 · 108 = 2268; either block alone for the ZCR-only and MFCC-only inputs.
* eca_cnn_bilstm (spec §4.2): time-means of ZCR (1), RMS (1), MFCC (20), Mel power (128) → 150.

Crops of different lengths share one batch: each is zero-padded to the full duration, which
leaves its own frames unchanged (librosa's centre padding is zeros too; ZCR's edge padding is
applied per crop first), and a frame mask keeps padded frames out of the dB peak and the means.

>>> import numpy as np
>>> from ser_ray.features.recipes import SpectralStatsRecipe, ZcrMfccVectorRecipe
>>> waves = [np.ones(22050, np.float32), np.ones(80000, np.float32)]
>>> zcr_mfcc_vectors(ZcrMfccVectorRecipe(), waves).shape
(2, 2268)
>>> spectral_stats_vectors(SpectralStatsRecipe(), waves).shape
(2, 150)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ser_ray.features.logmel import power_spectrogram, rows_per_call
from ser_ray.features.mfcc_segments import librosa_mel_power, mfcc_from_mel_power

if TYPE_CHECKING:
    from ser_ray.features.recipes import (
        SpectralStatsRecipe,
        UtteranceVectorRecipe,
        ZcrMfccVectorRecipe,
    )

# librosa.zero_crossings' default: samples this close to 0 count as +0.
ZCR_THRESHOLD = 1e-10


def offset_crop(waveform: np.ndarray, offset: int, length: int) -> np.ndarray:
    """`length` samples from `offset`, as `librosa.load(offset=..., duration=...)` reads.

    An utterance that ends before the offset is read from its start instead: librosa would
    return nothing and the authors' notebooks would fail on it.

    >>> offset_crop(np.arange(10.0), 2, 3).tolist(), offset_crop(np.arange(2.0), 2, 3).tolist()
    ([2.0, 3.0, 4.0], [0.0, 1.0])
    """
    start = offset if len(waveform) > offset else 0
    return waveform[start:start + length]


@dataclass(frozen=True)
class FrameDescriptors:
    """Frame-wise descriptors of a batch of crops; frames past a crop's end are zero.

    Shapes: frame_counts (B,), zcr and rms (B, T), and frame-major mfcc (B, T, n_mfcc) and
    mel_power (B, T, n_mels), with T the frame count of a full-length crop.
    """

    frame_counts: np.ndarray
    zcr: torch.Tensor
    rms: torch.Tensor
    mfcc: torch.Tensor
    mel_power: torch.Tensor


def frame_descriptors(recipe: UtteranceVectorRecipe, crops: list[np.ndarray],
                      device: str) -> FrameDescriptors:
    """ZCR, RMS, MFCC and Mel power of each crop, as librosa computes them one crop at a time."""
    frame, hop, full = recipe.frame_length, recipe.hop_length, recipe.duration_samples
    half = frame // 2
    edge_padded = np.zeros((len(crops), full + 2 * half), np.float32)
    zero_padded = np.zeros((len(crops), full), np.float32)
    for row, crop in enumerate(crops):
        edge_padded[row, :len(crop) + 2 * half] = np.pad(crop, half, mode="edge")
        zero_padded[row, :len(crop)] = crop
    frame_counts = np.array([1 + len(crop) // hop for crop in crops])
    valid = (torch.arange(recipe.n_frames, device=device)[None, :]
             < torch.from_numpy(frame_counts).to(device)[:, None])

    signals = torch.from_numpy(zero_padded).to(device)
    mel_power = librosa_mel_power(
        power_spectrogram(signals, n_fft=frame, hop_length=hop, win_length=frame,
                          window="hann", center=True, pad_mode="constant"),
        sample_rate=recipe.sample_rate, n_fft=frame, n_mels=recipe.n_mels)
    mfcc = mfcc_from_mel_power(mel_power, n_mfcc=recipe.n_mfcc, amin=recipe.amin,
                               top_db=recipe.top_db, valid_frames=valid)
    frames_mask = valid.to(torch.float32)
    return FrameDescriptors(
        frame_counts=frame_counts,
        zcr=zero_crossing_rate(torch.from_numpy(edge_padded).to(device), frame, hop)
        * frames_mask,
        rms=frame_rms(signals, frame, hop) * frames_mask,
        mfcc=mfcc * frames_mask[:, :, None],
        mel_power=mel_power * frames_mask[:, :, None],
    )


def zero_crossing_rate(padded: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """librosa's zero_crossing_rate of already edge-padded rows: (B, L) → (B, frames).

    Within a frame librosa counts sign changes between its frame_length − 1 neighbouring
    pairs and divides by frame_length.
    """
    signs = torch.signbit(torch.where(padded.abs() <= ZCR_THRESHOLD, 0.0, padded))
    crossings = (signs[:, 1:] != signs[:, :-1]).to(torch.float32)
    return crossings.unfold(1, frame_length - 1, hop_length).sum(-1) / frame_length


def frame_rms(signals: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """librosa's rms (centre zero-padding): (B, L) → (B, frames)."""
    half = frame_length // 2
    centred = torch.nn.functional.pad(signals, (half, half))
    return centred.square().unfold(1, frame_length, hop_length).mean(-1).sqrt()


def _batched_descriptors(recipe: UtteranceVectorRecipe, waveforms: list[np.ndarray],
                         device: str) -> list[FrameDescriptors]:
    crops = [offset_crop(w, recipe.offset_samples, recipe.duration_samples) for w in waveforms]
    device = str(torch.device(device))
    chunk = rows_per_call(device)
    return [frame_descriptors(recipe, crops[start:start + chunk], device)
            for start in range(0, len(crops), chunk)]


@torch.inference_mode()
def zcr_mfcc_vectors(recipe: ZcrMfccVectorRecipe, waveforms: list[np.ndarray],
                     device: str = "cpu") -> np.ndarray:
    """cnn1d_csa vectors (spec §3.2): (B, recipe.vector_length) float32.

    Faithful layout: the chosen blocks back to back, [ZCR (T_i) ; MFCC frame-major
    (n_mfcc · T_i)] by default, then zeros, so a short crop's MFCC block starts earlier.
    `align_components` pads each block to the full frame count first, so every position means
    the same thing in every row.
    """
    rows: list[np.ndarray] = []
    for descriptors in _batched_descriptors(recipe, waveforms, device):
        # Every block as (B, T, columns per frame), flattened frame-major below.
        blocks = {"zcr": descriptors.zcr[:, :, None].cpu().numpy(),
                  "mfcc": descriptors.mfcc.cpu().numpy()}
        for row, count in enumerate(descriptors.frame_counts):
            vector = np.zeros(recipe.vector_length, np.float32)
            block_frames = recipe.n_frames if recipe.align_components else count
            start = 0
            for name in recipe.component_names:
                block = blocks[name][row, :count].ravel()
                vector[start:start + block.size] = block
                start += block_frames * recipe.component_width(name)
            rows.append(vector)
    return np.stack(rows)


@torch.inference_mode()
def spectral_stats_vectors(recipe: SpectralStatsRecipe, waveforms: list[np.ndarray],
                           device: str = "cpu") -> np.ndarray:
    """eca_cnn_bilstm vectors (spec §4.2): time-means [ZCR, RMS, MFCC, Mel power], (B, 150)."""
    chunks: list[np.ndarray] = []
    for descriptors in _batched_descriptors(recipe, waveforms, device):
        counts = torch.from_numpy(descriptors.frame_counts).to(descriptors.zcr)
        means = [descriptors.zcr.sum(-1, keepdim=True), descriptors.rms.sum(-1, keepdim=True),
                 descriptors.mfcc.sum(1), descriptors.mel_power.sum(1)]
        chunks.append((torch.cat(means, dim=1) / counts[:, None]).cpu().numpy())
    return np.concatenate(chunks)
