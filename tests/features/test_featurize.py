"""The featurizer and the publishing of a cache, without Ray: what a featurizer task leaves on
disk (its Parquet part, nothing else), what it hands back as data (its skip records), and
which skips keep a cache out of the shared namespace.

The same steps run on Ray in test_pipeline.py."""

from __future__ import annotations

import logging
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile

from ser_ray.errors import UserError
from ser_ray.features import audio, cache, load_features
from ser_ray.features.featurize import (
    AUDIO_REASON_CODES,
    NO_STAGING_RECORD,
    PART_RECORD,
    SKIPPED_RECORD,
    build_features_here,
    feature_request,
    feature_schema,
    gather_outcome,
    outcome_schema,
)
from ser_ray.features.logmel import LogMelRecipe
from tests.features.test_pipeline import manifest_of, tone

RECIPE = LogMelRecipe(versions=(1,))


def corpus(tmp_path: Path) -> dict[str, Path]:
    """Two good files, a corrupt one, and two that cannot be read at all: a dangling link
    (a file gone, as on a node where the corpus is not mounted) and a directory."""
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    soundfile.write(audio_dir / "good_a.wav", tone(0.5, 16000), 16000)
    soundfile.write(audio_dir / "good_b.wav", tone(0.4, 16000), 16000)
    (audio_dir / "corrupt.wav").write_bytes(b"definitely not RIFF audio " * 20)
    (audio_dir / "gone.wav").symlink_to(tmp_path / "mount" / "gone.wav")
    (audio_dir / "folder.wav").mkdir()
    return {name: audio_dir / f"{name}.wav"
            for name in ("good_a", "good_b", "corrupt", "gone", "folder")}


def staged_files(staging: Path) -> list[str]:
    return sorted(str(path.relative_to(staging)) for path in staging.rglob("*")
                  if not path.is_dir())


def test_every_reason_the_decoder_gives_is_classified() -> None:
    """A reason code added to the decoder must be placed: a property of the audio (the cache
    is published) or not (it is not). Unknown codes count as not, so they fail safe."""
    codes = set(re.findall(r'BadAudio\("(\w+)"', Path(audio.__file__).read_text()))
    assert "unreadable" in codes and "decode_error" in codes
    assert codes - AUDIO_REASON_CODES == {"unreadable"}


def test_a_featurizer_writes_its_part_and_hands_its_skips_back_as_data(tmp_path: Path) -> None:
    files = corpus(tmp_path)
    wanted = feature_request(manifest_of(files, tmp_path / "manifest.parquet"), RECIPE,
                             tmp_path / "cache")
    staging, featurizer = wanted.stage(batch_size=2)
    block = wanted.manifest.loc[:, ["utterance_id", "path", "label"]]

    table = featurizer(block)

    assert table.schema == outcome_schema()
    records = table.to_pandas()
    skipped = records[records["record"] == SKIPPED_RECORD].set_index("utterance_id")
    assert skipped["reason_code"].to_dict() == {"corrupt": "decode_error",
                                                "gone": "unreadable", "folder": "unreadable"}
    assert skipped.loc["gone", "path"] == str(files["gone"])
    assert "broken link" in skipped.loc["gone", "reason"]
    [part] = records[records["record"] == PART_RECORD].itertuples()
    # The featurizer's only file is its Parquet part: no folder of skip records beside it.
    assert staged_files(staging) == [f"{cache.DATA_DIR}/{part.path}"]
    written = pq.read_table(staging / cache.DATA_DIR / part.path)
    assert written.schema == feature_schema() and written.num_rows == part.rows == 2

    # A task Ray runs again writes the same part again, not a second copy of its rows.
    featurizer(block)
    assert staged_files(staging) == [f"{cache.DATA_DIR}/{part.path}"]


def test_a_featurizer_on_a_node_without_the_staging_directory_says_so(tmp_path: Path) -> None:
    files = corpus(tmp_path)
    wanted = feature_request(manifest_of(files, tmp_path / "manifest.parquet"), RECIPE,
                             tmp_path / "cache")
    staging, featurizer = wanted.stage()
    shutil.rmtree(staging)  # the view of a node whose cache root is its own local disk
    table = featurizer(wanted.manifest.loc[:, ["utterance_id", "path", "label"]])
    assert table.to_pylist() == [{"record": NO_STAGING_RECORD, "utterance_id": None,
                                  "path": str(staging / cache.DATA_DIR),
                                  "reason_code": None, "reason": socket.gethostname(),
                                  "rows": None}]
    assert not staging.exists()  # nothing written, not even the directory

    outcome = gather_outcome([table])
    (staging / cache.DATA_DIR).mkdir(parents=True)
    with pytest.raises(UserError, match=rf"missing on node\(s\) {socket.gethostname()}; put "
                                        r"the cache .* on a file system every node mounts"):
        wanted.publish(staging, outcome)
    assert not staging.exists()


