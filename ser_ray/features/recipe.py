"""What every feature recipe is: a strict, immutable description of how a waveform becomes
model input, and the rows it yields.

A recipe holds every parameter of its computation (each [DEFAULT] of the spec is a field with
that default), validates them once, and turns a batch of waveforms into `FeatureItem`s through
one torch path for CPU and GPU. One recipe per file; `ser_ray.features.recipes` registers them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser_ray.schema import StrictModel


# eq=False: features are arrays, so field-wise equality would be ambiguous.
@dataclass(frozen=True, eq=False)
class FeatureItem:
    """One model-input row cut from one waveform.

    Attributes:
        stft_version: log-Mel STFT version of the row; None for the other recipes.
        segment_index: position of an MFCC segment in its utterance (0, 1, ...); None for
            whole-utterance rows.
        features: float32 array of shape `recipe.feature_shape()`.
    """

    stft_version: int | None
    segment_index: int | None
    features: np.ndarray


class RecipeBase(StrictModel):
    """What every recipe provides: its sample rate, its variants, its row shape, the transform."""

    kind: str
    sample_rate: int

    def variant_values(self) -> list[int | None]:
        """The `stft_version` values of the rows each waveform (or segment) yields."""
        return [None]

    @abstractmethod
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one row's features."""

    def featurize_batch(self, waveforms: Sequence[np.ndarray],
                        device: str = "cpu") -> list[list[FeatureItem]]:
        """Rows for each waveform (float32 mono at `sample_rate`, any length ≥ 1 sample).

        Returns one list per input waveform, in input order. All cropping, padding, tiling and
        segmenting the recipe defines happens here; the caller passes whole utterances.
        """
        checked = [_mono_float32(waveform, index) for index, waveform in enumerate(waveforms)]
        return self._featurize(checked, device) if checked else []

    @abstractmethod
    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        """featurize_batch on validated, non-empty input."""


def _mono_float32(waveform: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(waveform, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"waveform {index} must be 1-D with at least one sample, "
                         f"got shape {array.shape}")
    return array
