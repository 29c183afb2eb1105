"""Augmentation: reproducible per utterance, measured effects, strict spec parsing."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from ser_ray.errors import UserError
from ser_ray.features.augment import (
    STEP_KINDS,
    AddNoise,
    apply_augmentation,
    parse_augmentation,
)

SR = 16000
RANDOM_SPECS = ("noise:snr=20", "noise_peak:scale=0.035", "random_gain:max_db=6,min_db=-6",
                "pitch:steps=2+noise_peak:scale=0.035")
ONE_OF_EACH_KIND = ("noise:snr=10", "noise_peak:scale=0.035", "pitch:steps=-3",
                    "speed:factor=1.2", "tempo:factor=0.8", "gain:db=12",
                    "random_gain:max_db=3,min_db=-3")


def tone(frequency: float = 440.0, seconds: float = 1.0, amplitude: float = 0.1) -> np.ndarray:
    time = np.arange(int(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def augment(text: str, waveform: np.ndarray, key: tuple[int | str, ...] = (0, "utt")
            ) -> np.ndarray:
    return apply_augmentation(waveform, SR, parse_augmentation(text), key)


def dominant_frequency(waveform: np.ndarray) -> float:
    """Peak of a Hann-windowed, 8× zero-padded spectrum: well under 1 % error for 1 s tones."""
    size = 8 * len(waveform)
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform)), n=size))
    return float(np.argmax(spectrum)) * SR / size


def test_spec_kinds_are_the_documented_ones() -> None:
    assert set(STEP_KINDS) == {"noise", "noise_peak", "pitch", "speed", "tempo", "gain",
                               "random_gain"}


@pytest.mark.parametrize("text", RANDOM_SPECS)
def test_same_seed_key_gives_identical_copies(text: str) -> None:
    waveform = tone()
    assert np.array_equal(augment(text, waveform), augment(text, waveform.copy()))


@pytest.mark.parametrize("text", RANDOM_SPECS)
def test_other_utterance_or_seed_gives_other_draws(text: str) -> None:
    waveform = tone()
    copies = [augment(text, waveform, key) for key in [(0, "a"), (0, "b"), (1, "a")]]
    for index, first in enumerate(copies):
        for second in copies[index + 1:]:
            assert not np.array_equal(first, second)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 35.0])
def test_noise_reaches_the_target_snr(snr: float) -> None:
    clean = tone()
    noise = augment(f"noise:snr={snr}", clean).astype(np.float64) - clean
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert measured == pytest.approx(snr, abs=0.5)


def test_peak_noise_stays_below_scale_times_peak() -> None:
    clean = tone()
    noise = augment("noise_peak:scale=0.035", clean) - clean
    assert 0 < np.std(noise) <= 0.035 * clean.max()


@pytest.mark.parametrize("steps", [-3.0, 2.0, 5.0])
def test_pitch_shift_moves_the_dominant_frequency_and_keeps_length(steps: float) -> None:
    clean = tone(440.0)
    shifted = augment(f"pitch:steps={steps}", clean)
    assert shifted.shape == clean.shape
    assert dominant_frequency(shifted) == pytest.approx(440.0 * 2 ** (steps / 12), rel=0.03)


@pytest.mark.parametrize("factor", [0.8, 1.1, 1.25])
def test_speed_divides_length_and_multiplies_pitch(factor: float) -> None:
    clean = tone(440.0)
    faster = augment(f"speed:factor={factor}", clean)
    assert abs(len(faster) - len(clean) / factor) <= 1
    assert dominant_frequency(faster) == pytest.approx(440.0 * factor, rel=0.03)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_tempo_divides_length_and_keeps_pitch(factor: float) -> None:
    clean = tone(440.0)
    stretched = augment(f"tempo:factor={factor}", clean)
    assert abs(len(stretched) - len(clean) / factor) <= 1
    assert dominant_frequency(stretched) == pytest.approx(440.0, rel=0.03)


@pytest.mark.parametrize("db", [-12.0, -6.0, 3.0])
def test_gain_scales_by_its_db(db: float) -> None:
    clean = tone()
    np.testing.assert_allclose(augment(f"gain:db={db}", clean), clean * 10 ** (db / 20),
                               rtol=1e-6, atol=1e-9)


def test_gain_past_full_scale_is_peak_limited_without_distortion() -> None:
    clean = tone(amplitude=0.9)
    louder = augment("gain:db=6", clean)
    assert np.max(np.abs(louder)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(louder, clean / np.max(np.abs(clean)), rtol=1e-5, atol=1e-7)


def test_random_gain_is_drawn_in_range_per_utterance() -> None:
    clean = tone()
    ratios = {round(float(np.max(augment("random_gain:max_db=6,min_db=-6", clean, (0, utt)))
                          / clean.max()), 9)
              for utt in "abcdef"}
    assert len(ratios) == 6
    assert all(10 ** (-6 / 20) <= ratio <= 10 ** (6 / 20) for ratio in ratios)


def test_chain_applies_its_steps_left_to_right() -> None:
    clean = tone(440.0)
    chain = parse_augmentation("speed:factor=1.25+pitch:steps=2")
    assert [step.kind for step in chain.steps] == ["speed", "pitch"]
    by_hand = augment("pitch:steps=2", augment("speed:factor=1.25", clean))
    np.testing.assert_array_equal(apply_augmentation(clean, SR, chain, (0, "utt")), by_hand)
    assert dominant_frequency(by_hand) == pytest.approx(440.0 * 1.25 * 2 ** (2 / 12), rel=0.03)


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
@pytest.mark.parametrize("signal", ["zeros", "noise"])
def test_output_is_finite_float32_mono(text: str, signal: str) -> None:
    waveform = (np.zeros(SR) if signal == "zeros"
                else np.random.default_rng(0).standard_normal(SR) * 0.3)  # float64 in
    copy = augment(text, waveform)
    assert copy.dtype == np.float32 and copy.ndim == 1
    assert np.isfinite(copy).all() and np.max(np.abs(copy)) <= 1.0


@pytest.mark.parametrize(("text", "name"), [
    ("noise:snr=20.0", "noise:snr=20"),
    ("speed:factor=1.10", "speed:factor=1.1"),
    ("gain:db=-0", "gain:db=0"),
    ("noise_peak", "noise_peak:scale=0.035"),
    (" random_gain: min_db=-6 , max_db=6.0 ", "random_gain:max_db=6,min_db=-6"),
    ("pitch:steps=2+noise_peak:scale=0.035", "pitch:steps=2+noise_peak:scale=0.035"),
])
def test_canonical_names_are_stable_and_read_back(text: str, name: str) -> None:
    spec = parse_augmentation(text)
    assert spec.name == name
    assert parse_augmentation(name) == spec


def test_params_record_every_step_for_provenance() -> None:
    assert parse_augmentation("pitch:steps=2+noise:snr=20").params() == {
        "steps": [{"kind": "pitch", "steps": 2.0}, {"kind": "noise", "snr": 20.0}]}


@pytest.mark.parametrize(("text", "fragments"), [
    ("noise:snr=abc", ["snr='abc'", "not a number", "noise takes snr", ">= -20", "<= 80"]),
    ("pich:steps=2", ["'pich'", "kinds: gain, noise, noise_peak, pitch"]),
    ("noise:snrr=3", ["unknown parameter 'snrr'", "noise takes snr"]),
    ("noise:snr=200", ["'snr' = 200.0", "less than or equal to 80"]),
    ("noise:snr=inf", ["'snr' = inf", "finite"]),
    ("noise", ["'snr' is required"]),
    ("noise:snr", ["'snr' is not key=value"]),
    ("noise:snr=1,snr=2", ["'snr' is given twice"]),
    ("speed:factor=0", ["'factor' = 0.0", "greater than or equal to 0.5"]),
    ("random_gain:max_db=-6,min_db=6", ["min_db < max_db", "min_db=6, max_db=-6"]),
    ("pitch:steps=2+", ["empty step"]),
])
def test_bad_specs_name_the_problem(text: str, fragments: list[str]) -> None:
    with pytest.raises(UserError) as caught:
        parse_augmentation(text)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_step_models_are_strict() -> None:
    with pytest.raises(pydantic.ValidationError):
        AddNoise(snr="20")  # type: ignore[arg-type]