def test_parts_written_where_this_machine_does_not_see_them_are_refused(
        tmp_path: Path) -> None:
    files = corpus(tmp_path)
    wanted = feature_request(manifest_of(files, tmp_path / "manifest.parquet"), RECIPE,
                             tmp_path / "cache")
    staging, featurizer = wanted.stage()
    outcome = gather_outcome([featurizer(wanted.manifest.loc[:, ["utterance_id", "path",
                                                                  "label"]])])
    for part in (staging / cache.DATA_DIR).iterdir():
        part.unlink()  # as if written to another node's own disk
    with pytest.raises(UserError, match=r"1 of 1 feature files written by featurizer tasks "
                                        r"are not visible here"):
        wanted.publish(staging, outcome)
    assert not staging.exists() and wanted.published() is None


def test_unreadable_files_keep_the_cache_unpublished_until_they_are_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = corpus(tmp_path)
    manifest = manifest_of(files, tmp_path / "manifest.parquet")
    root = tmp_path / "cache"

    with caplog.at_level(logging.WARNING, logger="ser_ray.features.featurize"):
        first, hit = build_features_here(manifest, RECIPE, root)

    assert not hit
    key = first.metadata["key"]
    assert first.path.parent == root and first.path.name.startswith(f".unshared-{key}-")
    assert cache.find_complete(root, key) is None
    # The run keeps every good utterance and says what was skipped and why.
    assert sorted(load_features(first.path).source_utterance_ids) == ["good_a", "good_b"]
    assert first.skipped().set_index("utterance_id")["reason_code"].to_dict() == {
        "corrupt": "decode_error", "folder": "unreadable", "gone": "unreadable"}
    assert (first.metadata["utterances"], first.metadata["skipped"]) == (2, 3)
    assert "other than their audio" in first.metadata["unpublished"]
    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith("2 of 5 utterances were skipped because their files could not "
                              "be read")
    assert f"{files['folder']}: cannot read the file" in warning
    assert f"NOT published under its key {key}" in warning and str(first.path) in warning

    # A later request does not find it: it computes again.
    again, hit = build_features_here(manifest, RECIPE, root)
    assert not hit and again.path != first.path and again.path.name.startswith(".unshared-")

    # The mount is fixed: the same request (same manifest, same key) is published at last.
    (tmp_path / "mount").mkdir()
    soundfile.write(tmp_path / "mount" / "gone.wav", tone(0.3, 16000), 16000)
    files["folder"].rmdir()
    soundfile.write(files["folder"], tone(0.3, 16000), 16000)
    fixed, hit = build_features_here(manifest, RECIPE, root)
    assert not hit and fixed.path == root / key
    assert fixed.skipped()["utterance_id"].tolist() == ["corrupt"]
    assert "unpublished" not in fixed.metadata
    assert build_features_here(manifest, RECIPE, root) == (fixed, True)


def test_audio_that_is_unusable_in_itself_is_published_with_its_skips(tmp_path: Path) -> None:
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    soundfile.write(audio_dir / "good.wav", tone(0.5, 16000), 16000)
    soundfile.write(audio_dir / "silent.wav", np.zeros(8000, np.float32), 16000)
    soundfile.write(audio_dir / "empty.wav", np.zeros(0, np.float32), 16000)
    (audio_dir / "corrupt.wav").write_bytes(b"RIFF but nothing else")
    names = ["good", "silent", "empty", "corrupt"]
    manifest = manifest_of({name: audio_dir / f"{name}.wav" for name in names},
                           tmp_path / "manifest.parquet")
    feature_cache, hit = build_features_here(manifest, RECIPE, tmp_path / "cache")
    assert not hit and feature_cache.path == tmp_path / "cache" / feature_cache.metadata["key"]
    assert feature_cache.skipped().set_index("utterance_id")["reason_code"].to_dict() == {
        "corrupt": "decode_error", "empty": "empty", "silent": "all_zero"}
    assert build_features_here(manifest, RECIPE, tmp_path / "cache") == (feature_cache, True)
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [
        feature_cache.path.name]


def test_the_cache_layout_holds_no_folder_of_skip_records(tmp_path: Path) -> None:
    files = corpus(tmp_path)
    del files["gone"], files["folder"]
    feature_cache, _ = build_features_here(manifest_of(files, tmp_path / "manifest.parquet"),
                                           RECIPE, tmp_path / "cache")
    assert sorted(path.name for path in feature_cache.path.iterdir()) == [
        "arrays", cache.DATA_DIR, cache.METADATA_FILE, cache.SKIPPED_FILE]
    assert all(re.fullmatch(r"part-[0-9a-f]{20}\.parquet", path.name)
               for path in feature_cache.data_dir.iterdir())
    assert pd.read_csv(feature_cache.path / cache.SKIPPED_FILE).columns.tolist() == [
        "utterance_id", "path", "reason_code", "reason"]


def test_a_corpus_none_of_whose_files_can_be_read_is_refused(tmp_path: Path) -> None:
    files = corpus(tmp_path)
    del files["good_a"], files["good_b"]
    with pytest.raises(UserError, match=r"no utterance could be featurized and 2 of their files "
                                        r"could not be read \(first: .*gone.wav: cannot read"):
        build_features_here(manifest_of(files, tmp_path / "manifest.parquet"), RECIPE,
                            tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
