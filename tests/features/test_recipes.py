"""Feature recipes: validation, shapes, and numbers against the librosa calls they imitate.

Tolerances are absolute, in each output's own units; the maxima measured on these inputs are
one to two orders of magnitude below them:
  log-Mel (natural log of power)                1e-3   measured ≤ 7e-5
  MFCC (dB-cepstral, values up to ~±700,
        so relative ≈ 1.5e-5 of the largest)    1e-2   measured ≤ 1e-4 segments, ≤ 1.2e-3 vectors
  ZCR (fraction of crossings)                   1e-7   measured 0 (exact counts)
  150-d statistics                              rtol 1e-4 + atol 1e-3, measured rel ≤ 6e-6
"""

from __future__ import annotations

import librosa
import numpy as np
import pandas as pd
import pytest
import torch

from ser_ray.corpus.manifest import MANIFEST_COLUMNS
from ser_ray.errors import UserError
from ser_ray.features import cache
from ser_ray.features.dsp import center_pad_or_crop, mel_filterbank
from ser_ray.features.logmel import LogMelRecipe, librosa_log_mel
from ser_ray.features.mfcc_segments import MfccSegmentsRecipe, tile_to_length
from ser_ray.features.recipe import FeatureItem
from ser_ray.features.recipes import parse_recipe, recipe_names
from ser_ray.features.spectral_stats import SpectralStatsRecipe
from ser_ray.features.zcr_mfcc_vector import ZcrMfccVectorRecipe

LOGMEL_ATOL = 1e-3
MFCC_ATOL = 1e-2
ZCR_ATOL = 1e-7
STATS_RTOL, STATS_ATOL = 1e-4, 1e-3

pytestmark = [
    # Short FFTs leave the lowest HTK bands empty; tiny inputs are shorter than n_fft.
    pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning"),
    pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning"),
]


