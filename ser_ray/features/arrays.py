"""The load-optimised copy of a feature cache: one uncompressed `.npy` per (STFT version,
augmentation), memory-mapped read-only by every trial.

Parquet (`data/`) stays the portable form of a cache. Its row groups mix every version and
augmentation of a batch of utterances, and its feature column is compressed, so reading one
version decodes the whole cache into private memory. The arrays beside it are what training
reads: a trial maps the slabs it needs and touches only the rows it uses; the page cache holds
one copy per node whatever the number of trials; a feature set larger than memory pages in on
demand.

Layout of `<cache>/arrays/`:
    rows.arrow     one row per feature row: the id columns of `data/` plus `slab` (index into
                   slabs.json) and `slab_row` (row within that slab's array); an uncompressed
                   Arrow IPC file, memory-mapped too, so that selecting rows decodes nothing
                   and leaves no reader buffers behind in each trial
    slabs.json     [{"file", "stft_version", "augmentation", "rows"}], one per slab
    slab-NNN.npy   float32 (rows, *feature_shape); rows ordered by (source_utterance_id,
                   utterance_id, segment_index)

The directory appears by rename once complete, so a reader never sees half of it. Arrays
written when the row table was `rows.parquet` get `rows.arrow` beside it on the cache's next
request (the Parquet row table stays, for earlier ser-ray versions reading the same cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ser_ray.errors import UserError
from ser_ray.features.cache import DATA_DIR, FeatureCache

ARRAYS_DIR = "arrays"
ROWS_FILE = "rows.arrow"
PARQUET_ROWS_FILE = "rows.parquet"
SLABS_FILE = "slabs.json"
ID_SCHEMA = pa.schema([("utterance_id", pa.string()), ("source_utterance_id", pa.string()),
                       ("augmentation", pa.string()), ("stft_version", pa.int32()),
                       ("segment_index", pa.int32()), ("label", pa.string())])
SLAB_ORDER = ("source_utterance_id", "utterance_id", "segment_index")


def write_arrays(cache_dir: Path, feature_shape: Sequence[int]) -> Path:
    """The arrays of the Parquet rows in `cache_dir/data`, unless the cache has them; arrays
    whose row table is Parquet only get `rows.arrow`. Raises UserError for damaged arrays, or
    arrays that cannot be written where the cache is."""
    state = arrays_state(cache_dir)
    if state == "parquet row table":
        _row_table_from_parquet(cache_dir)
    elif state == "absent" and not _build_arrays(cache_dir, feature_shape):
        # Another process moved its arrays into place first; an older ser-ray's need the
        # conversion above.
        return write_arrays(cache_dir, feature_shape)
    return cache_dir / ARRAYS_DIR


def with_complete_arrays(found: FeatureCache | None) -> FeatureCache | None:
    """A cache found complete, its arrays completed if it was written before they had their
    present layout (`write_arrays`: nothing is done for complete ones)."""
    if found is not None:
        write_arrays(found.path, found.metadata["feature_shape"])
    return found


def _build_arrays(cache_dir: Path, feature_shape: Sequence[int]) -> bool:
    """Slabs of every (STFT version, augmentation), written one Parquet file at a time
    (memory: about twice one file's features), moved into place last. False when another
    process's arrays were moved into place first."""
    final = cache_dir / ARRAYS_DIR
    staging = cache_dir / f".{ARRAYS_DIR}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
    except OSError as error:
        raise _unwritable(cache_dir, error) from error
    try:
        files = sorted((cache_dir / DATA_DIR).glob("*.parquet"))
        index = _slab_index(files)
        slabs = _slab_table(index)
        arrays = [np.lib.format.open_memmap(staging / slab["file"], mode="w+", dtype=np.float32,
                                            shape=(slab["rows"], *feature_shape))
                  for slab in slabs]
        row_size = int(np.prod(feature_shape))
        for file_number, path in enumerate(files):
            _scatter(path, index, file_number, arrays, row_size)
        for array in arrays:
            array.flush()
        del arrays
        _write_row_table(index.drop_columns(["file", "file_row"]), staging / ROWS_FILE)
        (staging / SLABS_FILE).write_text(json.dumps(slabs, indent=2))
        staging.rename(final)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        # A rename refused because the folder exists is another process's arrays; an
        # interrupt always is a failure.
        if isinstance(error, OSError) and final.is_dir():
            return False
        raise
    return True


def _write_row_table(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _row_table_from_parquet(cache_dir: Path) -> None:
    """`rows.arrow` from the `rows.parquet` of arrays written before; it appears by rename,
    so concurrent readers and converters see it whole or not at all."""
    directory = cache_dir / ARRAYS_DIR
    try:
        table = pq.read_table(directory / PARQUET_ROWS_FILE)
    except (OSError, pa.ArrowException) as error:
        raise _damaged(f"its {PARQUET_ROWS_FILE} cannot be read: {error}", cache_dir) \
            from error
    staging = directory / f".{ROWS_FILE}-{uuid.uuid4().hex[:8]}"
    try:
        _write_row_table(table, staging)
        os.replace(staging, directory / ROWS_FILE)
    except BaseException as error:
        with contextlib.suppress(OSError):  # on a read-only mount even this unlink fails
            staging.unlink()
        if isinstance(error, OSError):
            raise _unwritable(cache_dir, error) from error
        raise


def _slab_index(files: Sequence[Path]) -> pa.Table:
    """The id columns of every row, with its file and row in the file, sorted into slabs."""
    parts = []
    for file_number, path in enumerate(files):
        table = pq.read_table(path, columns=ID_SCHEMA.names)
        parts.append(table.append_column("file", pa.array(np.full(table.num_rows, file_number,
                                                                   np.int32)))
                     .append_column("file_row", pa.array(np.arange(table.num_rows))))
    index = pa.concat_tables(parts) if parts else ID_SCHEMA.empty_table().append_column(
        "file", pa.array([], pa.int32())).append_column("file_row", pa.array([], pa.int64()))
    index = index.sort_by([("stft_version", "ascending"), ("augmentation", "ascending"),
                           *[(name, "ascending") for name in SLAB_ORDER]])
    versions = index.column("stft_version").fill_null(-1).to_numpy()
    augmentations = index.column("augmentation").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, (versions[1:] != versions[:-1])
                                  | (augmentations[1:] != augmentations[:-1])]) \
        if len(versions) else np.zeros(0, np.int64)
    slab = np.cumsum(np.isin(np.arange(len(versions)), starts)) - 1
    slab_row = np.arange(len(versions)) - starts[slab] if len(versions) else slab
    return index.append_column("slab", pa.array(slab.astype(np.int32))) \
        .append_column("slab_row", pa.array(slab_row.astype(np.int64)))


