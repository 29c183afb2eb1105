"""eca_cnn's input (spec §1.2): 6 s centred at 16 kHz → (64, 601) log-Mel per STFT version.

>>> recipe = LogMelRecipe(versions=(8,))
>>> recipe.variant_values(), recipe.feature_shape()
([8], (64, 601))
>>> [(item.stft_version, item.features.shape)
...  for item in recipe.featurize_batch([np.zeros(16000, np.float32)])[0]]
[(8, (64, 601))]
>>> batch = np.stack([recipe.fixed_length(np.ones(16000, np.float32))])
>>> log_mel_spectrograms(LogMelRecipe(), batch).shape   # (versions, batch, n_mels, frames)
(8, 1, 64, 601)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import librosa
import numpy as np
import pydantic
import torch
from pydantic import Field

from ser_ray.features.dsp import (
    OddSample,
    center_pad_or_crop,
    centered_frame_count,
    mel_filterbank,
    power_spectrogram,
    rows_per_call,
)
from ser_ray.features.recipe import FeatureItem, RecipeBase

STFT_VERSIONS: tuple[int, ...] = tuple(range(1, 9))
CUSTOM_VERSION = 0


class LogMelRecipe(RecipeBase):
    """eca_cnn (spec §1.2): 6 s centred at 16 kHz → (64, 601) log-Mel per STFT version.

    Version v (1..8) uses a (10 + 5v) ms window and a 10 ms hop [paper Table II]. The Mel
    defaults imitate MATLAB's `melSpectrogram`, in which the paper's features were made
    [DEFAULT]: periodic Hamming window, FFT length = window length, power spectrum, bands over
    0–8 kHz on MATLAB's default O'Shaughnessy mel scale (`hz2mel`: 2595·log10(1 + f/700), the
    HTK formula; https://www.mathworks.com/help/audio/ref/hz2mel.html) with bandwidth-
    normalised triangles (≈ librosa's Slaney area norm), then ln(S + 1e-6).
    """

    kind: Literal["logmel"] = "logmel"
    sample_rate: int = Field(16000, gt=0, description="16 kHz, IEMOCAP's rate [DEFAULT]")
    versions: tuple[int, ...] = Field(
        STFT_VERSIONS, min_length=1,
        description="STFT versions 1..8 computed from each waveform, one row each [Table II]")
    window_ms: float | None = Field(
        None, gt=0, description="custom window length (ms); when set the recipe has the single "
        "version 0 with this window")
    hop_ms: float = Field(10.0, gt=0, description="hop, 10 ms in every version [Table II]")
    n_mels: int = Field(64, gt=0, description="Mel bands [paper §V-B]")
    n_fft: int | None = Field(
        None, gt=0, description="FFT length; None = window length (MATLAB default) [DEFAULT]")
    duration_s: float = Field(
        6.0, gt=0, description="fixed length: centre zero-pad / centre crop [paper §V-B]")
    odd_sample: OddSample = Field(
        "end", description="where the extra sample of an odd centre pad / crop goes [DEFAULT]")
    window: Literal["hamming", "hann"] = Field(
        "hamming", description="periodic window (MATLAB default: Hamming) [DEFAULT]")
    fmin: float = Field(0.0, ge=0, description="lowest filter edge, Hz [DEFAULT]")
    fmax: float = Field(8000.0, gt=0, description="highest filter edge, Hz [DEFAULT]")
    mel_scale: Literal["htk", "slaney"] = Field(
        "htk", description="MATLAB's default O'Shaughnessy = HTK formula [DEFAULT]")
    mel_norm: Literal["slaney", "none"] = Field(
        "slaney", description="triangle normalisation; Slaney ≈ MATLAB 'bandwidth' [DEFAULT]")
    power: float = Field(
        2.0, gt=0, description="exponent of the STFT magnitude: 2 = power spectrum (MATLAB "
        "default), 1 = magnitude [DEFAULT]")
    log_floor: float = Field(1e-6, gt=0, description="ln(S + floor) [DEFAULT]")
    center: bool = Field(
        True, description="centre-padded framing (n_fft/2 each side): 601 frames in every "
        "version [DEFAULT]; False = MATLAB framing (599..596 frames), which only versions "
        "with equal frame counts may share")
    pad_mode: Literal["constant", "reflect"] = Field(
        "constant", description="centre padding; zeros extend the signal as the 6 s "
        "zero-padding does, reflect would invent mirrored audio [DEFAULT]")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _custom_window_is_version_zero(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("window_ms") is not None \
                and "versions" not in data:
            return {**data, "versions": (CUSTOM_VERSION,)}
        return data

    @pydantic.model_validator(mode="after")
    def _check(self) -> LogMelRecipe:
        if len(set(self.versions)) != len(self.versions):
            raise ValueError(f"versions must not repeat, got {self.versions}")
        if self.window_ms is None and not set(self.versions) <= set(STFT_VERSIONS):
            raise ValueError(f"versions must be drawn from 1..8 (spec Table II), "
                             f"got {self.versions}")
        if self.window_ms is not None and self.versions != (CUSTOM_VERSION,):
            raise ValueError(f"with window_ms set the recipe has the single version 0, "
                             f"got versions={self.versions}")
        if not self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                             f"fmax={self.fmax}, sample_rate={self.sample_rate}")
        if self.hop_length < 1 or min(map(self.window_length, self.versions)) < 2:
            raise ValueError(f"hop_ms and the windows must span at least 1 and 2 samples at "
                             f"{self.sample_rate} Hz, got hop_ms={self.hop_ms}")
        for version in self.versions:
            if self.fft_length(version) < self.window_length(version):
                raise ValueError(f"n_fft={self.n_fft} is shorter than version {version}'s "
                                 f"window of {self.window_length(version)} samples")
            if self.fft_length(version) > self.n_samples:
                raise ValueError(f"duration_s={self.duration_s} is shorter than version "
                                 f"{version}'s FFT of {self.fft_length(version)} samples")
        frames = {version: self.n_frames(version) for version in self.versions}
        if len(set(frames.values())) > 1:
            raise ValueError(f"every version must give the same frame count, got frames per "
                             f"version {frames}; use center=True or a single version")
        return self

    @property
    def n_samples(self) -> int:
        return round(self.duration_s * self.sample_rate)

    @property
    def hop_length(self) -> int:
        return round(self.hop_ms * self.sample_rate / 1000)

    def window_length(self, version: int) -> int:
        """Window samples of a version: (10 + 5v) ms, or window_ms for the custom version 0."""
        window_ms = 10 + 5 * version if self.window_ms is None else self.window_ms
        return round(window_ms * self.sample_rate / 1000)

    def fixed_length(self, waveform: np.ndarray) -> np.ndarray:
        """The waveform centre-padded or cropped to `n_samples` (spec §1.2 step 2)."""
        return center_pad_or_crop(waveform, self.n_samples, self.odd_sample)

    def fft_length(self, version: int) -> int:
        return self.n_fft or self.window_length(version)

    def n_frames(self, version: int) -> int:
        if self.center:
            return centered_frame_count(self.n_samples, self.fft_length(version), self.hop_length)
        return 1 + (self.n_samples - self.fft_length(version)) // self.hop_length

    def variant_values(self) -> list[int | None]:
        return list(self.versions)

    def feature_shape(self) -> tuple[int, ...]:
        return self.n_mels, self.n_frames(self.versions[0])

    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        fixed = np.stack([self.fixed_length(waveform) for waveform in waveforms])
        spectra = log_mel_spectrograms(self, fixed, device)
        return [[FeatureItem(version, None, spectra[index, row])
                 for index, version in enumerate(self.versions)]
                for row in range(len(waveforms))]


@torch.inference_mode()
def log_mel_spectrograms(recipe: LogMelRecipe, waveforms: np.ndarray,
                         device: str = "cpu") -> np.ndarray:
    """log(Mel-filtered |STFT|^power + floor) for every STFT version of the recipe.

    Args:
        recipe: the log-Mel recipe (versions, window lengths, Mel parameters).
        waveforms: (B, recipe.n_samples) float32, already fixed by `recipe.fixed_length`.
        device: torch device the transforms run on.

    Returns:
        float32 array (len(recipe.versions), B, n_mels, frames), versions in recipe order.
    """
    n_mels, n_frames = recipe.feature_shape()
    out = np.empty((len(recipe.versions), len(waveforms), n_mels, n_frames), np.float32)
    device = str(torch.device(device))
    chunk = rows_per_call(device)
    for start in range(0, len(waveforms), chunk):
        signals = torch.from_numpy(waveforms[start:start + chunk]).to(device)
        for index, version in enumerate(recipe.versions):
            n_fft = recipe.fft_length(version)
            spectrogram = power_spectrogram(
                signals, n_fft=n_fft, hop_length=recipe.hop_length,
                win_length=recipe.window_length(version), window=recipe.window,
                center=recipe.center, pad_mode=recipe.pad_mode, power=recipe.power)
            mel = mel_filterbank(recipe.sample_rate, n_fft, recipe.n_mels, recipe.fmin,
                                 recipe.fmax, recipe.mel_scale == "htk",
                                 recipe.mel_norm == "slaney", device)
            log_mel = torch.log(mel(spectrogram) + recipe.log_floor).transpose(1, 2)
            out[index, start:start + len(signals)] = log_mel.cpu().numpy()
    return out


def librosa_log_mel(waveform: np.ndarray, recipe: LogMelRecipe, version: int) -> np.ndarray:
    """The same log-Mel of one waveform (any length; fixed to the recipe's duration here)
    computed by librosa alone: the reference the torch path is held to, and the
    single-process baseline it is timed against.

    >>> recipe = LogMelRecipe(versions=(3,))
    >>> wave = np.ones(16000, np.float32)
    >>> bool(np.allclose(librosa_log_mel(wave, recipe, 3),
    ...                  recipe.featurize_batch([wave])[0][0].features, atol=1e-3))
    True
    """
    mel_spectrum = librosa.feature.melspectrogram(
        y=recipe.fixed_length(waveform), sr=recipe.sample_rate,
        n_fft=recipe.fft_length(version), hop_length=recipe.hop_length,
        win_length=recipe.window_length(version), window=recipe.window, center=recipe.center,
        pad_mode=recipe.pad_mode, power=recipe.power,
        n_mels=recipe.n_mels, fmin=recipe.fmin, fmax=recipe.fmax,
        htk=recipe.mel_scale == "htk", norm="slaney" if recipe.mel_norm == "slaney" else None)
    return np.log(mel_spectrum + recipe.log_floor)
