"""Waveform augmentation: extra training copies of an utterance, reproducible per utterance.

Specs arrive as command-line text — `noise:snr=20`, `pitch:steps=2`, `speed:factor=1.1`,
`gain:db=-6`, `noise_peak:scale=0.035` — and chains of them joined by `+`, applied left to
right (`pitch:steps=2+noise_peak:scale=0.035` is the cnn1d_csa "pitch shift then noise"
copy, spec models.md §3.2). Each kind is one strict pydantic model, so a typo or an
out-of-range value stops the run before any audio is read, naming what is allowed.

Every random draw comes from a generator seeded by (global seed, utterance id, spec name):
a copy does not depend on which Ray worker made it or in what order, and a rebuilt cache
holds the same waveforms. The signal processing is numpy, librosa and soxr called directly;
audiomentations draws from numpy's global random state, which is shared by every task in a
worker process, so it is not used.

Output is always mono float32 and finite. Gain (or noise on a loud signal) can push samples
past ±1, which a later WAV write or a model trained on [-1, 1] input would clip; only then is
the whole copy rescaled to a peak of exactly 1, so quieter copies keep their level.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import librosa
import numpy as np
import pydantic
import soxr

from ser_ray.errors import UserError
from ser_ray.schema import StrictModel, describe_validation_error

CHAIN_SEPARATOR = "+"
_BOUND_SYMBOLS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


class AugmentationStep(StrictModel):
    """One transformation of a waveform; subclasses declare `kind` and their parameters."""

    model_config = pydantic.ConfigDict(strict=True, allow_inf_nan=False)
    kind: ClassVar[str]

    @property
    def name(self) -> str:
        """Canonical text: parameters sorted, numbers in their shortest exact form."""
        values = self.model_dump()
        return f"{self.kind}:" + ",".join(
            f"{key}={_format_number(values[key])}" for key in sorted(values))

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.model_dump()}

    @abstractmethod
    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        """The transformed (samples,) waveform; all randomness is drawn from `rng`."""


class AddNoise(AugmentationStep):
    """White Gaussian noise whose power is the signal's power lowered by `snr` dB."""

    kind: ClassVar[str] = "noise"
    snr: float = pydantic.Field(ge=-20, le=80, description="signal-to-noise ratio in dB")

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        signal_power = float(np.mean(np.square(waveform, dtype=np.float64)))
        # A silent signal gets silent noise: power 0 keeps the copy finite (no 0/0).
        noise_std = np.sqrt(signal_power / 10.0 ** (self.snr / 10.0))
        return waveform + noise_std * rng.standard_normal(waveform.shape[0])


class AddPeakNoise(AugmentationStep):
    """cnn1d_csa noise: x + a·N(0,1) with a = scale·U(0,1)·max(x) (spec models.md §3.2).

    max(x), not max|x|, is what the recipe's code computes (`np.amax`); the noise is
    symmetric, so only a signal that is negative everywhere would see a different level.
    """

    kind: ClassVar[str] = "noise_peak"
    scale: float = pydantic.Field(default=0.035, gt=0, le=1,
                                  description="noise amplitude as a fraction of the peak")

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        amplitude = self.scale * rng.uniform() * float(np.max(waveform))
        return waveform + amplitude * rng.standard_normal(waveform.shape[0])


class PitchShift(AugmentationStep):
    """librosa.effects.pitch_shift (phase vocoder + soxr resampling): duration preserved."""

    kind: ClassVar[str] = "pitch"
    steps: float = pydantic.Field(ge=-12, le=12, description="shift in semitones")

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        return librosa.effects.pitch_shift(waveform, sr=sample_rate, n_steps=self.steps)


class Speed(AugmentationStep):
    """Play faster or slower, like a tape: duration ÷ factor and pitch × factor (soxr)."""

    kind: ClassVar[str] = "speed"
    factor: float = pydantic.Field(ge=0.5, le=2, description="playback speed ratio")

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        return soxr.resample(waveform, sample_rate * self.factor, sample_rate, quality="HQ")


class Tempo(AugmentationStep):
    """librosa.effects.time_stretch: duration ÷ factor, pitch unchanged."""

    kind: ClassVar[str] = "tempo"
    factor: float = pydantic.Field(ge=0.5, le=2, description="tempo ratio")

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        return librosa.effects.time_stretch(waveform, rate=self.factor)


class Gain(AugmentationStep):
    """A fixed level change in dB."""

    kind: ClassVar[str] = "gain"
    db: float = pydantic.Field(ge=-40, le=40, description="gain in dB")

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        return waveform * np.float32(10.0 ** (self.db / 20.0))


class RandomGain(AugmentationStep):
    """A level change drawn uniformly in [min_db, max_db] dB, once per utterance."""

    kind: ClassVar[str] = "random_gain"
    min_db: float = pydantic.Field(ge=-40, le=40, description="lowest gain in dB")
    max_db: float = pydantic.Field(ge=-40, le=40, description="highest gain in dB")

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> RandomGain:
        if self.min_db >= self.max_db:
            raise ValueError(f"min_db < max_db must hold, but got "
                             f"min_db={_format_number(self.min_db)}, "
                             f"max_db={_format_number(self.max_db)}")
        return self

    def apply(self, waveform: np.ndarray, sample_rate: int,
              rng: np.random.Generator) -> np.ndarray:
        db = rng.uniform(self.min_db, self.max_db)
        return waveform * np.float32(10.0 ** (db / 20.0))


