"""Framing the per-utterance vector recipes share: 2.5 s read from 0.6 s at 22,050 Hz;
frame 2048, hop 512; librosa 0.10 defaults otherwise.

Crops of different lengths share one batch: each is zero-padded to the full duration, which
leaves its own frames unchanged (librosa's centre padding is zeros too; ZCR's edge padding is
applied per crop first), and a frame mask keeps padded frames out of the dB peak and the means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydantic
import torch
from pydantic import Field

from ser_ray.features.dsp import (
    frame_rms,
    librosa_mel_power,
    mfcc_from_mel_power,
    power_spectrogram,
    rows_per_call,
    zero_crossing_rate,
)
from ser_ray.features.recipe import RecipeBase


class UtteranceVectorRecipe(RecipeBase):
    """Framing shared by the per-utterance vectors: 2.5 s read from 0.6 s at 22,050 Hz, frame
    2048, hop 512, librosa 0.10 defaults (20 MFCC from 128 Slaney bands, centre zero-padding;
    ZCR pads by edge values)."""

    sample_rate: int = Field(22050, gt=0, description="librosa.load default rate [code]")
    offset_s: float = Field(0.6, ge=0, description="start of the excerpt [code]")
    duration_s: float = Field(2.5, gt=0, description="excerpt length [code]")
    frame_length: int = Field(2048, gt=0, description="ZCR/RMS frame = STFT length [librosa]")
    hop_length: int = Field(512, gt=0, description="frame hop [librosa]")
    n_mfcc: int = Field(20, gt=0, description="MFCC coefficients [librosa default]")
    n_mels: int = Field(128, gt=0, description="Mel bands [librosa default]")
    top_db: float | None = Field(80.0, gt=0, description="power_to_db floor below the "
                                 "excerpt's peak [librosa]")
    amin: float = Field(1e-10, gt=0, description="power_to_db amin [librosa]")

    @pydantic.model_validator(mode="after")
    def _check_framing(self) -> UtteranceVectorRecipe:
        # An even frame gives ZCR (edge-padded) and STFT frames the same count, 1 + n // hop.
        if self.frame_length % 2:
            raise ValueError(f"frame_length must be even, got {self.frame_length}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc must not exceed n_mels, got n_mfcc={self.n_mfcc}, "
                             f"n_mels={self.n_mels}")
        if self.duration_samples < 1:
            raise ValueError(f"duration_s must span at least one sample, got {self.duration_s}")
        return self

    @property
    def offset_samples(self) -> int:
        return round(self.offset_s * self.sample_rate)

    @property
    def duration_samples(self) -> int:
        return round(self.duration_s * self.sample_rate)

    @property
    def n_frames(self) -> int:
        """Frames of a full-length excerpt (108 by default)."""
        return 1 + self.duration_samples // self.hop_length


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


def batched_descriptors(recipe: UtteranceVectorRecipe, waveforms: list[np.ndarray],
                         device: str) -> list[FrameDescriptors]:
    crops = [offset_crop(w, recipe.offset_samples, recipe.duration_samples) for w in waveforms]
    device = str(torch.device(device))
    chunk = rows_per_call(device)
    return [frame_descriptors(recipe, crops[start:start + chunk], device)
            for start in range(0, len(crops), chunk)]
