"""The cache's memory-mapped arrays: exactly the Parquet rows, read-only, shared between
processes, added to caches written before them, and training on them unchanged to the bit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from ser_ray.errors import UserError
from ser_ray.experiment import TrainConfig
from ser_ray.features import load_features, parse_augmentation, parse_recipe
from ser_ray.features.arrays import (
    ARRAYS_DIR,
    PARQUET_ROWS_FILE,
    ROWS_FILE,
    RowFeatures,
    has_arrays,
    open_arrays,
    write_arrays,
)
from ser_ray.features.cache import UNSHARED_PREFIX, open_cache
from ser_ray.features.featurize import FeatureRequest, build_features_here, feature_request
from ser_ray.features.loader import ROW_ORDER
from ser_ray.train import ModelChoice, TrainJob, train_folds
from ser_ray.train.data import FoldData, Split, Standardizer, standardizer_chunk_rows

NOISE = "noise:snr=20"


def parquet_rows(cache_path: Path, condition: pc.Expression | None = None) -> pa.Table:
    """Rows as a pyarrow script reads the portable cache, in the loader's order."""
    table = pads.dataset(cache_path / "data", format="parquet").to_table(filter=condition)
    return table.sort_by(list(ROW_ORDER))


def parquet_features(table: pa.Table, shape: tuple[int, ...]) -> np.ndarray:
    values = pa.concat_arrays(table.column("features").chunks).flatten()
    return values.to_numpy(zero_copy_only=False).reshape(-1, *shape)