def speech_like(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A rising chirp plus noise, with a silent stretch so that dB floors are exercised."""
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * (150 + 400 * t) * t) + 0.03 * rng.standard_normal(n)
    wave[n // 3: n // 3 + n // 8] = 0.0
    return wave.astype(np.float32)


# --- parsing and validation ----------------------------------------------------------------

def test_recipe_names_defaults_and_shapes() -> None:
    assert recipe_names() == ["logmel", "mfcc_segments", "spectral_stats", "zcr_mfcc_vector"]
    shapes = {name: parse_recipe(name).feature_shape() for name in recipe_names()}
    assert shapes == {"logmel": (64, 601), "mfcc_segments": (26, 57),
                      "spectral_stats": (150,), "zcr_mfcc_vector": (2268,)}
    assert parse_recipe("logmel").variant_values() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert parse_recipe("mfcc_segments").variant_values() == [None]


@pytest.mark.parametrize("name", recipe_names())
def test_recipe_round_trips_through_json(name: str) -> None:
    recipe = parse_recipe(name)
    assert parse_recipe(recipe.model_dump(mode="json")) == recipe
    assert parse_recipe(recipe) is recipe


def test_unknown_field_is_named_with_the_allowed_fields() -> None:
    with pytest.raises(UserError, match=r"unknown field 'windw'.*window_ms"):
        parse_recipe({"kind": "logmel", "windw": "hann"})


def test_bad_choice_lists_the_allowed_values() -> None:
    with pytest.raises(UserError, match=r"field 'window' = 'rect'.*'hamming' or 'hann'"):
        parse_recipe({"kind": "logmel", "window": "rect"})


def test_unknown_kind_lists_the_recipes() -> None:
    with pytest.raises(UserError, match="recipes: logmel, mfcc_segments, spectral_stats"):
        parse_recipe("log_mel")
    with pytest.raises(UserError, match="unknown feature recipe None"):
        parse_recipe({"versions": [1]})


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "logmel", "versions": [9]}, "drawn from 1..8"),
    ({"kind": "logmel", "versions": [2, 2]}, "must not repeat"),
    ({"kind": "logmel", "versions": []}, "versions"),
    ({"kind": "logmel", "center": False}, r"same frame count.*599"),
    ({"kind": "logmel", "fmax": 9000}, "fmax=9000"),
    ({"kind": "logmel", "n_fft": 256, "versions": [3]}, "shorter than version 3's window"),
    ({"kind": "logmel", "window_ms": 25, "versions": [1]}, "single version 0"),
    ({"kind": "mfcc_segments", "n_mfcc": 200}, "n_mfcc must not exceed n_mels"),
    ({"kind": "mfcc_segments", "top_db": -1}, "top_db"),
    ({"kind": "zcr_mfcc_vector", "frame_length": 2047}, "frame_length must be even"),
    ({"kind": "zcr_mfcc_vector", "components": "chroma"},
     r"field 'components' = 'chroma'.*'zcr\+mfcc', 'zcr' or 'mfcc'"),
])
def test_bad_values_are_user_errors(fields: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_recipe(fields)


def test_custom_window_is_the_single_version_zero() -> None:
    recipe = LogMelRecipe(window_ms=25)
    assert parse_recipe({"kind": "logmel", "window_ms": 25}) == recipe
    assert recipe.variant_values() == [0]
    assert recipe.window_length(0) == 400
    [[item]] = recipe.featurize_batch([speech_like(1.0, 16000)])
    assert item.stft_version == 0 and item.features.shape == (64, 601)


def test_malformed_waveforms_are_rejected() -> None:
    recipe = LogMelRecipe(versions=(1,))
    assert recipe.featurize_batch([]) == []
    with pytest.raises(ValueError, match="waveform 1 must be 1-D"):
        recipe.featurize_batch([np.zeros(10, np.float32), np.zeros((2, 10), np.float32)])
    with pytest.raises(ValueError, match="at least one sample"):
        recipe.featurize_batch([np.zeros(0, np.float32)])


# --- log-Mel (eca_cnn, spec §1.2) ----------------------------------------------------------

@pytest.mark.parametrize(("odd_sample", "padded", "cropped"), [
    # 5 samples → 8: pad 1 before and 2 after; 11 → 6: cut 2 before and 3 after.
    ("end", [0, 1, 2, 3, 4, 5, 0, 0], [2, 3, 4, 5, 6, 7]),
    ("start", [0, 0, 1, 2, 3, 4, 5, 0], [3, 4, 5, 6, 7, 8]),
])
def test_center_pad_or_crop_puts_the_odd_sample_where_asked(
        odd_sample: str, padded: list[int], cropped: list[int]) -> None:
    ramp = np.arange(1, 6, dtype=np.float32)
    assert center_pad_or_crop(ramp, 8, odd_sample).tolist() == padded
    ramp = np.arange(11, dtype=np.float32)
    assert center_pad_or_crop(ramp, 6, odd_sample).tolist() == cropped
    assert center_pad_or_crop(ramp, 11, odd_sample).tolist() == ramp.tolist()


def test_logmel_defaults_put_the_odd_sample_at_the_end_and_use_the_power_spectrum() -> None:
    recipe = LogMelRecipe()
    assert (recipe.odd_sample, recipe.power) == ("end", 2.0)  # spec §1.2 [DEFAULT]s
    ramp = np.arange(1, 6, dtype=np.float32)
    assert center_pad_or_crop(ramp, 8).tolist() == [0, 1, 2, 3, 4, 5, 0, 0]


@pytest.mark.parametrize("seconds", [1 / 16000, 1.0, 6.0, 10.0])
def test_logmel_is_64_by_601_for_every_version_and_length(seconds: float) -> None:
    [items] = LogMelRecipe().featurize_batch([speech_like(seconds, 16000)])
    assert [item.stft_version for item in items] == list(range(1, 9))
    assert all(item.segment_index is None for item in items)
    assert all(item.features.shape == (64, 601) for item in items)
    assert all(item.features.dtype == np.float32 for item in items)


def test_logmel_matches_librosa_for_all_versions_in_a_mixed_batch() -> None:
    recipe = LogMelRecipe()
    waves = [speech_like(4.0, 16000, seed=1), speech_like(7.5, 16000, seed=2)]
    for wave, items in zip(waves, recipe.featurize_batch(waves), strict=True):
        for version, item in zip(recipe.versions, items, strict=True):
            assert item.stft_version == version
            reference = librosa_log_mel(wave, recipe, version)
            np.testing.assert_allclose(item.features, reference, rtol=0, atol=LOGMEL_ATOL)


@pytest.mark.parametrize("fields", [
    {"versions": (5,), "mel_scale": "slaney", "window": "hann", "n_fft": 1024},
    {"versions": (2,), "center": False, "mel_norm": "none", "pad_mode": "reflect"},
    {"versions": (8,), "pad_mode": "reflect", "fmin": 50.0, "fmax": 7600.0, "n_mels": 40},
    {"versions": (4,), "odd_sample": "start", "power": 1.0},
    {"versions": (6,), "power": 1.5},
])
@pytest.mark.parametrize("seconds", [3.0, 7.0])
def test_logmel_knobs_match_librosa(fields: dict, seconds: float) -> None:
    recipe = LogMelRecipe(**fields)
    # One sample over whole seconds: an odd pad (3 s) or crop (7 s). Both sides share
    # `fixed_length`, whose side the doctests of `center_pad_or_crop` pin by hand; here the
    # torch spectrogram is held to librosa's for either setting.
    wave = speech_like(seconds + 1 / 16000, 16000, seed=3)
    [[item]] = recipe.featurize_batch([wave])
    assert item.features.shape == recipe.feature_shape()
    reference = librosa_log_mel(wave, recipe, recipe.versions[0])
    np.testing.assert_allclose(item.features, reference, rtol=0, atol=LOGMEL_ATOL)


@pytest.mark.parametrize(("version", "frames"), [
    (1, 599), (2, 599), (3, 598), (4, 598), (5, 597), (6, 597), (7, 596), (8, 596),
])
def test_matlab_framing_frame_counts(version: int, frames: int) -> None:
    recipe = LogMelRecipe(versions=(version,), center=False)
    assert recipe.feature_shape() == (64, frames)
    [[item]] = recipe.featurize_batch([speech_like(6.0, 16000)])
    assert item.features.shape == (64, frames)


def test_torchaudio_agrees_with_logmel() -> None:
    torchaudio = pytest.importorskip("torchaudio")
    recipe = LogMelRecipe()
    wave = speech_like(6.0, 16000, seed=4)
    [items] = recipe.featurize_batch([wave])
    for version, item in zip(recipe.versions, items, strict=True):
        window = recipe.window_length(version)
        transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000, n_fft=window, win_length=window, hop_length=160, f_min=0.0,
            f_max=8000.0, n_mels=64, window_fn=torch.hamming_window, power=2.0, center=True,
            pad_mode="constant", norm="slaney", mel_scale="htk")
        reference = torch.log(transform(torch.from_numpy(wave)) + 1e-6).numpy()
        np.testing.assert_allclose(item.features, reference, rtol=0, atol=LOGMEL_ATOL)


# --- MFCC segments (ctmam, spec §2.2) ------------------------------------------------------

# The authors' hop: int((1.8 - 1.6) * 16000) truncates 3199.9999999999995 (their process_*.py).
CTMAM_HOP = 3199


@pytest.mark.parametrize(("samples", "segments"), [
    (1, 1), (8000, 2), (28800, 1), (28800 + 3198, 1), (28800 + 3199, 2), (160000, 42),
])
def test_segment_count_tiles_short_utterances(samples: int, segments: int) -> None:
    tiled = max(samples * -(-28800 // samples), samples)
    assert segments == (tiled - 28800) // CTMAM_HOP + 1
    [items] = MfccSegmentsRecipe().featurize_batch([speech_like(samples / 16000, 16000)])
    assert [item.segment_index for item in items] == list(range(segments))
    assert all(item.features.shape == (26, 57) and item.stft_version is None for item in items)


def test_mfcc_segments_match_librosa_0_8_1_defaults() -> None:
    recipe = MfccSegmentsRecipe()
    waves = [speech_like(0.5, 16000, seed=5), speech_like(2.3, 16000, seed=6)]
    for wave, items in zip(waves, recipe.featurize_batch(waves), strict=True):
        tiled = tile_to_length(wave, 28800)
        for index, item in enumerate(items):
            assert item.segment_index == index
            segment = tiled[CTMAM_HOP * index:CTMAM_HOP * index + 28800]
            reference = librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=26, pad_mode="reflect")
            np.testing.assert_allclose(item.features, reference, rtol=0, atol=MFCC_ATOL)


def test_segment_k_starts_at_k_times_3199_samples_as_the_authors_code_steps() -> None:
    assert int((1.8 - 1.6) * 16000) == CTMAM_HOP  # the authors' expression, float arithmetic
    recipe = MfccSegmentsRecipe()
    assert (recipe.hop_samples, MfccSegmentsRecipe(hop_s=0.2).hop_samples) == (CTMAM_HOP, 3200)
    wave = speech_like((28800 + 5 * CTMAM_HOP) / 16000, 16000, seed=3)
    [items] = recipe.featurize_batch([wave])
    assert len(items) == 6
    # A waveform of exactly 28,800 samples is one segment: featurize each expected slice alone.
    starts = [CTMAM_HOP * index for index in range(6)]
    alone = recipe.featurize_batch([wave[start:start + 28800] for start in starts])
    for item, [expected] in zip(items, alone, strict=True):
        np.testing.assert_array_equal(item.features, expected.features)
    # The spec's 3200 would start segment 1 one sample later, which shows in the MFCCs.
    [[shifted]] = recipe.featurize_batch([wave[3200:3200 + 28800]])
    assert np.abs(items[1].features - shifted.features).max() > 1.0


def test_the_hop_is_part_of_the_feature_cache_key() -> None:
    # A cache built with the spec's 0.2 s (3200 samples) is never reused for the 3199 default.
    manifest = pd.DataFrame(columns=list(MANIFEST_COLUMNS))

    def key(recipe: MfccSegmentsRecipe) -> str:
        return cache.cache_key(cache.feature_request(recipe, [], 0, manifest))

    assert MfccSegmentsRecipe().model_dump()["hop_s"] == 0.1999375
    assert key(MfccSegmentsRecipe()) != key(MfccSegmentsRecipe(hop_s=0.2))
    assert key(MfccSegmentsRecipe()) == key(MfccSegmentsRecipe(hop_s=0.1999375))


# --- per-utterance vectors (cnn1d_csa §3.2, eca_cnn_bilstm §4.2) ---------------------------

VECTOR_SECONDS = [4.0, 1.7, 0.3]   # full excerpt, short excerpt, ends before the 0.6 s offset


def librosa_excerpt(wave: np.ndarray, samples: int = 55125) -> np.ndarray:
    start = 13230 if len(wave) > 13230 else 0
    return wave[start:start + samples]


def librosa_components(excerpt: np.ndarray) -> dict[str, np.ndarray]:
    """ZCR per frame and the MFCC flattened frame-major, as the notebooks compute them."""
    return {"zcr": librosa.feature.zero_crossing_rate(excerpt)[0],
            "mfcc": librosa.feature.mfcc(y=excerpt, sr=22050).T.ravel()}


COMPONENT_ATOL = {"zcr": ZCR_ATOL, "mfcc": MFCC_ATOL}
COMPONENT_WIDTH = {"zcr": 1, "mfcc": 20}


@pytest.mark.parametrize(("fields", "length", "full_frames"), [
    ({}, 2268, 108),                                          # EMO-DB / EMOVO
    ({"components": "zcr"}, 108, 108),                        # EMO-DB without MFCC
    ({"components": "mfcc", "duration_s": 2.39}, 2060, 103),  # TESS
])
def test_zcr_mfcc_vector_matches_librosa_in_both_layouts(fields: dict, length: int,
                                                         full_frames: int) -> None:
    waves = [speech_like(s, 22050, seed=7) for s in VECTOR_SECONDS]
    faithful = ZcrMfccVectorRecipe(**fields)
    aligned = ZcrMfccVectorRecipe(**fields, align_components=True)
    assert faithful.feature_shape() == aligned.feature_shape() == (length,)
    for wave, [item], [aligned_item] in zip(waves, faithful.featurize_batch(waves),
                                            aligned.featurize_batch(waves), strict=True):
        reference = librosa_components(librosa_excerpt(wave, faithful.duration_samples))
        frames = len(reference["zcr"])
        for vector, block_frames in [(item.features, frames), (aligned_item.features,
                                                               full_frames)]:
            assert vector.shape == (length,)
            unwritten = np.ones(length, bool)
            start = 0
            for name in faithful.component_names:
                block = slice(start, start + reference[name].size)
                np.testing.assert_allclose(vector[block], reference[name], rtol=0,
                                           atol=COMPONENT_ATOL[name])
                unwritten[block] = False
                start += block_frames * COMPONENT_WIDTH[name]
            assert not vector[unwritten].any()


def test_single_component_vectors_are_the_blocks_of_the_combined_one() -> None:
    waves = [speech_like(s, 22050, seed=9) for s in VECTOR_SECONDS]

    def vectors(components: str) -> list[np.ndarray]:
        recipe = ZcrMfccVectorRecipe(components=components)
        return [item.features for [item] in recipe.featurize_batch(waves)]

    rows = zip(waves, vectors("zcr+mfcc"), vectors("zcr"), vectors("mfcc"), strict=True)
    for wave, both, zcr_only, mfcc_only in rows:
        frames = 1 + len(librosa_excerpt(wave)) // 512
        np.testing.assert_array_equal(zcr_only[:frames], both[:frames])
        np.testing.assert_array_equal(mfcc_only[:20 * frames], both[frames:21 * frames])


def test_spectral_stats_match_librosa_means() -> None:
    waves = [speech_like(s, 22050, seed=8) for s in VECTOR_SECONDS]
    for wave, [item] in zip(waves, SpectralStatsRecipe().featurize_batch(waves), strict=True):
        excerpt = librosa_excerpt(wave)
        reference = np.concatenate([
            librosa.feature.zero_crossing_rate(excerpt).mean(axis=1),
            librosa.feature.rms(y=excerpt).mean(axis=1),
            librosa.feature.mfcc(y=excerpt, sr=22050).mean(axis=1),
            librosa.feature.melspectrogram(y=excerpt, sr=22050).mean(axis=1),
        ])
        assert item.features.shape == (150,)
        np.testing.assert_allclose(item.features, reference, rtol=STATS_RTOL, atol=STATS_ATOL)


# --- every recipe ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", recipe_names())
def test_silence_stays_finite(name: str) -> None:
    recipe = parse_recipe(name)
    [items] = recipe.featurize_batch([np.zeros(recipe.sample_rate * 3, np.float32)])
    assert all(isinstance(item, FeatureItem) and np.isfinite(item.features).all()
               for item in items)
    if name == "logmel":
        assert np.all(items[0].features == np.float32(np.log(1e-6)))


@pytest.mark.parametrize(("n_fft", "n_mels", "htk"),
                         [(240, 64, True), (800, 64, False), (2048, 128, False), (64, 3, False)])
def test_banded_mel_projection_equals_the_dense_matrix(n_fft: int, n_mels: int,
                                                        htk: bool) -> None:
    """Runs of bands multiply only the bins they cover: the same sums as the whole matrix,
    also where short FFTs leave bands empty (HTK at 240) and with fewer bands than runs."""
    matrix = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=n_mels, htk=htk, norm="slaney")
    power = torch.rand(2, 7, n_fft // 2 + 1, generator=torch.Generator().manual_seed(0))
    banded = mel_filterbank(16000, n_fft, n_mels, 0.0, 8000.0, htk, True, "cpu")(power)
    dense = power @ torch.from_numpy(matrix.T.astype(np.float32))
    torch.testing.assert_close(banded, dense, rtol=1e-5, atol=1e-6)
