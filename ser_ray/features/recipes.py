"""Feature recipes: strict, immutable descriptions of how a waveform becomes model input.

A recipe holds every parameter of its computation (each [DEFAULT] of the spec is a field with
that default), validates them once, and turns a batch of waveforms into `FeatureItem`s through
one torch path for CPU and GPU. `kind` discriminates the `FeatureRecipe` union, so a recipe
round-trips through `model_dump(mode="json")` and `parse_recipe`.

>>> recipe = parse_recipe({"kind": "logmel", "versions": [8]})
>>> recipe.variant_values(), recipe.feature_shape()
([8], (64, 601))
>>> [[(item.stft_version, item.features.shape) for item in items]
...  for items in recipe.featurize_batch([np.zeros(16000, np.float32)])]
[[(8, (64, 601))]]
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import Field

from ser_ray.errors import UserError
from ser_ray.features.logmel import (
    OddSample,
    center_pad_or_crop,
    centered_frame_count,
    log_mel_spectrograms,
)
from ser_ray.features.mfcc_segments import segment_mfccs
from ser_ray.features.spectral_vector import spectral_stats_vectors, zcr_mfcc_vectors

STFT_VERSIONS: tuple[int, ...] = tuple(range(1, 9))
CUSTOM_VERSION = 0


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


class RecipeBase(pydantic.BaseModel):
    """What every recipe provides: its sample rate, its variants, its row shape, the transform."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

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


class MfccSegmentsRecipe(RecipeBase):
    """ctmam (spec §2.2): 26 × 57 MFCC per 1.8 s segment, hop 0.2 s, short utterances tiled.

    The authors compute the hop as int((1.8 − 1.6) · 16000), which floating point truncates to
    3199 samples; the spec's 3200 is the default, hop_s = 0.1999375 reproduces 3199.
    """

    kind: Literal["mfcc_segments"] = "mfcc_segments"
    sample_rate: int = Field(16000, gt=0, description="load rate [code]")
    segment_s: float = Field(1.8, gt=0, description="segment length [code]")
    hop_s: float = Field(0.2, gt=0, description="segment hop: 1.8 s with 1.6 s overlap [code]")
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


VectorComponents = Literal["zcr+mfcc", "zcr", "mfcc"]


class ZcrMfccVectorRecipe(UtteranceVectorRecipe):
    """cnn1d_csa (spec §3.2): [ZCR ; MFCC frame-major], zero right-padded to L = 2268.

    The notebooks' other inputs (spec §3.2 item 6) are component choices of the same vector:
    `components="zcr"` is the EMO-DB "without MFCC" input, L = 108 (preset
    `cnn1d_csa-emodb-zcr`), and `components="mfcc"` the TESS input, L = 20 × 103 = 2060
    (preset `cnn1d_csa-tess`). The notebooks right-pad to their longest row, and TESS's rows
    have 103 frames where EMO-DB's have 108; the frame count here is 1 + duration_samples //
    hop_length, so `duration_s=2.39` (any value from 2.369 to 2.391 s at 22,050 Hz, hop 512)
    fixes it at 103 for every corpus.
    """

    kind: Literal["zcr_mfcc_vector"] = "zcr_mfcc_vector"
    components: VectorComponents = Field(
        "zcr+mfcc", description="blocks of the vector, in this order: ZCR + MFCC "
        "(EMO-DB/EMOVO), ZCR only (EMO-DB without MFCC) or MFCC only (TESS) [code]")
    align_components: bool = Field(
        False, description="pad each block to the full frame count, so columns align across "
        "utterances; False = the notebooks' single right-pad [code]")

    @property
    def component_names(self) -> list[str]:
        return self.components.split("+")

    def component_width(self, name: str) -> int:
        """Columns one frame adds to a component's block: 1 for ZCR, n_mfcc for MFCC."""
        return self.n_mfcc if name == "mfcc" else 1

    @property
    def vector_length(self) -> int:
        return self.n_frames * sum(map(self.component_width, self.component_names))

    def feature_shape(self) -> tuple[int, ...]:
        return (self.vector_length,)

    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        return [[FeatureItem(None, None, vector)]
                for vector in zcr_mfcc_vectors(self, waveforms, device)]


class SpectralStatsRecipe(UtteranceVectorRecipe):
    """eca_cnn_bilstm (spec §4.2 [DEFAULT]): time-means of ZCR, RMS, MFCC, Mel power → 150."""

    kind: Literal["spectral_stats"] = "spectral_stats"

    def feature_shape(self) -> tuple[int, ...]:
        return (2 + self.n_mfcc + self.n_mels,)

    def _featurize(self, waveforms: list[np.ndarray], device: str) -> list[list[FeatureItem]]:
        return [[FeatureItem(None, None, vector)]
                for vector in spectral_stats_vectors(self, waveforms, device)]


FeatureRecipe = Annotated[
    LogMelRecipe | MfccSegmentsRecipe | ZcrMfccVectorRecipe | SpectralStatsRecipe,
    Field(discriminator="kind"),
]
RECIPES: dict[str, type[RecipeBase]] = {
    recipe.model_fields["kind"].default: recipe
    for recipe in (LogMelRecipe, MfccSegmentsRecipe, ZcrMfccVectorRecipe, SpectralStatsRecipe)
}
_RECIPE_ADAPTER: pydantic.TypeAdapter[FeatureRecipe] = pydantic.TypeAdapter(FeatureRecipe)


def recipe_names() -> list[str]:
    return sorted(RECIPES)


def parse_recipe(spec: str | Mapping[str, Any] | RecipeBase) -> FeatureRecipe:
    """A recipe from its name (all defaults), a mapping with `kind`, or a recipe (returned as is).

    Raises:
        UserError: unknown kind, unknown field, or a bad value; the message names the field and
            what is allowed.
    """
    if isinstance(spec, RecipeBase):
        return _RECIPE_ADAPTER.validate_python(spec)
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping):
        raise UserError(f"a feature recipe is a name or a mapping, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in RECIPES:
        raise UserError(f"unknown feature recipe {kind!r}; recipes: {', '.join(recipe_names())}")
    try:
        return _RECIPE_ADAPTER.validate_python(dict(spec))
    except pydantic.ValidationError as error:
        raise UserError(_describe_errors(kind, error)) from error


def _describe_errors(kind: str, error: pydantic.ValidationError) -> str:
    fields = ", ".join(name for name in RECIPES[kind].model_fields if name != "kind")
    problems = []
    for detail in error.errors():
        location = detail["loc"][1:] if detail["loc"][:1] == (kind,) else detail["loc"]
        field = ".".join(str(part) for part in location)
        if detail["type"] == "extra_forbidden":
            problems.append(f"unknown field {field!r}; fields of {kind!r}: {fields}")
        elif field:
            problems.append(f"field {field!r} = {detail['input']!r}: {detail['msg']}")
        else:
            problems.append(detail["msg"].removeprefix("Value error, "))
    return f"feature recipe {kind!r}: " + "; ".join(problems)
