"""ctmam's input (spec §2.2): MFCC of overlapping 1.8 s segments, batched on torch.

Reproduces librosa 0.8.1's `librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26)` as the
authors' `process_IEMOCAP.py` called it: Hann-window power STFT (n_fft 2048, hop 512, centre
padding in *reflect* mode — librosa ≥ 0.10 pads with zeros unless told), 128 Slaney Mel bands,
`power_to_db(ref=1, amin=1e-10, top_db=80)` per segment, orthonormal DCT-II, first 26 rows.

>>> [m.shape for m in segment_mfccs(MfccSegmentsRecipe(), [np.ones(8000, np.float32)])]
[(2, 26, 57)]
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pydantic
import torch
from pydantic import Field

from ser_ray.features.dsp import (
    centered_frame_count,
    librosa_mel_power,
    mfcc_from_mel_power,
    power_spectrogram,
    rows_per_call,
)
from ser_ray.features.recipe import FeatureItem, RecipeBase


class MfccSegmentsRecipe(RecipeBase):
    """ctmam (spec §2.2): 26 × 57 MFCC per 1.8 s segment, hop 3199 samples, short utterances
    tiled.

    The hop follows the authors' code, not the spec's 3200: `process_IEMOCAP.py` and
    `process_Emodb.py` step by int((1.8 − 1.6) · 16000), and 1.8 − 1.6 = 0.19999999999999996
    in floating point, so the int() truncates 3199.9999999999995 to 3199. hop_s = 0.2 gives the
    intended 3200.
    """

    kind: Literal["mfcc_segments"] = "mfcc_segments"
    sample_rate: int = Field(16000, gt=0, description="load rate [code]")
    segment_s: float = Field(1.8, gt=0, description="segment length [code]")
    hop_s: float = Field(
        0.1999375, gt=0, description="segment hop, rounded to whole samples: 0.1999375 s = "
        "3199 samples at 16 kHz, as the authors' code computes int((1.8 − 1.6) · 16000) = 3199 "
        "[code process_IEMOCAP.py, process_Emodb.py]; 0.2 s = 3200 is the intended 1.6 s "
        "overlap [spec §2.2]")
    n_mfcc: int = Field(26, gt=0, description="cepstral coefficients kept [code]")
    n_mels: int = Field(128, gt=0, description="Slaney Mel bands (librosa default) [code]")
    n_fft: int = Field(2048, gt=0, description="STFT length, Hann window [librosa 0.8.1]")
    hop_length: int = Field(512, gt=0, description="STFT hop [librosa 0.8.1]")
    pad_mode: Literal["reflect", "constant"] = Field(
        "reflect", description="centre padding; librosa 0.8.1 reflects, ≥ 0.10 pads zeros")
    top_db: float | None = Field(80.0, gt=0, description="power_to_db floor below the "
                                 "segment's peak [librosa]")
    amin: float = Field(1e-10, gt=0, description="power_to_db amin [librosa]")

    @pydantic.model_validator(mode="after")
    def _check(self) -> MfccSegmentsRecipe:
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc must not exceed n_mels, got n_mfcc={self.n_mfcc}, "
                             f"n_mels={self.n_mels}")
        if self.hop_samples < 1 or self.segment_samples <= self.n_fft // 2:
            raise ValueError(f"segments must be longer than n_fft / 2 and the hop at least one "
                             f"sample, got {self.segment_samples} and {self.hop_samples} samples")
        return self

    @property
    def segment_samples(self) -> int:
        return round(self.segment_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)

    def feature_shape(self) -> tuple[int, ...]:
        return self.n_mfcc, centered_frame_count(self.segment_samples, self.n_fft,
                                                 self.hop_length)

    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        return [[FeatureItem(None, index, segment) for index, segment in enumerate(mfccs)]
                for mfccs in segment_mfccs(self, waveforms, device)]


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
