"""Signal processing the feature recipes share, batched on torch: framing counts, the power
spectrogram, librosa's Mel filterbank, dB, the DCT, and per-frame ZCR and RMS.

One code path serves CPU and GPU: waveforms are stacked into tensors on a device, and every
filterbank or window is built once per parameter set and device. The numbers match librosa's
(tests hold each piece to it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import librosa
import numpy as np
import scipy.fft
import torch

WindowName = Literal["hamming", "hann"]
PadMode = Literal["constant", "reflect"]
OddSample = Literal["end", "start"]
# librosa.zero_crossings' default: samples this close to 0 count as +0.
ZCR_THRESHOLD = 1e-10


def center_pad_or_crop(waveform: np.ndarray, length: int,
                       odd_sample: OddSample = "end") -> np.ndarray:
    """Fix `waveform` to `length` samples, keeping it centred (spec §1.2 step 2).

    Shorter inputs are zero-padded equally at both ends, longer ones cut equally from both
    ends; when the difference is odd the extra sample is padded / cut at `odd_sample`
    (the end by [DEFAULT]).

    >>> center_pad_or_crop(np.arange(1, 4, dtype=np.float32), 6).tolist()
    [0.0, 1.0, 2.0, 3.0, 0.0, 0.0]
    >>> center_pad_or_crop(np.arange(1, 4, dtype=np.float32), 6, "start").tolist()
    [0.0, 0.0, 1.0, 2.0, 3.0, 0.0]
    >>> center_pad_or_crop(np.arange(6, dtype=np.float32), 3).tolist()
    [1.0, 2.0, 3.0]
    >>> center_pad_or_crop(np.arange(6, dtype=np.float32), 3, "start").tolist()
    [2.0, 3.0, 4.0]
    """
    difference = length - len(waveform)
    before = (abs(difference) + (odd_sample == "start")) // 2
    if difference >= 0:
        return np.pad(waveform, (before, difference - before))
    return waveform[before:before + length]


def centered_frame_count(n_samples: int, n_fft: int, hop_length: int) -> int:
    """Frames of a centre-padded STFT (n_fft // 2 each side), as torch.stft and librosa count.

    >>> centered_frame_count(96000, 800, 160)
    601
    """
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length


def rows_per_call(device: str) -> int:
    """Waveforms per STFT call: on CPU two rows keep the spectrogram in cache (a 64-row call is
    about 3× slower per row); an accelerator wants large calls."""
    return 2 if torch.device(device).type == "cpu" else 64


# On one CPU thread four groups make the projection faster than one dense product: 1.9× for
# 64 bands at n_fft 240, 2.3–2.7× at 400–800, 3.4× for 128 bands at 2048. Eight groups lose
# it again to per-call overhead.
MEL_BAND_GROUPS = 4


# eq=False: the weights are tensors, so field-wise equality would be ambiguous.
@dataclass(frozen=True, eq=False)
class MelFilterbank:
    """librosa's triangular Mel matrix, applied to frame-major power, (..., bins) → (..., bands).

    A band is non-zero over a few neighbouring FFT bins only, so one dense (bins × bands)
    product mostly multiplies zeros. The bands are cut into `MEL_BAND_GROUPS` runs and each run
    multiplies just the bins its triangles cover; the weights left out are exactly zero.
    """

    pieces: tuple[tuple[int, int, torch.Tensor], ...]
    """(first bin, end bin, weights (end − first, bands of the run)) per run of bands."""

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, device: str) -> MelFilterbank:
        """From librosa's (bands, bins) matrix."""
        weights = matrix.T.astype(np.float32)
        edges = np.linspace(0, weights.shape[1], min(MEL_BAND_GROUPS, weights.shape[1]) + 1)
        pieces = []
        for first_band, end_band in zip(edges[:-1].astype(int), edges[1:].astype(int)):
            bins = np.flatnonzero(weights[:, first_band:end_band].any(axis=1))
            # A run of empty bands (too few bins at a short FFT) still needs one zero row.
            first, end = (bins[0], bins[-1] + 1) if bins.size else (0, 1)
            block = np.ascontiguousarray(weights[first:end, first_band:end_band])
            pieces.append((int(first), int(end), torch.from_numpy(block).to(device)))
        return cls(tuple(pieces))

    def __call__(self, power: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.matmul(power[..., first:end], weights)
                          for first, end, weights in self.pieces], dim=-1)


@lru_cache(maxsize=64)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                   htk: bool, slaney_norm: bool, device: str) -> MelFilterbank:
    """librosa's Mel matrix for these parameters on `device`, built once per process.

    Short FFTs leave the lowest bands without an FFT bin (e.g. 64 HTK bands at n_fft 240);
    those bands are all-zero, as in any triangular-filter implementation, and end up at the
    log floor, so librosa's warning about them is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Empty filters detected")
        matrix = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                     fmax=fmax, htk=htk, norm="slaney" if slaney_norm else None)
    return MelFilterbank.from_matrix(matrix, device)


@lru_cache(maxsize=64)
def analysis_window(name: WindowName, length: int, device: str) -> torch.Tensor:
    """Periodic (DFT-even) window of `length` samples: MATLAB's `hamming(W, 'periodic')` and
    scipy's `get_window(name, W, fftbins=True)`, which librosa uses."""
    make = torch.hamming_window if name == "hamming" else torch.hann_window
    return make(length, periodic=True, dtype=torch.float32, device=device)


def power_spectrogram(signals: torch.Tensor, *, n_fft: int, hop_length: int, win_length: int,
                      window: WindowName, center: bool, pad_mode: PadMode,
                      power: float = 2.0) -> torch.Tensor:
    """|STFT|^power of each row (2: power, 1: magnitude), frame-major:
    (B, L) → (B, frames, n_fft // 2 + 1).

    torch.stft stores its (B, bins, frames) result frame-major, so staying in that layout keeps
    the later passes over memory contiguous (≈ 1.7× faster on CPU). A window shorter than n_fft
    is zero-padded to n_fft around its centre, as in librosa.
    """
    spectrum = torch.stft(signals, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                          window=analysis_window(window, win_length, str(signals.device)),
                          center=center, pad_mode=pad_mode, return_complex=True).transpose(1, 2)
    squared = spectrum.real.square() + spectrum.imag.square()
    return squared if power == 2 else squared.pow(power / 2)


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
