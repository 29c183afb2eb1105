"""The Ray Data feature pipeline end to end on a tiny corpus of real WAV files.

Pipeline rows are compared with the recipe run in this process on the waveform that
`load_waveform` decodes (the recipe itself is checked against librosa in test_recipes.py).
They come from the same torch code on the same input, batched differently, so they agree
to float32 rounding: FEATURE_ATOL = 1e-5 in log-Mel / MFCC units (measured: 0).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile

from ser_ray.bench.features import break_even_utterances
from ser_ray.cli import main
from ser_ray.corpus import scan_corpus, write_scan
from ser_ray.corpus.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest
from ser_ray.errors import UserError
from ser_ray.features import cache, load_features, parse_augmentation
from ser_ray.features.audio import load_waveform
from ser_ray.features.augment import apply_augmentation
from ser_ray.features.featurize import build_features_here, feature_request, feature_schema
from ser_ray.features.leakage import derived_utterance_id
from ser_ray.features.logmel import LogMelRecipe
from ser_ray.features.mfcc_segments import MfccSegmentsRecipe
from ser_ray.features.pipeline import _run, build_features
from ser_ray.synth import SynthConfig, write_synthetic_iemocap

FEATURE_ATOL = 1e-5
NOISE = "noise:snr=20"
ALL_VERSIONS = tuple(range(1, 9))

pytestmark = [
    pytest.mark.usefixtures("ray_session"),
    # Short FFTs leave the lowest HTK bands empty (librosa warns when building the matrix).
    pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning"),
]


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 synthetic utterances, 0.5–1.5 s, scanned like a real corpus."""
    root = tmp_path_factory.mktemp("corpus")
    write_synthetic_iemocap(root / "iemocap", SynthConfig(
        sessions=1, speakers_per_session=2, utterances_per_speaker=4,
        min_duration_s=0.5, max_duration_s=1.5))
    path = root / "manifest.parquet"
    write_scan(scan_corpus("iemocap", root / "iemocap"), path)
    return path