STEP_KINDS: Mapping[str, type[AugmentationStep]] = {
    cls.kind: cls
    for cls in (AddNoise, AddPeakNoise, PitchShift, Speed, Tempo, Gain, RandomGain)
}


@dataclass(frozen=True)
class AugmentationSpec:
    """One augmented copy: its steps, applied left to right.

    >>> spec = parse_augmentation("pitch:steps=2.0+noise_peak")
    >>> spec.name
    'pitch:steps=2+noise_peak:scale=0.035'
    >>> spec.params()
    {'steps': [{'kind': 'pitch', 'steps': 2.0}, {'kind': 'noise_peak', 'scale': 0.035}]}
    """

    steps: tuple[AugmentationStep, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise UserError("an augmentation needs at least one step")

    @property
    def name(self) -> str:
        """The `augmentation` column value of the copy's rows."""
        return CHAIN_SEPARATOR.join(step.name for step in self.steps)

    def params(self) -> dict[str, Any]:
        """Provenance: every step's kind and parameters, in order."""
        return {"steps": [step.params() for step in self.steps]}


def parse_augmentation(text: str) -> AugmentationSpec:
    """`kind:key=value,key=value`, or such steps joined by `+` → a validated spec."""
    parts = text.strip().split(CHAIN_SEPARATOR)
    if not all(part.strip() for part in parts):
        raise UserError(f"augmentation {text!r} has an empty step; write e.g. noise:snr=20 or "
                        f"pitch:steps=2+noise_peak:scale=0.035")
    return AugmentationSpec(tuple(_parse_step(part.strip(), text) for part in parts))


def apply_augmentation(waveform: np.ndarray, sample_rate: int,
                       spec: AugmentationSpec | AugmentationStep,
                       seed_key: tuple[int | str, ...]) -> np.ndarray:
    """The augmented copy of a mono waveform, identical for identical inputs.

    Args:
        waveform: (samples,) mono audio.
        sample_rate: its rate in Hz.
        spec: a parsed spec, or a single step.
        seed_key: (global seed, utterance id); with the spec name it seeds every draw.

    >>> wave = np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    >>> copy = apply_augmentation(wave, 16000, parse_augmentation("speed:factor=2"), (0, "u1"))
    >>> copy.shape, copy.dtype
    ((8000,), dtype('float32'))
    """
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"expected a non-empty mono (samples,) waveform, got shape "
                         f"{waveform.shape}")
    chain = spec if isinstance(spec, AugmentationSpec) else AugmentationSpec((spec,))
    rng = _generator(seed_key, chain.name)
    augmented = np.asarray(waveform, dtype=np.float32)
    for step in chain.steps:
        augmented = np.asarray(step.apply(augmented, sample_rate, rng), dtype=np.float32)
    return _limit_peak(augmented)


def _parse_step(step_text: str, text: str) -> AugmentationStep:
    kind, _, arguments = step_text.partition(":")
    kind = kind.strip()
    if kind not in STEP_KINDS:
        raise UserError(f"unknown augmentation kind {kind!r} in {text!r}; kinds: "
                        f"{', '.join(sorted(STEP_KINDS))}")
    cls = STEP_KINDS[kind]
    values: dict[str, float] = {}
    for item in filter(None, (piece.strip() for piece in arguments.split(","))):
        key, equals, value = (piece.strip() for piece in item.partition("="))
        if not equals:
            raise UserError(f"{kind}: {item!r} is not key=value; {_parameter_help(cls)}")
        if key not in cls.model_fields:
            raise UserError(f"{kind}: unknown parameter {key!r}; {_parameter_help(cls)}")
        if key in values:
            raise UserError(f"{kind}: parameter {key!r} is given twice in {text!r}")
        try:
            values[key] = float(value)
        except ValueError:
            raise UserError(f"{kind}: {key}={value!r} is not a number; "
                            f"{_parameter_help(cls)}") from None
    try:
        return cls.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, cls, kind, noun="parameter")
                        + f"; {_parameter_help(cls)}") from None


def _parameter_help(cls: type[AugmentationStep]) -> str:
    """What a kind accepts, read off its fields so the message cannot drift from the checks."""
    described = []
    for name, field in cls.model_fields.items():
        details = [field.description or ""]
        details += [f"{symbol} {_format_number(getattr(bound, attribute))}"
                    for bound in field.metadata
                    for attribute, symbol in _BOUND_SYMBOLS if hasattr(bound, attribute)]
        if not field.is_required():
            details.append(f"default {_format_number(field.default)}")
        described.append(f"{name} ({', '.join(details)})")
    return f"{cls.kind} takes " + "; ".join(described)


def _format_number(value: Any) -> str:
    """Shortest text that reads back as the same float: 20.0 → '20', 0.035 → '0.035'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    text = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return text.removesuffix(".0")


def _generator(seed_key: tuple[int | str, ...], spec_name: str) -> np.random.Generator:
    # hashlib, not hash(): Python salts str hashes per process, and Ray workers are processes.
    key = "\x1f".join(str(part) for part in (*seed_key, spec_name))
    entropy = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest(), "big")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _limit_peak(waveform: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(waveform), initial=0.0))
    if peak > 1.0:
        return (waveform / np.float32(peak)).astype(np.float32)
    return waveform
