"""MFCC of overlapping 1.8 s segments (ctmam input, spec §2.2), batched on torch.

Reproduces librosa 0.8.1's `librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)` as the
authors' `process_IEMOCAP.py` called it: Hann-window power STFT (n_fft 2048, hop 512, centre
padding in *reflect* mode — librosa ≥ 0.10 pads with zeros unless told), 128 Slaney Mel bands,
`power_to_db(ref=1, amin=1e-10, top_db=80)` per segment, orthonormal DCT-II, first 26 rows.
Also hosts the dB and DCT steps the spectral-vector recipes reuse.

>>> import numpy as np
>>> from ser_ray.features.recipes import MfccSegmentsRecipe
>>> [m.shape for m in segment_mfccs(MfccSegmentsRecipe(), [np.ones(8000, np.float32)])]
[(2, 26, 57)]
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft
import torch

from ser_ray.features.logmel import mel_filterbank, power_spectrogram, rows_per_call

if TYPE_CHECKING:
    from ser_ray.features.recipes import MfccSegmentsRecipe


def tile_to_length(waveform: np.ndarray, length: int) -> np.ndarray:
    """Repeat a waveform shorter than `length` whole, ceil(length / len) times ("loop filling").

    >>> tile_to_length(np.array([1.0, 2.0, 3.0]), 7).tolist()
    [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    """
    if len(waveform) >= length:
        return waveform
    return np.tile(waveform, math.ceil(length / len(waveform)))


def cut_segments(waveform: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Full segments of `length` samples every `hop` samples from 0; the tail is dropped.

    Returns a read-only (n_segments, length) view; `waveform` must hold at least `length`.

    >>> cut_segments(np.arange(7.0), 4, 2).tolist()
    [[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]]
    """
    return np.lib.stride_tricks.sliding_window_view(waveform, length)[::hop]


@lru_cache(maxsize=16)
def dct_matrix(n_mels: int, n_mfcc: int, device: str) -> torch.Tensor:
    """Orthonormal DCT-II over `n_mels` bands, first `n_mfcc` coefficients, transposed for
    frame-major input: (n_mels, n_mfcc)."""
    basis = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]
    return torch.from_numpy(basis.T.astype(np.float32)).to(device)


def power_to_db(power: torch.Tensor, *, amin: float, top_db: float | None,
                valid_frames: torch.Tensor | None = None) -> torch.Tensor:
    """librosa's `power_to_db(ref=1.0)` per row of a frame-major (B, frames, bands) tensor.

    The top_db floor is relative to each row's peak, taken over `valid_frames` (a (B, frames)
    bool mask) when rows are zero-padded past their end; amin keeps silence finite.
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is None:
        return db
    masked = db if valid_frames is None else db.masked_fill(~valid_frames[:, :, None], -torch.inf)
    peak = masked.amax(dim=(1, 2), keepdim=True)
    return torch.maximum(db, peak - top_db)


def librosa_mel_power(power: torch.Tensor, *, sample_rate: int, n_fft: int,
                      n_mels: int) -> torch.Tensor:
    """librosa's default Mel projection (Slaney scale and norm, 0..sr/2) of a power STFT.

    (B, frames, n_fft // 2 + 1) → (B, frames, n_mels).
    """
    mel = mel_filterbank(sample_rate, n_fft, n_mels, 0.0, sample_rate / 2, False, True,
                         str(power.device))
    return mel(power)


def mfcc_from_mel_power(mel_power: torch.Tensor, *, n_mfcc: int, amin: float,
                        top_db: float | None,
                        valid_frames: torch.Tensor | None = None) -> torch.Tensor:
    """dB then orthonormal DCT-II over the bands: (B, frames, n_mels) → (B, frames, n_mfcc)."""
    db = power_to_db(mel_power, amin=amin, top_db=top_db, valid_frames=valid_frames)
    return torch.matmul(db, dct_matrix(mel_power.shape[2], n_mfcc, str(mel_power.device)))


@torch.inference_mode()
def segment_mfccs(recipe: MfccSegmentsRecipe, waveforms: list[np.ndarray],
                  device: str = "cpu") -> list[np.ndarray]:
    """Tile, segment and MFCC every waveform; all segments of the batch share STFT calls.

    Args:
        recipe: the MFCC-segment recipe.
        waveforms: 1-D float32 arrays at recipe.sample_rate, any length ≥ 1.
        device: torch device the transforms run on.

    Returns:
        one float32 (n_segments, n_mfcc, frames) array per waveform, segments in time order.
    """
    length, hop = recipe.segment_samples, recipe.hop_samples
    per_waveform = [cut_segments(tile_to_length(w, length), length, hop) for w in waveforms]
    segments = [segment for views in per_waveform for segment in views]
    device = str(torch.device(device))
    # A 1.8 s segment is a third of a 6 s log-Mel row: take three times the rows per call.
    chunk = 3 * rows_per_call(device)
    features = np.empty((len(segments), *recipe.feature_shape()), np.float32)
    for start in range(0, len(segments), chunk):
        signals = torch.from_numpy(np.stack(segments[start:start + chunk]))
        power = power_spectrogram(signals.to(device), n_fft=recipe.n_fft,
                                  hop_length=recipe.hop_length, win_length=recipe.n_fft,
                                  window="hann", center=True, pad_mode=recipe.pad_mode)
        mel_power = librosa_mel_power(power, sample_rate=recipe.sample_rate,
                                      n_fft=recipe.n_fft, n_mels=recipe.n_mels)
        mfcc = mfcc_from_mel_power(mel_power, n_mfcc=recipe.n_mfcc, amin=recipe.amin,
                                   top_db=recipe.top_db)
        features[start:start + len(signals)] = mfcc.transpose(1, 2).cpu().numpy()
    return np.split(features, np.cumsum([len(views) for views in per_waveform])[:-1])
