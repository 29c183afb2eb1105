"""The feature cache without Ray: what moves the key, and what counts as a complete cache."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ser_ray.corpus.manifest import MANIFEST_COLUMNS
from ser_ray.errors import UserError
from ser_ray.features import cache, parse_augmentation
from ser_ray.features.logmel import LogMelRecipe
from ser_ray.features.mfcc_segments import MfccSegmentsRecipe
from ser_ray.features.recipe import RecipeBase
from ser_ray.features.spectral_stats import SpectralStatsRecipe
from ser_ray.features.zcr_mfcc_vector import ZcrMfccVectorRecipe

# One valid alternative value per field. A single version keeps `center=False` valid on its
# own (several versions would then need equal frame counts).
LOGMEL_BASE = LogMelRecipe(versions=(8,))
OTHER_VALUE: dict[type[RecipeBase], dict[str, Any]] = {
    LogMelRecipe: {
        "sample_rate": 22050, "versions": (7,), "window_ms": 25.0, "hop_ms": 12.5,
        "n_mels": 40, "n_fft": 1024, "duration_s": 5.0, "odd_sample": "start",
        "window": "hann", "fmin": 50.0, "fmax": 7600.0, "mel_scale": "slaney",
        "mel_norm": "none", "power": 1.0, "log_floor": 1e-5, "center": False,
        "pad_mode": "reflect",
    },
    MfccSegmentsRecipe: {
        "sample_rate": 22050, "segment_s": 2.0, "hop_s": 0.2, "n_mfcc": 20,
        "n_mels": 64, "n_fft": 1024, "hop_length": 256, "pad_mode": "constant",
        "top_db": None, "amin": 1e-9,
    },
    ZcrMfccVectorRecipe: {
        "sample_rate": 16000, "offset_s": 0.5, "duration_s": 2.0, "frame_length": 1024,
        "hop_length": 256, "n_mfcc": 13, "n_mels": 64, "top_db": 60.0, "amin": 1e-9,
        "align_components": True, "components": "mfcc",
    },
    SpectralStatsRecipe: {
        "sample_rate": 16000, "offset_s": 0.5, "duration_s": 2.0, "frame_length": 1024,
        "hop_length": 256, "n_mfcc": 13, "n_mels": 64, "top_db": 60.0, "amin": 1e-9,
    },
}
# A custom window is the recipe's single version 0, so that field cannot change alone.
GOES_WITH = {"window_ms": {"versions": (0,)}}
BASE_RECIPES = {LogMelRecipe: LOGMEL_BASE, MfccSegmentsRecipe: MfccSegmentsRecipe(),
                ZcrMfccVectorRecipe: ZcrMfccVectorRecipe(),
                SpectralStatsRecipe: SpectralStatsRecipe()}


def tiny_manifest() -> pd.DataFrame:
    rows = [
        {"utterance_id": f"u{index}", "path": f"/corpus/u{index}.wav", "corpus": "tiny",
         "speaker": f"s{index % 2}", "gender": "F", "session": "1", "raw_label": "neu",
         "label": "neutral", "duration_s": 1.5, "sample_rate": 16000, "channels": 1,
         "improvised": True}
        for index in range(3)
    ]
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


def key_of(recipe: RecipeBase = LOGMEL_BASE, augmentations: tuple[str, ...] = (),
           seed: int = 0, manifest: pd.DataFrame | None = None) -> str:
    specs = [parse_augmentation(text) for text in augmentations]
    return cache.cache_key(cache.feature_request(
        recipe, specs, seed, tiny_manifest() if manifest is None else manifest))


# --- the key --------------------------------------------------------------------------------

def test_the_same_request_gives_the_same_key() -> None:
    assert key_of() == key_of()
    assert key_of(LogMelRecipe(versions=(8,))) == key_of(LOGMEL_BASE)


def test_every_recipe_field_has_an_alternative_value_below() -> None:
    for recipe_type, values in OTHER_VALUE.items():
        assert set(values) == set(recipe_type.model_fields) - {"kind"}, recipe_type.__name__


@pytest.mark.parametrize(
    ("recipe_type", "field"),
    [(recipe_type, field) for recipe_type, values in OTHER_VALUE.items() for field in values],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_changing_any_recipe_parameter_changes_the_key(recipe_type: type[RecipeBase],
                                                       field: str) -> None:
    base = BASE_RECIPES[recipe_type]
    changed = recipe_type.model_validate({**base.model_dump(), **GOES_WITH.get(field, {}),
                                          field: OTHER_VALUE[recipe_type][field]})
    assert getattr(changed, field) != getattr(base, field)
    assert key_of(changed) != key_of(base)


def test_recipes_of_different_kinds_never_share_a_key() -> None:
    assert len({key_of(recipe) for recipe in BASE_RECIPES.values()}) == len(BASE_RECIPES)


def test_augmentation_list_and_seed_change_the_key() -> None:
    keys = [
        key_of(),
        key_of(augmentations=("noise:snr=20",)),
        key_of(augmentations=("noise:snr=10",)),
        key_of(augmentations=("noise:snr=20", "pitch:steps=2")),
        key_of(augmentations=("noise:snr=20",), seed=1),
        key_of(seed=1),
    ]
    assert len(set(keys)) == len(keys)


def test_manifest_content_changes_the_key_but_row_order_does_not() -> None:
    manifest = tiny_manifest()
    changed = {
        "label": manifest.assign(label=["neutral", "angry", "neutral"]),
        "path": manifest.assign(path=["/corpus/u0.wav", "/other/u1.wav", "/corpus/u2.wav"]),
        "duration": manifest.assign(duration_s=[1.5, 1.5, 2.5]),
        "sample rate": manifest.assign(sample_rate=[16000, 44100, 16000]),
        "channels": manifest.assign(channels=[1, 2, 1]),
        "one row fewer": manifest.iloc[:2],
    }
    keys = {name: key_of(manifest=edited) for name, edited in changed.items()}
    assert len(set(keys.values()) | {key_of(manifest=manifest)}) == len(changed) + 1
    assert key_of(manifest=manifest.iloc[::-1]) == key_of(manifest=manifest)


def test_columns_features_do_not_depend_on_leave_the_key() -> None:
    # Speaker and session decide folds, not features: relabelling them reuses the cache.
    manifest = tiny_manifest()
    assert key_of(manifest=manifest.assign(speaker="s9", session="5")) == key_of(
        manifest=manifest)


def test_bumping_the_feature_code_version_changes_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = key_of()
    monkeypatch.setattr(cache, "FEATURE_CODE_VERSION", cache.FEATURE_CODE_VERSION + 1)
    assert key_of() != before


# --- complete and incomplete directories ----------------------------------------------------

def write_parts(staging: Path) -> None:
    (staging / cache.DATA_DIR / "part-0.parquet").write_bytes(b"rows")
    (staging / cache.SKIPPED_FILE).write_text("utterance_id,path,reason_code,reason\n")


def test_a_staging_directory_is_never_a_complete_cache(tmp_path: Path) -> None:
    key = key_of()
    staging = cache.staging_dir(tmp_path, key)
    write_parts(staging)  # everything but the metadata: a run killed before publishing
    assert staging.name.startswith(f".staging-{key}-")
    assert cache.find_complete(tmp_path, key) is None
    with pytest.raises(UserError, match="not a complete feature cache"):
        cache.open_cache(staging)


def test_publish_renames_staging_into_place_with_metadata(tmp_path: Path) -> None:
    key = key_of()
    staging = cache.staging_dir(tmp_path, key)
    write_parts(staging)
    published = cache.publish(staging, tmp_path, key, {"key": key, "rows": 1})
    assert published.path == tmp_path / key
    assert not staging.exists()
    assert cache.find_complete(tmp_path, key) == published
    assert cache.open_cache(tmp_path / key).metadata == {"key": key, "rows": 1}
    assert (published.data_dir / "part-0.parquet").read_bytes() == b"rows"


def test_a_second_publish_of_the_same_key_keeps_the_first(tmp_path: Path) -> None:
    key = key_of()
    first, second = cache.staging_dir(tmp_path, key), cache.staging_dir(tmp_path, key)
    write_parts(first)
    write_parts(second)
    cache.publish(first, tmp_path, key, {"run": "first"})
    published = cache.publish(second, tmp_path, key, {"run": "second"})
    assert published.metadata == {"run": "first"}
    assert [path.name for path in tmp_path.iterdir()] == [key]


def test_a_directory_without_metadata_at_the_key_is_replaced(tmp_path: Path) -> None:
    key = key_of()
    (tmp_path / key / cache.DATA_DIR).mkdir(parents=True)
    (tmp_path / key / cache.DATA_DIR / "stale.parquet").write_bytes(b"stale")
    staging = cache.staging_dir(tmp_path, key)
    write_parts(staging)
    published = cache.publish(staging, tmp_path, key, {"run": "new"})
    assert json.loads((published.path / cache.METADATA_FILE).read_text()) == {"run": "new"}
    assert sorted(path.name for path in published.data_dir.iterdir()) == ["part-0.parquet"]


# --- stale folders of other runs --------------------------------------------------------------

HOUR = 3600.0


def age(folder: Path, seconds: float) -> Path:
    """Set every entry of the folder's tree (deepest first) to `seconds` ago: a run that
    stopped touching it then."""
    then = time.time() - seconds
    for path in sorted(folder.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        os.utime(path, (then, then), follow_symlinks=False)
    os.utime(folder, (then, then))
    return folder


def staged(cache_root: Path, key: str) -> Path:
    staging = cache.staging_dir(cache_root, key)
    write_parts(staging)
    return staging


def unshared(cache_root: Path, key: str) -> Path:
    return cache.keep_unpublished(staged(cache_root, key), cache_root, key, {"key": key}).path


def test_a_run_private_cache_is_complete_but_never_found_by_key(tmp_path: Path) -> None:
    key = key_of()
    private = unshared(tmp_path, key)
    assert private.name.startswith(f".unshared-{key}-")
    assert cache.open_cache(private).metadata == {"key": key}
    assert cache.find_complete(tmp_path, key) is None
    assert [path.name for path in tmp_path.iterdir()] == [private.name]  # nothing staged left


def test_stale_staging_and_run_private_folders_are_removed_and_fresh_ones_kept(
        tmp_path: Path) -> None:
    key = key_of()
    # Made first (staging one removes what is stale already), aged after.
    crashed, live, writing = (cache.staging_dir(tmp_path, key) for _ in range(3))
    old_private, recent_private = unshared(tmp_path, key), unshared(tmp_path, key)
    published = cache.publish(staged(tmp_path, key), tmp_path, key, {"key": key})
    (tmp_path / "corpora").mkdir()
    age(crashed, cache.STALE_STAGING_S + HOUR)
    age(live, cache.STALE_STAGING_S - HOUR)
    # Old, but a part is being written into it right now: another machine's live run.
    (writing / cache.DATA_DIR / ".part-0.parquet.1234.writing").write_bytes(b"half")
    age(writing, 10 * cache.STALE_STAGING_S)
    os.utime(writing / cache.DATA_DIR / ".part-0.parquet.1234.writing")  # written to just now
    age(old_private, cache.STALE_UNSHARED_S + HOUR)
    # A day old is stale for a staging folder, not for the cache a long study still reads.
    age(recent_private, cache.STALE_STAGING_S + HOUR)
    age(published.path, 100 * cache.STALE_UNSHARED_S)
    age(tmp_path / "corpora", 100 * cache.STALE_UNSHARED_S)
    half_removed = tmp_path / f".removing-.staging-{key}-00000000"
    (half_removed / cache.DATA_DIR).mkdir(parents=True)

    removed = cache.remove_stale(tmp_path)

    assert sorted(removed) == sorted([crashed, old_private, half_removed])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [live.name, writing.name, recent_private.name, key, "corpora"])
    assert (writing / cache.DATA_DIR / ".part-0.parquet.1234.writing").read_bytes() == b"half"


def test_staging_a_request_removes_the_stale_folders_of_other_runs(tmp_path: Path) -> None:
    key = key_of()
    crashed = age(cache.staging_dir(tmp_path, key), cache.STALE_STAGING_S + HOUR)
    fresh = cache.staging_dir(tmp_path, key)
    assert not crashed.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == [fresh.name]


def test_opening_a_run_private_cache_renews_its_age(tmp_path: Path) -> None:
    private = age(unshared(tmp_path, key_of()), cache.STALE_UNSHARED_S + HOUR)
    cache.open_cache(private)  # a trial of the run that made it starts
    assert cache.remove_stale(tmp_path) == []
    assert private.is_dir()