def _slab_table(index: pa.Table) -> list[dict[str, Any]]:
    slabs: list[dict[str, Any]] = []
    for slab, version, augmentation in zip(index.column("slab").to_pylist(),
                                           index.column("stft_version").to_pylist(),
                                           index.column("augmentation").to_pylist()):
        if slab == len(slabs):
            slabs.append({"file": f"slab-{slab:03d}.npy", "stft_version": version,
                          "augmentation": augmentation, "rows": 0})
        slabs[slab]["rows"] += 1
    return slabs


def _scatter(path: Path, index: pa.Table, file_number: int, arrays: list[np.ndarray],
             row_size: int) -> None:
    """Copy the feature rows of one Parquet file to their places in the slabs."""
    mine = index.filter(pc.field("file") == file_number)
    column = pq.read_table(path, columns=["features"]).column("features")
    values = pa.concat_arrays(column.chunks).flatten().to_numpy(zero_copy_only=False)
    values = values.reshape(-1, row_size)
    file_rows = mine.column("file_row").to_numpy()
    slabs = mine.column("slab").to_numpy()
    slab_rows = mine.column("slab_row").to_numpy()
    for slab in np.unique(slabs):
        chosen = slabs == slab
        target = arrays[slab].reshape(len(arrays[slab]), row_size)
        target[slab_rows[chosen]] = values[file_rows[chosen]]


@dataclass(frozen=True)
class CacheArrays:
    """The slabs of a cache, mapped read-only, and the table locating every row in them."""

    rows: pa.Table
    slabs: tuple[np.memmap, ...]
    feature_shape: tuple[int, ...]


ArraysState = Literal["complete", "absent", "parquet row table"]


def arrays_state(cache_dir: Path) -> ArraysState:
    """Whether a cache's arrays are complete, absent (written before caches carried them), or
    written when their row table was Parquet. Raises UserError for damaged arrays (the folder
    only appears complete, by rename, so anything else was altered after)."""
    if has_arrays(cache_dir):
        return "complete"
    directory = cache_dir / ARRAYS_DIR
    if not directory.exists():
        return "absent"
    if (directory / SLABS_FILE).is_file() and (directory / PARQUET_ROWS_FILE).is_file():
        return "parquet row table"
    # The folder may have been renamed into place since it was found missing above.
    if has_arrays(cache_dir):
        return "complete"
    raise _damaged(f"it needs {SLABS_FILE} and {ROWS_FILE}", cache_dir)


def has_arrays(cache_dir: Path) -> bool:
    return all((cache_dir / ARRAYS_DIR / name).is_file() for name in (SLABS_FILE, ROWS_FILE))


def slab_table(cache_dir: Path) -> list[dict[str, Any]]:
    """The slabs of a cache (slabs.json). Raises UserError for a cache whose arrays are not
    complete, saying what to do."""
    state = arrays_state(cache_dir)
    if state != "complete":
        found = {"absent": f"it has no {ARRAYS_DIR}/",
                 "parquet row table": f"its {ARRAYS_DIR}/ holds {PARQUET_ROWS_FILE}, not "
                                      f"{ROWS_FILE}"}[state]
        raise UserError(f"the feature cache {cache_dir} is older than this ser-ray's "
                        f"load-optimised arrays ({found}); run the same `ser-ray features` "
                        f"command or study again: it completes the cache without recomputing "
                        f"any feature")
    return json.loads((cache_dir / ARRAYS_DIR / SLABS_FILE).read_text())