@pytest.fixture(scope="module")
def logmel_cache(manifest_path: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> cache.FeatureCache:
    """All 8 STFT versions plus one noisy copy of every utterance: 8 × 2 × 8 = 128 rows."""
    feature_cache, hit = build_features(manifest_path, LogMelRecipe(),
                                        tmp_path_factory.mktemp("cache"),
                                        [parse_augmentation(NOISE)], seed=0)
    assert not hit
    return feature_cache


def feature_rows(feature_cache: cache.FeatureCache) -> pd.DataFrame:
    """Every column but the features."""
    columns = [name for name in feature_schema().names if name != "features"]
    return pd.read_parquet(feature_cache.data_dir, columns=columns)


def decoded(manifest_path: Path) -> dict[str, np.ndarray]:
    """Each utterance as the pipeline decodes it, at the 16 kHz both tested recipes use."""
    manifest = read_manifest(manifest_path)
    return {uid: load_waveform(path, 16000)
            for uid, path in zip(manifest["utterance_id"], manifest["path"])}


def test_a_cache_built_without_ray_is_the_pipeline_s_cache(
        manifest_path: Path, logmel_cache: cache.FeatureCache, tmp_path: Path) -> None:
    here, hit = build_features_here(manifest_path, LogMelRecipe(), tmp_path,
                                    [parse_augmentation(NOISE)], seed=0, batch_size=3)
    assert not hit and here.path.name == logmel_cache.path.name
    ignored = {"libraries", "manifest_path"}
    assert {key: value for key, value in here.metadata.items() if key not in ignored} == \
        {key: value for key, value in logmel_cache.metadata.items() if key not in ignored}
    ours, theirs = (load_features(found.path) for found in (here, logmel_cache))
    assert list(ours.utterance_ids) == list(theirs.utterance_ids)
    np.testing.assert_array_equal(ours.features, theirs.features)
    assert build_features(manifest_path, LogMelRecipe(), tmp_path,
                          [parse_augmentation(NOISE)], seed=0)[1]  # a hit for Ray too


# --- log-Mel rows, provenance, schema, metadata ----------------------------------------------

def test_every_utterance_copy_and_version_has_one_row(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    rows = feature_rows(logmel_cache)
    utterances = read_manifest(manifest_path)["utterance_id"].tolist()
    assert len(rows) == len(utterances) * (1 + 1) * len(ALL_VERSIONS) == 128
    expected = {(source, augmentation, version) for source in utterances
                for augmentation in ("none", NOISE) for version in ALL_VERSIONS}
    assert set(zip(rows["source_utterance_id"], rows["augmentation"],
                   rows["stft_version"])) == expected
    assert rows["segment_index"].isna().all()


def test_rows_carry_their_source_and_augmentation_parameters(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    rows = feature_rows(logmel_cache)
    labels = read_manifest(manifest_path).set_index("utterance_id")["label"]
    assert (rows["label"] == labels[rows["source_utterance_id"]].to_numpy()).all()
    originals = rows[rows["augmentation"] == "none"]
    assert (originals["utterance_id"] == originals["source_utterance_id"]).all()
    assert (originals["augmentation_params"] == "{}").all()
    copies = rows[rows["augmentation"] == NOISE]
    assert len(copies) == 64
    assert (copies["utterance_id"]
            == [derived_utterance_id(source, NOISE) for source in copies["source_utterance_id"]]
            ).all()
    assert all(json.loads(params) == parse_augmentation(NOISE).params()
               for params in copies["augmentation_params"])


def test_original_rows_equal_the_recipe_on_the_decoded_waveform(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    recipe = LogMelRecipe()
    for utterance_id, waveform in list(decoded(manifest_path).items())[:2]:
        loaded = load_features(logmel_cache.path, augmentations=["none"],
                               source_utterance_ids=[utterance_id])
        expected = np.stack([item.features for item in recipe.featurize_batch([waveform])[0]])
        assert loaded.stft_versions.tolist() == list(ALL_VERSIONS)
        assert loaded.features.shape == (8, 64, 601)
        np.testing.assert_allclose(loaded.features, expected, atol=FEATURE_ATOL, rtol=0)


def test_noisy_copies_are_the_seeded_augmentation_of_their_source(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    recipe, spec = LogMelRecipe(), parse_augmentation(NOISE)
    utterance_id, waveform = next(iter(decoded(manifest_path).items()))
    copy = apply_augmentation(waveform, recipe.sample_rate, spec, (0, utterance_id))
    expected = np.stack([item.features for item in recipe.featurize_batch([copy])[0]])
    loaded = load_features(logmel_cache.path, augmentations=[NOISE],
                           source_utterance_ids=[utterance_id])
    np.testing.assert_allclose(loaded.features, expected, atol=FEATURE_ATOL, rtol=0)
    original = load_features(logmel_cache.path, augmentations=["none"],
                             source_utterance_ids=[utterance_id])
    assert np.abs(loaded.features[:] - original.features[:]).max() > 0.1


def test_feature_values_are_stored_byte_stream_split_and_lz4(
        logmel_cache: cache.FeatureCache) -> None:
    """pyarrow silently ignores an encoding or codec set on a column path that does not exist,
    so the written files themselves are checked."""
    for part in sorted(logmel_cache.data_dir.glob("*.parquet")):
        metadata = pq.ParquetFile(part).metadata
        for group in range(metadata.num_row_groups):
            columns = {metadata.row_group(group).column(index).path_in_schema:
                       metadata.row_group(group).column(index)
                       for index in range(metadata.num_columns)}
            values = columns["features.list.element"]
            assert "BYTE_STREAM_SPLIT" in values.encodings
            assert values.compression in ("LZ4", "LZ4_RAW")
            assert columns["utterance_id"].compression == "SNAPPY"


def test_feature_files_read_with_pyarrow_and_pandas_alone(
        logmel_cache: cache.FeatureCache) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np, pandas as pd, pyarrow.parquet as pq
        data = {str(logmel_cache.data_dir)!r}
        shape = json.load(open({str(logmel_cache.path / cache.METADATA_FILE)!r}))["feature_shape"]
        table = pq.read_table(data)
        frame = pd.read_parquet(data)
        first = np.asarray(frame["features"].iloc[0], dtype=np.float32).reshape(shape)
        print(json.dumps({{"schema": {{f.name: str(f.type) for f in table.schema}},
                          "rows": len(frame), "shape": list(first.shape),
                          "finite": bool(np.isfinite(first).all()),
                          "ray_loaded": "ray" in sys.modules}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout)
    assert report["schema"] == {
        "utterance_id": "string", "source_utterance_id": "string", "augmentation": "string",
        "augmentation_params": "string", "stft_version": "int32", "segment_index": "int32",
        "label": "string", "features": "large_list<element: float>"}
    assert report["rows"] == 128
    assert report["shape"] == [64, 601]
    assert report["finite"]
    assert not report["ray_loaded"]


def test_metadata_records_the_request_and_its_provenance(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    metadata = logmel_cache.metadata
    assert metadata["recipe"] == LogMelRecipe().model_dump(mode="json")
    assert metadata["augmentations"] == [NOISE]
    assert metadata["seed"] == 0
    assert metadata["manifest_sha256"] == cache.manifest_hash(read_manifest(manifest_path))
    assert metadata["key"] == logmel_cache.path.name
    assert metadata["feature_code_version"] == cache.FEATURE_CODE_VERSION
    assert metadata["feature_shape"] == [64, 601]
    assert metadata["variants"] == list(ALL_VERSIONS)
    assert (metadata["rows"], metadata["utterances"], metadata["skipped"]) == (128, 8, 0)
    assert all(metadata["libraries"][name] for name in
               ("numpy", "torch", "librosa", "soundfile", "soxr", "pyarrow", "ray"))
    assert logmel_cache.skipped().empty


# --- loader ----------------------------------------------------------------------------------

def test_load_features_filters_by_version_augmentation_and_source(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    everything = load_features(logmel_cache.path)
    assert everything.features.shape == (128, 64, 601)
    assert everything.features.dtype == np.float32

    version_3 = load_features(logmel_cache.path, stft_versions=[3])
    assert version_3.features.shape == (16, 64, 601)
    assert set(version_3.stft_versions) == {3}

    originals = load_features(logmel_cache.path, augmentations=["none"])
    assert len(originals) == 64 and set(originals.augmentations) == {"none"}

    two = read_manifest(manifest_path)["utterance_id"].tolist()[:2]
    chosen = load_features(logmel_cache.path, stft_versions=[1], source_utterance_ids=two)
    assert sorted(chosen.source_utterance_ids) == sorted(two * 2)
    assert sorted(chosen.augmentations) == sorted(["none", "none", NOISE, NOISE])
    assert list(chosen.utterance_ids) == sorted(chosen.utterance_ids)


def test_load_features_names_the_versions_a_cache_holds(
        logmel_cache: cache.FeatureCache) -> None:
    with pytest.raises(UserError, match=r"stft_version 9 is not in this cache; it holds \[1, "):
        load_features(logmel_cache.path, stft_versions=[9])


# --- cache behaviour through the pipeline ----------------------------------------------------

def test_the_same_request_again_is_a_hit_that_never_starts_ray(
        manifest_path: Path, logmel_cache: cache.FeatureCache) -> None:
    again, hit = build_features(manifest_path, LogMelRecipe(), logmel_cache.path.parent,
                                [parse_augmentation(NOISE)], seed=0)
    assert hit and again == logmel_cache
    # The device only says where features are computed, so a cuda request hits the same cache.
    assert build_features(manifest_path, LogMelRecipe(), logmel_cache.path.parent,
                          [parse_augmentation(NOISE)], seed=0, device="cuda") == (again, True)
    script = textwrap.dedent(f"""
        import ray
        from ser_ray.cli import main
        status = main(["features", "--manifest", {str(manifest_path)!r}, "--recipe", "logmel",
                       "--versions", "1-8", "--augment", {NOISE!r},
                       "--cache", {str(logmel_cache.path.parent)!r}])
        print("status", status, "ray initialised", ray.is_initialized())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert f"cache hit: {logmel_cache.path}" in result.stdout
    assert "status 0 ray initialised False" in result.stdout


def test_a_recent_staging_directory_is_ignored_and_a_stale_one_removed(
        manifest_path: Path, tmp_path: Path) -> None:
    recipe = LogMelRecipe(versions=(1,))
    key = cache.cache_key(cache.feature_request(recipe, [], 0, read_manifest(manifest_path)))
    crashed_long_ago = cache.staging_dir(tmp_path, key)
    leftover = cache.staging_dir(tmp_path, key)
    (leftover / cache.DATA_DIR / "partial.parquet").write_bytes(b"half a file")
    then = time.time() - cache.STALE_STAGING_S - 3600
    for path in (crashed_long_ago / cache.DATA_DIR, crashed_long_ago):
        os.utime(path, (then, then))
    feature_cache, hit = build_features(manifest_path, recipe, tmp_path)
    assert not hit
    assert feature_cache.path == tmp_path / key
    assert feature_cache.metadata["rows"] == len(load_features(feature_cache.path)) == 8
    # A recent one may be another machine's live run: kept. A stale one is removed.
    assert (leftover / cache.DATA_DIR / "partial.parquet").read_bytes() == b"half a file"
    assert not crashed_long_ago.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([key, leftover.name])


# --- determinism -----------------------------------------------------------------------------

def test_augmented_features_depend_only_on_the_seed(manifest_path: Path,
                                                    tmp_path: Path) -> None:
    recipe, noise = LogMelRecipe(versions=(1,)), [parse_augmentation(NOISE)]

    def noisy_features(seed: int, root: str) -> np.ndarray:
        feature_cache, hit = build_features(manifest_path, recipe, tmp_path / root, noise,
                                            seed=seed)
        assert not hit
        return load_features(feature_cache.path, augmentations=[NOISE]).features[:]

    first, again = noisy_features(0, "first"), noisy_features(0, "again")
    other_seed = noisy_features(1, "other")
    assert np.array_equal(first, again)
    assert np.abs(first - other_seed).max() > 0.1


# --- MFCC segments ---------------------------------------------------------------------------

def test_mfcc_segment_rows_are_indexed_per_utterance(manifest_path: Path,
                                                      tmp_path: Path) -> None:
    recipe = MfccSegmentsRecipe()
    feature_cache, _ = build_features(manifest_path, recipe, tmp_path)
    assert feature_cache.metadata["feature_shape"] == [26, 57]
    for utterance_id, waveform in decoded(manifest_path).items():
        expected = np.stack([item.features for item in recipe.featurize_batch([waveform])[0]])
        loaded = load_features(feature_cache.path, source_utterance_ids=[utterance_id])
        assert loaded.segment_indices.tolist() == list(range(len(expected)))
        assert np.isnan(loaded.stft_versions.astype(float)).all()
        assert loaded.features.shape == (len(expected), 26, 57)
        np.testing.assert_allclose(loaded.features, expected, atol=FEATURE_ATOL, rtol=0)


# --- input formats and bad audio -------------------------------------------------------------

def tone(seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t)
            ).astype(np.float32)


def manifest_of(files: dict[str, Path], path: Path) -> Path:
    """A manifest listing files as they are; a header scan would have left the bad ones out."""
    rows = []
    for utterance_id, audio in files.items():
        try:
            info = soundfile.info(str(audio))
            header = (info.frames / info.samplerate, info.samplerate, info.channels)
        except RuntimeError:
            header = (0.5, 16000, 1)  # garbage: what a stale manifest might still claim
        rows.append(dict(zip(MANIFEST_COLUMNS, (
            utterance_id, str(audio), "tiny", "s1", "F", "1", "neu", "neutral", *header, True))))
    write_manifest(pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)), path, {"corpus": "tiny"})
    return path


def test_stereo_and_44k_files_are_downmixed_and_resampled_and_bad_files_skipped(
        tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    mono = tone(0.5, 16000)
    # Channels that differ but average to the mono signal: a downmix by either channel or by
    # the sum would not reproduce the mono file's features. Float samples, so that 16-bit
    # quantization does not make the average differ from the mono file.
    side = 0.2 * tone(0.5, 16000)[::-1]
    soundfile.write(audio / "mono.wav", mono, 16000, subtype="FLOAT")
    soundfile.write(audio / "stereo.wav", np.stack([mono + side, mono - side], axis=1), 16000,
                    subtype="FLOAT")
    soundfile.write(audio / "cd.wav", tone(0.5, 44100), 44100)
    (audio / "corrupt.wav").write_bytes(b"definitely not RIFF audio " * 20)
    soundfile.write(audio / "silent.wav", np.zeros(8000, np.float32), 16000)
    soundfile.write(audio / "nan.wav", np.full(8000, np.nan, np.float32), 16000,
                    subtype="FLOAT")
    soundfile.write(audio / "empty.wav", np.zeros(0, np.float32), 16000)
    names = ["mono", "stereo", "cd", "corrupt", "silent", "nan", "empty"]
    manifest = manifest_of({name: audio / f"{name}.wav" for name in names},
                           tmp_path / "manifest.parquet")

    recipe = LogMelRecipe(versions=(1,))
    feature_cache, _ = build_features(manifest, recipe, tmp_path / "cache")

    skipped = feature_cache.skipped().set_index("utterance_id")["reason_code"].to_dict()
    assert skipped == {"corrupt": "decode_error", "silent": "all_zero", "nan": "not_finite",
                       "empty": "empty"}
    # Each of those is a property of the audio: the cache is published under its key.
    assert cache.find_complete(tmp_path / "cache", feature_cache.metadata["key"]) \
        == feature_cache
    loaded = load_features(feature_cache.path)
    assert sorted(loaded.source_utterance_ids) == ["cd", "mono", "stereo"]
    assert (feature_cache.metadata["utterances"], feature_cache.metadata["skipped"]) == (3, 4)
    by_id = dict(zip(loaded.source_utterance_ids, loaded.features))
    # (x + s, x − s) / 2 is x up to float32 rounding, which the log magnifies near the
    # floor: measured 1.5e-5; taking one channel or the sum would differ by far more than 1e-3.
    np.testing.assert_allclose(by_id["stereo"], by_id["mono"], atol=1e-3, rtol=0)
    # The same tones recorded at 44.1 kHz: after resampling, the Mel energy matches the
    # 16 kHz recording to within 0.1 % (measured 0.003 %; the sum is dominated by the bands
    # that hold the tones, where resampling error is negligible).
    energy_cd, energy_mono = np.exp(by_id["cd"]), np.exp(by_id["mono"])
    assert np.abs(energy_cd - energy_mono).sum() / energy_mono.sum() < 1e-3


def test_utterances_that_fail_after_decoding_are_skipped_and_their_batch_kept(
        tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    # One sample at 44.1 kHz resamples to none at 16 kHz. One sample at 16 kHz decodes, but
    # its tempo ×2 copy is empty, which the recipe refuses.
    soundfile.write(audio / "one_cd_sample.wav", np.full(1, 0.5, np.float32), 44100)
    soundfile.write(audio / "one_sample.wav", np.full(1, 0.5, np.float32), 16000)
    soundfile.write(audio / "good.wav", tone(0.5, 16000), 16000)
    names = ["one_cd_sample", "one_sample", "good"]
    manifest = manifest_of({name: audio / f"{name}.wav" for name in names},
                           tmp_path / "manifest.parquet")

    # One task, one batch: the good utterance shares its recipe call with the failing one.
    feature_cache, _ = build_features(manifest, LogMelRecipe(versions=(1,)), tmp_path / "cache",
                                      [parse_augmentation("tempo:factor=2")], concurrency=1)

    skipped = feature_cache.skipped().set_index("utterance_id")
    assert skipped["reason_code"].to_dict() == {"one_cd_sample": "too_short",
                                                "one_sample": "featurize_failed"}
    assert "1 sample(s) at 44100 Hz leave none" in skipped.loc["one_cd_sample", "reason"]
    assert "ValueError" in skipped.loc["one_sample", "reason"]
    assert "at least one sample" in skipped.loc["one_sample", "reason"]
    loaded = load_features(feature_cache.path)
    assert sorted(zip(loaded.source_utterance_ids, loaded.augmentations)) == [
        ("good", "none"), ("good", "tempo:factor=2")]
    assert (feature_cache.metadata["utterances"], feature_cache.metadata["skipped"]) == (1, 2)


def test_skip_records_from_featurizer_tasks_reach_the_driver_as_data(tmp_path: Path) -> None:
    """Each task writes its Parquet part and nothing else; what it skipped comes back as its
    output, through Ray, to a driver that may be on another node."""
    audio = tmp_path / "audio"
    audio.mkdir()
    files = {}
    for index in range(6):
        files[f"good{index}"] = audio / f"good{index}.wav"
        soundfile.write(files[f"good{index}"], tone(0.3 + 0.05 * index, 16000), 16000)
    (audio / "corrupt.wav").write_bytes(b"definitely not RIFF audio " * 20)
    soundfile.write(audio / "silent.wav", np.zeros(8000, np.float32), 16000)
    files |= {"corrupt": audio / "corrupt.wav", "silent": audio / "silent.wav"}
    wanted = feature_request(manifest_of(files, tmp_path / "manifest.parquet"),
                             LogMelRecipe(versions=(1,)), tmp_path / "cache")
    staging, featurizer = wanted.stage(batch_size=2)

    outcome = _run(wanted.manifest, featurizer, concurrency=2)

    assert outcome.skipped[["utterance_id", "path", "reason_code"]].values.tolist() == [
        ["corrupt", str(audio / "corrupt.wav"), "decode_error"],
        ["silent", str(audio / "silent.wav"), "all_zero"]]
    assert outcome.skipped["reason"].tolist()[1] == "every sample is zero (silent file)"
    assert outcome.no_staging == [] and sum(outcome.parts.values()) == 6
    # The staging layout: the tasks' Parquet parts, one per block, and nothing else.
    assert len(outcome.parts) == 2
    assert sorted(str(path.relative_to(staging)) for path in staging.rglob("*")) == sorted(
        [cache.DATA_DIR, *(f"{cache.DATA_DIR}/{name}" for name in outcome.parts)])
    feature_cache = wanted.publish(staging, outcome)
    assert feature_cache.path == tmp_path / "cache" / wanted.key
    assert feature_cache.skipped()["utterance_id"].tolist() == ["corrupt", "silent"]
    assert (feature_cache.metadata["utterances"], feature_cache.metadata["rows"]) == (6, 6)


def test_featurizer_tasks_that_do_not_see_the_staging_directory_say_so(
        manifest_path: Path, tmp_path: Path) -> None:
    wanted = feature_request(manifest_path, LogMelRecipe(versions=(1,)), tmp_path / "cache")
    staging, featurizer = wanted.stage()
    featurizer.data_dir = str(tmp_path / "elsewhere" / cache.DATA_DIR)  # another node's view
    outcome = _run(wanted.manifest, featurizer, concurrency=2)
    assert outcome.no_staging == [socket.gethostname()] and outcome.parts == {}
    with pytest.raises(UserError, match="is not the same directory on every Ray node"):
        wanted.publish(staging, outcome)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_file_keeps_the_cache_unpublished_so_a_second_request_recomputes(
        manifest_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    manifest = read_manifest(manifest_path)
    corpus.mkdir()
    for path in manifest["path"]:
        shutil.copy(path, corpus)
    copied = manifest.assign(path=[str(corpus / Path(path).name) for path in manifest["path"]])
    write_manifest(copied, tmp_path / "manifest.parquet", {"corpus": "iemocap"})
    lost = copied.iloc[3]
    Path(lost["path"]).unlink()  # gone after the scan: a mount that went away
    recipe, root = LogMelRecipe(versions=(1,)), tmp_path / "cache"

    with caplog.at_level(logging.WARNING, logger="ser_ray.features.featurize"):
        first, hit = build_features(tmp_path / "manifest.parquet", recipe, root)

    assert not hit and first.path.name.startswith(".unshared-")
    assert cache.find_complete(root, first.metadata["key"]) is None
    assert first.skipped()[["utterance_id", "reason_code"]].values.tolist() == [
        [lost["utterance_id"], "unreadable"]]
    assert len(load_features(first.path)) == first.metadata["rows"] == 7
    assert any(f"{lost['path']}: cannot read the file" in record.getMessage()
               and "NOT published" in record.getMessage() for record in caplog.records)
    again, hit = build_features(tmp_path / "manifest.parquet", recipe, root)
    assert not hit and again.path != first.path and again.path.name.startswith(".unshared-")
    # The file is back: the same request is computed and published under its key.
    shutil.copy(manifest.iloc[3]["path"], lost["path"])
    fixed, hit = build_features(tmp_path / "manifest.parquet", recipe, root)
    assert not hit and fixed.path == root / first.metadata["key"]
    assert fixed.metadata["rows"] == 8 and fixed.skipped().empty


def test_a_recipe_that_fails_on_every_utterance_publishes_no_cache(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a", "b"):
        soundfile.write(audio / f"{name}.wav", np.full(1, 0.5, np.float32), 16000)
    manifest = manifest_of({name: audio / f"{name}.wav" for name in ("a", "b")},
                           tmp_path / "manifest.parquet")
    with pytest.raises(UserError, match="every one of the 2 decodable utterances"):
        build_features(manifest, LogMelRecipe(versions=(1,)), tmp_path / "cache",
                       [parse_augmentation("tempo:factor=2")], concurrency=1)
    # Nothing reads as complete, nothing is left staged: the next request tries again.
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_empty_manifest_is_refused_before_any_work(tmp_path: Path) -> None:
    empty = manifest_of({}, tmp_path / "manifest.parquet")
    with pytest.raises(UserError, match="lists no utterances"):
        build_features(empty, LogMelRecipe(), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


# --- the CLI ---------------------------------------------------------------------------------

def test_cli_computes_features_and_prints_the_cache_path(
        manifest_path: Path, logmel_cache: cache.FeatureCache, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["features", "--manifest", str(manifest_path), "--recipe", "logmel",
                   "--versions", "1-8", "--augment", NOISE, "--cache", str(tmp_path)])
    printed = capsys.readouterr().out
    # Same request as the Python call above, so the same key under another root.
    assert status == 0
    assert f"computed: {tmp_path / logmel_cache.path.name}" in printed
    assert "128 rows from 8 utterances" in printed
    assert cache.open_cache(tmp_path / logmel_cache.path.name).metadata["rows"] == 128


def test_cuda_on_a_cluster_without_gpus_is_refused_before_any_work(
        ray_session, manifest_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match=r"device 'cuda' \(--device cuda\) needs GPUs"):
        build_features(manifest_path, LogMelRecipe(), tmp_path / "python", device="cuda")
    status = main(["features", "--manifest", str(manifest_path), "--recipe", "logmel",
                   "--cache", str(tmp_path / "cli"), "--device", "cuda"])
    assert status == 2
    assert "use device 'cpu' (--device cpu)" in capsys.readouterr().err
    assert not any((tmp_path / "python").iterdir()) and not any((tmp_path / "cli").iterdir())


def test_an_unknown_device_is_refused(manifest_path: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="device must be one of cpu, cuda, got 'gpu'"):
        build_features(manifest_path, LogMelRecipe(), tmp_path, device="gpu")


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--augment", "noise:snr=loud", "noise: snr='loud' is not a number"),
    ("--augment", "echo:delay=3", "unknown augmentation kind 'echo'"),
    ("--versions", "1-9", "versions must be drawn from 1..8"),
    ("--versions", "one-eight", "--versions 'one-eight': write a range like 1-8"),
])
def test_cli_rejects_a_bad_augmentation_or_version_list(
        manifest_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
        value: str, message: str) -> None:
    status = main(["features", "--manifest", str(manifest_path), "--recipe", "logmel",
                   "--cache", str(tmp_path), flag, value])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bench_features_figures_agree_with_each_other(capsys) -> None:
    """`ser-ray bench features` on a tiny corpus: each round's runs are recorded, rates are
    work over median time, the ratio is the median of the rounds' ratios, and the cached
    log-Mels equal librosa's (the speed itself is for the benchmark to show, not a test)."""
    assert main(["bench", "features", "--utterances", "4", "--versions", "2",
                 "--rounds", "2"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["max_abs_diff_vs_librosa"] <= 1e-3  # test_recipes.py's LOGMEL_ATOL
    assert len(figures["librosa_rounds_s"]) == len(figures["ray_rounds_s"]) == 2
    assert figures["ray_s"] == pytest.approx(np.median(figures["ray_rounds_s"]), abs=1e-3)
    assert figures["ray_per_s"] == pytest.approx(4 / figures["ray_s"], rel=0.01, abs=0.05)
    ratios = [loop / ray for loop, ray in zip(figures["librosa_rounds_s"],
                                              figures["ray_rounds_s"])]
    # Times are rounded to the millisecond and the loop over 4 utterances takes a few tens.
    assert figures["round_ratios"] == pytest.approx(ratios, rel=0.05, abs=0.02)
    assert figures["ratio_vs_librosa"] == pytest.approx(np.median(ratios), rel=0.05, abs=0.02)
    assert figures["ray_first_request_overhead_s"] == pytest.approx(
        max(0.0, figures["ray_first_request_s"] - figures["ray_s"]), abs=2e-3)
    assert figures["ratio_vs_librosa_from_nothing"] == pytest.approx(
        (figures["librosa_first_matrix_s"] + figures["librosa_s"])
        / (figures["ray_start_s"] + figures["ray_first_request_s"]), rel=0.05, abs=0.02)
    for key, ray_fixed_s in (
            ("break_even_utterances_running_cluster", figures["ray_first_request_overhead_s"]),
            ("break_even_utterances_from_nothing",
             figures["ray_start_s"] + figures["ray_first_request_overhead_s"])):
        expected = break_even_utterances(ray_fixed_s, figures["ray_s"] / 4,
                                         figures["librosa_first_matrix_s"],
                                         figures["librosa_s"] / 4)
        assert (figures[key] is None) == (expected is None)
        if expected is not None:  # the figures are rounded to the millisecond
            assert figures[key] == pytest.approx(expected, rel=0.05, abs=2)