@pytest.fixture(scope="module")
def other_caches(tiny_study, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MFCC segments (several rows per utterance, no STFT versions) and utterance vectors
    (one-dimensional rows), each with a noisy copy, for a dozen utterances."""
    base = tmp_path_factory.mktemp("other_caches")
    manifest = pd.read_parquet(tiny_study.selected_manifest).head(12)
    manifest.to_parquet(base / "manifest.parquet")
    return {recipe: build_features_here(base / "manifest.parquet", parse_recipe(recipe),
                                        base / "cache", [parse_augmentation(NOISE)])[0].path
            for recipe in ("mfcc_segments", "spectral_stats")}


@pytest.mark.parametrize("recipe", ["logmel", "mfcc_segments", "spectral_stats"])
def test_the_arrays_hold_exactly_the_rows_and_values_of_the_parquet_cache(
        tiny_study, other_caches: dict[str, Path], recipe: str) -> None:
    cache_path = tiny_study.cache if recipe == "logmel" else other_caches[recipe]
    loaded = load_features(cache_path)
    expected = parquet_rows(cache_path)
    assert len(loaded) == expected.num_rows > 0
    for name, values in [("utterance_id", loaded.utterance_ids),
                         ("source_utterance_id", loaded.source_utterance_ids),
                         ("augmentation", loaded.augmentations),
                         ("stft_version", loaded.stft_versions),
                         ("segment_index", loaded.segment_indices),
                         ("label", loaded.labels)]:
        assert pa.array(values, from_pandas=True).to_pylist() == \
            expected.column(name).to_pylist(), name
    assert set(loaded.augmentations) == {"none", NOISE}
    np.testing.assert_array_equal(np.asarray(loaded.features),
                                  parquet_features(expected, loaded.features.feature_shape))


def test_a_selection_reads_its_versions_in_the_order_asked_and_nothing_else(tiny_study) -> None:
    sources = sorted(pd.read_parquet(tiny_study.selected_manifest)["utterance_id"])[:5]
    loaded = load_features(tiny_study.cache, stft_versions=[8, 2], augmentations=[NOISE],
                           source_utterance_ids=sources)
    assert list(loaded.stft_versions) == [8] * 5 + [2] * 5
    assert set(loaded.augmentations) == {NOISE} and list(loaded.source_utterance_ids[:5]) == \
        sources
    for version, part in [(8, slice(0, 5)), (2, slice(5, 10))]:
        expected = parquet_rows(tiny_study.cache, (pc.field("stft_version") == version)
                                & (pc.field("augmentation") == NOISE)
                                & pc.field("source_utterance_id").isin(sources))
        np.testing.assert_array_equal(loaded.features[part],
                                      parquet_features(expected, loaded.features.feature_shape))
    # Only the slabs of version 8 and 2 with noise are touched by these rows.
    assert len(set(loaded.features.slab.tolist())) == 2


def test_a_trial_s_features_are_read_only_maps_shared_by_two_processes(tiny_study) -> None:
    data = FoldData(TrainJob(manifest=tiny_study.selected_manifest, folds=tiny_study.folds,
                             cache=tiny_study.cache, model=ModelChoice(name="eca_cnn"),
                             train=TrainConfig(test_version=8)))
    features = data.features
    assert all(isinstance(slab, np.memmap) and not slab.flags.writeable
               for slab in features.slabs)
    with pytest.raises(ValueError, match="read-only"):
        features.slabs[0][0, 0, 0] = 1.0
    assert features.nbytes == len(data.rows) * int(np.prod(data.feature_shape)) * 4
    holder = textwrap.dedent(f"""
        import sys
        import numpy as np
        from ser_ray.features import load_features
        loaded = load_features(__import__("pathlib").Path({str(tiny_study.cache)!r}),
                               stft_versions=[8])
        total = float(np.asarray(loaded.features).sum())  # every row paged in
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    holders = [subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        mapped = []
        for process in holders:
            assert process.stdout.readline().strip() == "ready"
            mapped.append(_mapped_slabs(process.pid))
    finally:
        for process in holders:
            process.communicate("\n", timeout=60)
    assert mapped[0] and mapped[0] == mapped[1]


def _mapped_files(pid: int | str) -> list[tuple[int, int, str, str]]:
    """(start, end, device:inode, path) of every file mapping of a process."""
    found = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            found.append((start, end, f"{fields[3]}:{fields[4]}", fields[5]))
    return found


def _mapped_slabs(pid: int) -> set[tuple[str, str]]:
    """(device:inode, path) of every slab file the process maps."""
    return {(inode, path) for _, _, inode, path in _mapped_files(pid)
            if f"/{ARRAYS_DIR}/slab-" in path}


def _without_arrays(cache_dir: Path) -> None:
    shutil.rmtree(cache_dir / ARRAYS_DIR)


def _with_parquet_row_table(cache_dir: Path) -> None:
    """The arrays as written when their row table was Parquet."""
    rows = cache_dir / ARRAYS_DIR / ROWS_FILE
    pq.write_table(pa.ipc.open_file(rows).read_all(), cache_dir / ARRAYS_DIR / PARQUET_ROWS_FILE)
    rows.unlink()


def _noise_request(manifest: Path, cache_root: Path) -> FeatureRequest:
    """The request `tiny_study`'s cache answers."""
    recipe = parse_recipe({"kind": "logmel", "versions": [2, 8], "duration_s": 2.0})
    return feature_request(manifest, recipe, cache_root, [parse_augmentation(NOISE)])


@pytest.mark.parametrize("unshared", [False, True], ids=["published", "run-private"])
@pytest.mark.parametrize(("make_old", "refusal", "kept"), [
    (_without_arrays, "has no arrays/", set()),
    (_with_parquet_row_table, "holds rows.parquet, not rows.arrow", {PARQUET_ROWS_FILE}),
])
def test_a_cache_from_before_the_arrays_is_refused_then_completed_without_recomputing(
        tiny_study, tmp_path: Path, make_old, refusal: str, kept: set[str],
        unshared: bool) -> None:
    old_root = tmp_path / "cache"
    old = old_root / (f"{UNSHARED_PREFIX}{tiny_study.cache.name}" if unshared
                      else tiny_study.cache.name)
    shutil.copytree(tiny_study.cache, old)
    make_old(old)
    with pytest.raises(UserError, match=f"{refusal}.*without recomputing"):
        load_features(old)
    request = _noise_request(tiny_study.selected_manifest, old_root)
    untouched = [*(old / "data").iterdir(), *(old / ARRAYS_DIR).glob("slab-*.npy")]
    before = [(path.stat().st_ino, path.stat().st_mtime_ns) for path in untouched]
    found = request.earlier_unpublished(old) if unshared else request.published()
    assert found.path == old and has_arrays(old)
    # no feature recomputed, and no slab of arrays that had them rewritten
    assert [(path.stat().st_ino, path.stat().st_mtime_ns) for path in untouched] == before
    assert {path.name for path in (old / ARRAYS_DIR).iterdir()} == \
        {path.name for path in (tiny_study.cache / ARRAYS_DIR).iterdir()} | kept
    completed, fresh = load_features(old), load_features(tiny_study.cache)
    np.testing.assert_array_equal(np.asarray(completed.features), np.asarray(fresh.features))
    np.testing.assert_array_equal(completed.utterance_ids, fresh.utterance_ids)


def _without_row_table(cache_dir: Path) -> None:
    (cache_dir / ARRAYS_DIR / ROWS_FILE).unlink()


def _with_unreadable_row_table(cache_dir: Path) -> None:
    (cache_dir / ARRAYS_DIR / ROWS_FILE).write_bytes(b"not an Arrow file")


def _with_unreadable_parquet_row_table(cache_dir: Path) -> None:
    _with_parquet_row_table(cache_dir)
    (cache_dir / ARRAYS_DIR / PARQUET_ROWS_FILE).write_bytes(b"not a Parquet file")


@pytest.mark.parametrize(("damage", "why"), [
    (_without_row_table, "it needs slabs.json and rows.arrow"),
    (_with_unreadable_row_table, "its rows.arrow cannot be read"),
    (_with_unreadable_parquet_row_table, "its rows.parquet cannot be read"),
])
def test_damaged_arrays_are_refused_with_what_to_do(tiny_study, tmp_path: Path, damage,
                                                    why: str) -> None:
    damaged_root = tmp_path / "cache"
    damaged = damaged_root / tiny_study.cache.name
    shutil.copytree(tiny_study.cache, damaged)
    damage(damaged)
    refusal = f"arrays of the feature cache .* are damaged \\({why}.*delete its arrays/ folder"
    if damage is not _with_unreadable_parquet_row_table:  # else: refused as older, see above
        with pytest.raises(UserError, match=refusal):
            load_features(damaged)
    if damage is not _with_unreadable_row_table:  # else: complete as far as files go
        with pytest.raises(UserError, match=refusal):
            _noise_request(tiny_study.selected_manifest, damaged_root).published()
    assert [path.name for path in (damaged / ARRAYS_DIR).iterdir()
            if path.name.startswith(".")] == []
    shutil.rmtree(damaged / ARRAYS_DIR)
    _noise_request(tiny_study.selected_manifest, damaged_root).published()
    np.testing.assert_array_equal(np.asarray(load_features(damaged).features),
                                  np.asarray(load_features(tiny_study.cache).features))


def test_the_row_table_is_mapped_not_read_into_the_process(tiny_study) -> None:
    """Its columns point into the file's mapping: nothing decoded, nothing copied."""
    feature_shape = open_cache(tiny_study.cache).metadata["feature_shape"]
    arrays = open_arrays(tiny_study.cache, feature_shape)
    path = os.path.realpath(tiny_study.cache / ARRAYS_DIR / ROWS_FILE)
    ranges = [(start, end) for start, end, _, mapped in _mapped_files("self") if mapped == path]
    assert ranges
    for name in ("slab_row", "utterance_id"):
        for chunk in arrays.rows.column(name).chunks:
            data = chunk.buffers()[-1]  # after the validity bitmap (and a string's offsets)
            assert any(start <= data.address < end for start, end in ranges), name
    assert arrays.rows.num_rows == len(load_features(tiny_study.cache))


def test_training_on_the_arrays_gives_the_metrics_of_parquet_loaded_features(
        tiny_study, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rows in the same order as the in-memory Parquet loader of before, with the
    standardizer of before (a float64 copy of each chunk): every metric of every epoch equal
    to the last bit."""
    job = TrainJob(manifest=tiny_study.selected_manifest, folds=tiny_study.folds,
                   cache=tiny_study.cache,
                   model=ModelChoice(name="eca_cnn", options={"scale": 1, "base_width": 4}),
                   train=TrainConfig(epochs=2, test_version=8, train_versions=(2, 8),
                                     augmentations=(NOISE,), standardize="train-fold",
                                     batch_size=16))
    on_arrays = train_folds(job)
    load_rows = FoldData._load_rows

    def parquet_in_memory(data: FoldData) -> tuple[pd.DataFrame, np.ndarray]:
        rows, _ = load_rows(data)
        parts = []
        for version in sorted({data.test_version, *data.train_versions}, key=str):
            table = parquet_rows(data.cache.path, (pc.field("stft_version") == version)
                                 & pc.field("augmentation").isin(data.augmentations)
                                 & pc.field("source_utterance_id").isin(
                                     list(data.utterances.index)))
            parts.append(parquet_features(table, data.feature_shape))
        return rows, np.concatenate(parts)

    def standardizer_of_copies(data: FoldData, train: Split) -> Standardizer:
        axes = (0, *range(2, len(data.feature_shape) + 1))
        total = np.zeros(data.feature_shape[0], np.float64)
        squares = np.zeros(data.feature_shape[0], np.float64)
        chunk_rows = standardizer_chunk_rows(data.feature_shape)
        for start in range(0, len(train.rows), chunk_rows):
            chunk = data.features[train.rows[start:start + chunk_rows]].astype(np.float64)
            total += chunk.sum(axis=axes)
            squares += (chunk ** 2).sum(axis=axes)
        count = len(train.rows) * int(np.prod(data.feature_shape[1:]))
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
        shape = (data.feature_shape[0], *([1] * (len(data.feature_shape) - 1)))
        return Standardizer(mean.astype(np.float32).reshape(shape),
                            np.where(std > 1e-8, std, 1.0).astype(np.float32).reshape(shape))

    monkeypatch.setattr(FoldData, "_load_rows", parquet_in_memory)
    monkeypatch.setattr(FoldData, "standardizer", standardizer_of_copies)
    in_memory = train_folds(job)
    strip = {"seconds", "finished_at"}
    assert [[{k: v for k, v in record.items() if k not in strip} for record in history]
            for history in on_arrays.histories.values()] == \
        [[{k: v for k, v in record.items() if k not in strip} for record in history]
         for history in in_memory.histories.values()]


def test_a_failed_arrays_write_leaves_nothing_behind(tiny_study, tmp_path: Path) -> None:
    broken = tmp_path / "cache"
    shutil.copytree(tiny_study.cache, broken)
    shutil.rmtree(broken / ARRAYS_DIR)
    (broken / "data" / "zz-not-parquet.parquet").write_bytes(b"not a Parquet file")
    with pytest.raises(pa.ArrowInvalid):
        write_arrays(broken, (64, 201))
    assert not has_arrays(broken)
    assert [path.name for path in broken.iterdir() if path.name.startswith(".")] == []


def test_row_features_index_like_numpy_rows_or_refuse() -> None:
    slabs = [np.arange(12, dtype=np.float32).reshape(6, 2), -np.ones((1, 2), np.float32)]
    rows = RowFeatures(slabs, np.array([0, 0, 1, 0, 0, 0]), np.array([5, 4, 0, 2, 1, 0]), (2,))
    as_numpy = np.asarray(rows)
    assert as_numpy.tolist() == [[10, 11], [8, 9], [-1, -1], [4, 5], [2, 3], [0, 1]]
    assert rows[[]].shape == (0, 2) and rows[-1].tolist() == [0, 1]
    np.testing.assert_array_equal(rows[1:4], as_numpy[1:4])
    mask = np.array([True, False, True, False, False, True])
    np.testing.assert_array_equal(rows[mask], as_numpy[mask])
    with pytest.raises(IndexError, match="boolean mask of shape"):
        rows[np.array([True, False])]
    with pytest.raises(IndexError, match="not float64"):
        rows[np.array([1.7, 2.2])]
    with pytest.raises(ValueError, match="always a copy"):
        np.asarray(rows, copy=False)


def test_feature_moments_read_the_rows_in_chunks_into_two_buffers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The standardizer's pass over shared rows: the sums of every row, whatever the chunk
    size, equal to summing a private copy of them."""
    from ser_ray.train import data

    rng = np.random.default_rng(0)
    slabs = [rng.standard_normal((7, 3, 5)).astype(np.float32),
             rng.standard_normal((4, 3, 5)).astype(np.float32)]
    features = RowFeatures(slabs, np.array([0, 1, 0, 0, 1, 0, 1]),
                           np.array([6, 0, 2, 3, 3, 0, 1]), (3, 5))
    rows = np.array([5, 1, 2, 6, 0, 4])
    copy = np.asarray(features)[rows].astype(np.float64)
    monkeypatch.setattr(data, "STANDARDIZER_CHUNK_BYTES", 4 * 3 * 5 * 8)  # 4 rows a chunk
    total, squares, count = data.feature_moments(features, rows)
    # Equal to the bit to summing float64 copies of the same chunks (4 rows, then 2).
    chunks = [copy[:4], copy[4:]]
    np.testing.assert_array_equal(total, sum(chunk.sum(axis=(0, 2)) for chunk in chunks))
    np.testing.assert_array_equal(squares,
                                  sum((chunk ** 2).sum(axis=(0, 2)) for chunk in chunks))
    assert count == 6 * 5


def test_gathered_rows_go_straight_into_the_buffer_given_or_are_refused() -> None:
    slabs = [np.arange(12, dtype=np.float32).reshape(6, 2), -np.ones((1, 2), np.float32)]
    rows = RowFeatures(slabs, np.array([0, 0, 1, 0]), np.array([5, 4, 0, 2]), (2,))
    buffer = np.full((3, 2), np.nan, np.float32)
    assert rows.gather(np.array([2, 0, 3]), out=buffer) is buffer
    assert buffer.tolist() == [[-1, -1], [10, 11], [4, 5]]
    with pytest.raises(ValueError, match="C-contiguous float32 of shape"):
        rows.gather(np.array([0, 1]), out=buffer)
    for not_row_numbers in (np.array([True, False, True, False]), np.array([[0, 1]])):
        with pytest.raises(IndexError, match="one row number per row"):
            rows.gather(not_row_numbers)
    with pytest.raises(UserError, match="beyond the end of their slabs"):
        RowFeatures(slabs, np.array([0, 1]), np.array([6, 0]), (2,))
    with pytest.raises(UserError, match="names slab 2"):
        RowFeatures(slabs, np.array([0, 2]), np.array([0, 0]), (2,))