def _damaged(why: str, cache_dir: Path | None = None) -> UserError:
    cache = "a feature cache" if cache_dir is None else f"the feature cache {cache_dir}"
    return UserError(f"the arrays of {cache} are damaged ({why}): delete its {ARRAYS_DIR}/ "
                     f"folder and request the features again")


def _unwritable(cache_dir: Path, error: OSError) -> UserError:
    return UserError(f"the feature cache {cache_dir} needs its load-optimised arrays "
                     f"completed, and they cannot be written there ({error}); run the same "
                     f"`ser-ray features` command once where the cache is writable")


def open_arrays(cache_dir: Path, feature_shape: Sequence[int]) -> CacheArrays:
    """Raises UserError for a cache whose arrays are not complete (`slab_table`) or whose row
    table cannot be read."""
    directory = cache_dir / ARRAYS_DIR
    mapped = tuple(np.load(directory / slab["file"], mmap_mode="r")
                   for slab in slab_table(cache_dir))
    try:
        # The table's buffers keep the mapped region alive once the file is closed.
        with pa.memory_map(str(directory / ROWS_FILE)) as source:
            rows = pa.ipc.open_file(source).read_all()
    except pa.ArrowInvalid as error:
        raise _damaged(f"its {ROWS_FILE} cannot be read: {error}", cache_dir) from error
    return CacheArrays(rows, mapped, tuple(feature_shape))


class RowFeatures:
    """Feature rows of a selection, read from the shared slabs when indexed.

    Indexing with row numbers (an integer array or list, a boolean mask, or a slice) returns
    a new array holding just those rows, and an int that row as a read-only view; nothing
    else is ever copied, and the slabs themselves are read-only.
    """

    def __init__(self, slabs: Sequence[np.ndarray], slab: np.ndarray, slab_row: np.ndarray,
                 feature_shape: tuple[int, ...]) -> None:
        self.slabs = tuple(slabs)
        self.slab = slab
        self.slab_row = slab_row
        self.feature_shape = feature_shape
        self.dtype = np.dtype(np.float32)
        _check_places(self.slabs, slab, slab_row)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.slab), *self.feature_shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the rows this selection uses."""
        return len(self.slab) * int(np.prod(self.feature_shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.slab)

    def __getitem__(self, index: np.ndarray | slice | int) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self.slabs[self.slab[index]][self.slab_row[index]]
        positions = np.arange(len(self))[index] if isinstance(index, slice) \
            else _positions(np.asarray(index), len(self))
        return self.gather(positions)

    def gather(self, positions: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The rows at integer `positions`, copied straight from the slabs into `out` (a new
        array when None, else C-contiguous float32 of their shape): no other copy is made, so
        a caller that reuses `out` reads any number of rows without allocating."""
        if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.integer):
            raise IndexError(f"gather takes one row number per row, not an array of "
                             f"{positions.dtype} of shape {positions.shape}")
        shape = (len(positions), *self.feature_shape)
        if out is None:
            out = np.empty(shape, self.dtype)
        elif out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {self.dtype} of shape {shape}, not "
                             f"{out.dtype} {out.shape}")
        slabs = self.slab[positions]
        slab_rows = self.slab_row[positions]
        bounds = np.r_[0, np.flatnonzero(slabs[1:] != slabs[:-1]) + 1, len(positions)]
        for start, end in zip(bounds[:-1], bounds[1:]):
            if start < end:
                # mode="clip" copies straight into `out` ("raise" would go through a buffer);
                # every place was checked against its slab's length when the rows were made.
                np.take(self.slabs[slabs[start]], slab_rows[start:end], axis=0,
                        out=out[start:end], mode="clip")
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("the rows of a selection are gathered from the slabs: an array "
                             "of them is always a copy")
        everything = self[:]
        return everything if dtype is None else everything.astype(dtype, copy=False)


def _check_places(slabs: Sequence[np.ndarray], slab: np.ndarray, slab_row: np.ndarray) -> None:
    """Every row's place names a slab and a row inside it (the row table and the slabs written
    together); anything else is a damaged cache, refused rather than read clipped."""
    if not len(slab):
        return
    named = slab[(slab < 0) | (slab >= len(slabs))]
    if len(named):
        raise _damaged(f"the row table names slab {int(named[0])}, of {len(slabs)} slabs")
    lengths = np.array([len(array) for array in slabs])
    if slab_row.min() < 0 or (slab_row >= lengths[slab]).any():
        raise _damaged("the row table places rows beyond the end of their slabs")


def _positions(index: np.ndarray, rows: int) -> np.ndarray:
    """Row numbers of an index array: a boolean mask's true places, or the integers."""
    if index.dtype == bool:
        if index.shape != (rows,):
            raise IndexError(f"a boolean mask of shape {index.shape} for {rows} rows")
        return np.flatnonzero(index)
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise IndexError(f"rows are indexed by integers, not {index.dtype}")
    return index.astype(np.intp, copy=False)
