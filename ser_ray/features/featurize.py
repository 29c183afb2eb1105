"""Featurizing a manifest into a feature cache: the per-block featurizer, the Parquet layout,
and the steps around it that make a cache complete — without Ray.

`Featurizer` turns one block of manifest rows into one Parquet part of feature rows in the
staging directory's `data/`: each utterance is decoded once, its augmented copies derived, and
every variant the recipe asks for (all STFT versions, all segments) computed from that one
waveform. What else the block has to say — the utterances it skipped and why, the part it
wrote — it returns as a small table (`outcome_schema`), which reaches the driver through Ray
Data like any other output: the only thing a featurizer task leaves on its node's disk is its
Parquet part, in the staging directory the cache root shares with every node. The Ray Data
pipeline (`ser_ray.features.pipeline`) maps it over the manifest on a cluster;
`build_features_here` runs it in this process (tests, small corpora) and writes the same cache,
the same rows under the same key.

A cache is published under its content key only when every skip is a property of the audio
itself (`AUDIO_REASON_CODES`): a file that could not be read (a missing mount, a permission)
would be read by a later run, so a cache without it is kept for this run only, under a
run-private name that no later request finds (`cache.keep_unpublished`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import torch

from ser_ray.corpus.manifest import read_manifest
from ser_ray.errors import UserError
from ser_ray.features import cache
from ser_ray.features.arrays import with_complete_arrays, write_arrays
from ser_ray.features.audio import BadAudio, load_waveform
from ser_ray.features.augment import AugmentationSpec, apply_augmentation
from ser_ray.features.leakage import ORIGINAL, derived_utterance_id
from ser_ray.features.recipe import FeatureItem
from ser_ray.features.recipes import FeatureRecipe

logger = logging.getLogger(__name__)

FEATURIZE_FAILED = "featurize_failed"
# Skip reasons that are properties of the audio file itself (its bytes, under this recipe):
# every later run of the same request would skip the utterance again, so a cache that lacks
# it is complete and is published under its content key. Any other reason — "unreadable"
# (the file could not be opened: missing, a broken link, a directory, no permission; see
# `ser_ray.features.audio`) or one this list does not know — says something about the
# machine that ran it, such as a corpus mount missing on one node, and keeps the cache out of
# the shared namespace so that a later request computes it again.
AUDIO_REASON_CODES = frozenset({"decode_error", "empty", "not_finite", "all_zero", "too_short",
                                FEATURIZE_FAILED})
SKIPPED_COLUMNS = ["utterance_id", "path", "reason_code", "reason"]
# The kinds of record in a featurizer's outcome table.
SKIPPED_RECORD = "skipped"  # an utterance left out: utterance_id, path, reason_code, reason
PART_RECORD = "part"  # the Parquet part the block was written to: path (its name), rows
NO_STAGING_RECORD = "no_staging"  # the staging data directory (path) is absent on a node (reason)
PART_WRITING_SUFFIX = ".writing"
Device = Literal["cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


def outcome_schema() -> pa.Schema:
    """What a featurizer returns for a block, one row per record (`*_RECORD`); small, and
    carried back to the driver by Ray rather than through any file."""
    return pa.schema([
        ("record", pa.string()),
        ("utterance_id", pa.string()),
        ("path", pa.string()),
        ("reason_code", pa.string()),
        ("reason", pa.string()),
        ("rows", pa.int64()),
    ])


def feature_schema() -> pa.Schema:
    return pa.schema([
        ("utterance_id", pa.string()),
        ("source_utterance_id", pa.string()),
        ("augmentation", pa.string()),
        ("augmentation_params", pa.string()),
        ("stft_version", pa.int32()),
        ("segment_index", pa.int32()),
        ("label", pa.string()),
        ("features", pa.large_list(pa.float32())),
    ])


class DecodedUtterance(NamedTuple):
    """A manifest row with its waveform at the recipe's rate."""

    utterance_id: str
    path: str
    label: str
    waveform: np.ndarray


Provenance = tuple[str, str, str, str, str]
"""(utterance_id, source_utterance_id, augmentation, augmentation_params, label) of a row."""


class Featurizer:
    """The Ray Data UDF: one pandas block of manifest rows → one Parquet part of feature rows
    in `data_dir`, and the block's outcome table (`outcome_schema`) as its output.

    The block is featurized `batch_size` utterances at a time and each batch's rows appended
    to the part as they come, so a task holds one batch of features at a time. An utterance
    that cannot be decoded, augmented or featurized is recorded in the outcome with its
    reason, and the rest of the block goes on.
    """

    def __init__(self, recipe: FeatureRecipe, augmentations: Sequence[AugmentationSpec],
                 seed: int, data_dir: str, device: Device, batch_size: int = 8) -> None:
        self.recipe = recipe
        self.augmentations = list(augmentations)
        self.seed = seed
        self.data_dir = data_dir
        self.device = device
        self.batch_size = batch_size

    def __call__(self, block: pd.DataFrame) -> pa.Table:
        data_dir = Path(self.data_dir)
        if not data_dir.is_dir():
            # The staging directory is made by the driver: a node that does not see it does
            # not share the cache root, and whatever it wrote would stay on its own disk.
            return _outcome_table([{"record": NO_STAGING_RECORD, "path": str(data_dir),
                                    "reason": socket.gethostname()}])
        # One thread per featurizer, wherever it runs (the numbers then match bit for bit);
        # the process gets its own count back.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._write_block(block, data_dir)
        finally:
            torch.set_num_threads(threads)

    def _write_block(self, block: pd.DataFrame, data_dir: Path) -> pa.Table:
        skipped: list[dict[str, str]] = []
        with _PartWriter(data_dir, part_name(block["utterance_id"])) as part:
            for start in range(0, len(block), self.batch_size):
                part.write(self._rows(block.iloc[start:start + self.batch_size], skipped))
        records: list[dict[str, Any]] = [{"record": SKIPPED_RECORD, **item} for item in skipped]
        if part.rows:
            records.append({"record": PART_RECORD, "path": part.name, "rows": part.rows})
        return _outcome_table(records)

    def _rows(self, batch: pd.DataFrame, skipped: list[dict[str, str]]) -> pa.Table:
        decoded: list[DecodedUtterance] = []
        for utterance_id, path, label in zip(batch["utterance_id"], batch["path"], batch["label"]):
            try:
                waveform = load_waveform(path, self.recipe.sample_rate)
            except BadAudio as bad:
                skipped.append(_skipped_item(utterance_id, path, bad.reason_code, bad.reason))
                continue
            decoded.append(DecodedUtterance(utterance_id, path, label, waveform))
        provenance, items = self._featurize(decoded, skipped)
        return _rows_table(provenance, items)

    def _featurize(self, decoded: list[DecodedUtterance], skipped: list[dict[str, str]]
                   ) -> tuple[list[Provenance], list[list[FeatureItem]]]:
        """Rows of the whole batch in one recipe call; when that raises, the batch again one
        utterance at a time, so that only the utterances at fault are skipped."""
        try:
            return self._augment_and_featurize(decoded)
        except Exception:  # any failure: the per-utterance pass below names the culprit
            return self._featurize_one_by_one(decoded, skipped)

    def _featurize_one_by_one(self, decoded: list[DecodedUtterance],
                              skipped: list[dict[str, str]]
                              ) -> tuple[list[Provenance], list[list[FeatureItem]]]:
        provenance: list[Provenance] = []
        items: list[list[FeatureItem]] = []
        for utterance in decoded:
            try:
                utterance_provenance, utterance_items = self._augment_and_featurize([utterance])
            except Exception as error:  # whatever it is, it must not cost the other utterances
                skipped.append(_skipped_item(utterance.utterance_id, utterance.path,
                                             FEATURIZE_FAILED, f"{type(error).__name__}: {error}"))
                continue
            provenance += utterance_provenance
            items += utterance_items
        return provenance, items

    def _augment_and_featurize(self, decoded: list[DecodedUtterance]
                               ) -> tuple[list[Provenance], list[list[FeatureItem]]]:
        """Each utterance and its augmented copies, featurized in one recipe call."""
        waveforms: list[np.ndarray] = []
        provenance: list[Provenance] = []
        for utterance_id, _, label, waveform in decoded:
            waveforms.append(waveform)
            provenance.append((utterance_id, utterance_id, ORIGINAL, "{}", label))
            for spec in self.augmentations:
                waveforms.append(apply_augmentation(
                    waveform, self.recipe.sample_rate, spec, (self.seed, utterance_id)))
                provenance.append((derived_utterance_id(utterance_id, spec.name), utterance_id,
                                   spec.name, json.dumps(spec.params(), sort_keys=True), label))
        return provenance, self.recipe.featurize_batch(waveforms, self.device)


def _skipped_item(utterance_id: str, path: str, reason_code: str, reason: str
                  ) -> dict[str, str]:
    return {"utterance_id": utterance_id, "path": path, "reason_code": reason_code,
            "reason": reason}


def part_name(utterance_ids: Iterable[str]) -> str:
    """The Parquet part of a block, named by the utterances in it: a task Ray retries writes
    the same name again instead of adding a second copy of its rows."""
    digest = hashlib.sha256("\n".join(utterance_ids).encode()).hexdigest()[:20]
    return f"part-{digest}.parquet"


class _PartWriter:
    """One Parquet part, written under a hidden name (which readers of `data/` skip) and
    renamed into place when complete; nothing is left when no row came."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.final = data_dir / name
        self.partial = data_dir / f".{name}.{uuid.uuid4().hex[:8]}{PART_WRITING_SUFFIX}"
        self.name = name
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.partial, feature_schema(), **parquet_options())
        self.writer.write_table(table)
        self.rows += table.num_rows

    def __enter__(self) -> _PartWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if self.writer is None:
            return
        self.writer.close()
        if error_type is None:
            self.partial.replace(self.final)
        else:
            self.partial.unlink(missing_ok=True)


def _outcome_table(records: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=outcome_schema())


@dataclass(frozen=True)
class Outcome:
    """What the featurizers of a request reported, gathered on the driver."""

    skipped: pd.DataFrame
    """SKIPPED_COLUMNS, one row per skipped utterance, by utterance_id."""
    parts: dict[str, int]
    """Parquet part name → its feature rows."""
    no_staging: list[str]
    """Nodes that did not see the staging directory."""


def gather_outcome(tables: Iterable[pa.Table]) -> Outcome:
    """The featurizers' outcome tables (in any blocks, in any order) as one `Outcome`."""
    tables = [table.cast(outcome_schema()) for table in tables]
    table = pa.concat_tables(tables) if tables else outcome_schema().empty_table()
    frame = table.to_pandas()
    skipped = frame.loc[frame["record"] == SKIPPED_RECORD, SKIPPED_COLUMNS]
    parts = frame.loc[frame["record"] == PART_RECORD]
    return Outcome(
        skipped=skipped.sort_values("utterance_id", kind="stable").reset_index(drop=True),
        parts={str(name): int(rows) for name, rows in zip(parts["path"], parts["rows"])},
        no_staging=sorted(set(frame.loc[frame["record"] == NO_STAGING_RECORD, "reason"])))


def _rows_table(provenance: list[Provenance],
                items: list[list[FeatureItem]]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in feature_schema().names}
    for (utterance_id, source_id, augmentation, params, label), waveform_items in zip(
        provenance, items
    ):
        for item in waveform_items:
            columns["utterance_id"].append(utterance_id)
            columns["source_utterance_id"].append(source_id)
            columns["augmentation"].append(augmentation)
            columns["augmentation_params"].append(params)
            columns["stft_version"].append(item.stft_version)
            columns["segment_index"].append(item.segment_index)
            columns["label"].append(label)
            columns["features"].append(item.features)
    features = _features_column(columns.pop("features"))
    return pa.table({**columns, "features": features}, schema=feature_schema())


def _features_column(arrays: list[np.ndarray]) -> pa.Array:
    """Equal-shape arrays as one list column over a single float32 buffer: one copy, where a
    list of per-row arrays would make pyarrow convert row by row."""
    if not arrays:
        return pa.array([], pa.large_list(pa.float32()))
    values = np.stack(arrays).astype(np.float32, copy=False).reshape(-1)
    offsets = np.arange(len(arrays) + 1, dtype=np.int64) * arrays[0].size
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


FEATURE_VALUES_COLUMN = "features.list.element"


def parquet_options() -> dict[str, Any]:
    """Dictionaries and min/max statistics for the id columns only: on the float features
    they cost half the write time and serve nothing (every value differs, no one filters on
    them). The features are stored byte-stream-split (each float's exponent bytes side by
    side, where a compressor finds them alike) and LZ4-compressed: a log-Mel cache is then
    ~23 % smaller than with plain Snappy and reads faster, for the same write time."""
    ids = [name for name in feature_schema().names if name != "features"]
    return {"use_dictionary": ids, "write_statistics": ids,
            "use_byte_stream_split": [FEATURE_VALUES_COLUMN],
            "compression": {**dict.fromkeys(ids, "snappy"), FEATURE_VALUES_COLUMN: "lz4"}}


@dataclass(frozen=True)
class FeatureRequest:
    """A feature set asked of a manifest: what its cache key covers, and where it goes."""

    manifest_path: Path
    manifest: pd.DataFrame
    recipe: FeatureRecipe
    augmentations: tuple[AugmentationSpec, ...]
    seed: int
    cache_root: Path
    request: dict[str, Any]
    key: str

    def published(self) -> cache.FeatureCache | None:
        """The complete cache of this request, if one was published already; its arrays are
        completed (`with_complete_arrays`)."""
        return with_complete_arrays(cache.find_complete(self.cache_root, self.key))

    def earlier_unpublished(self, path: Path | None) -> cache.FeatureCache | None:
        """The run-private cache at `path` (an earlier run's of the same study), if it
        answers this request; its arrays are completed (`with_complete_arrays`)."""
        if path is None or not path.name.startswith(cache.UNSHARED_PREFIX) \
                or not (path / cache.METADATA_FILE).is_file():
            return None
        found = cache.open_cache(path)
        return with_complete_arrays(found) if found.metadata.get("key") == self.key else None

    def stage(self, device: Device = "cpu", batch_size: int = 8) -> tuple[Path, Featurizer]:
        """A fresh staging directory and the featurizer that fills it (staging also clears
        the cache root of stale staging folders: `cache.staging_dir`)."""
        staging = cache.staging_dir(self.cache_root, self.key)
        return staging, Featurizer(self.recipe, self.augmentations, self.seed,
                                   str(staging / cache.DATA_DIR), device, batch_size)

    def publish(self, staging: Path, outcome: Outcome) -> cache.FeatureCache:
        """Check that every part the featurizers wrote is here, refuse a cache of nothing,
        write the skipped list and metadata, and move the staged cache into place: under its
        key when every skip is a property of the audio, else under a run-private name."""
        _refuse_parts_out_of_sight(outcome, staging)
        skipped = outcome.skipped
        _refuse_if_nothing_featurized(skipped, len(self.manifest), staging)
        unread = skipped[~skipped["reason_code"].isin(AUDIO_REASON_CODES)]
        _refuse_if_nothing_read(unread, len(self.manifest) - len(skipped), staging)
        skipped.to_csv(staging / cache.SKIPPED_FILE, index=False)
        rows = pads.dataset(staging / cache.DATA_DIR, format="parquet").count_rows()
        write_arrays(staging, self.recipe.feature_shape())
        metadata = {
            **self.request,
            "key": self.key,
            "feature_code_version": cache.FEATURE_CODE_VERSION,
            "feature_shape": list(self.recipe.feature_shape()),
            "variants": self.recipe.variant_values(),
            "rows": rows,
            "utterances": len(self.manifest) - len(skipped),
            "skipped": len(skipped),
            "manifest_path": str(self.manifest_path),
            "libraries": cache.library_versions(),
        }
        if unread.empty:
            return cache.publish(staging, self.cache_root, self.key, metadata)
        kept = cache.keep_unpublished(staging, self.cache_root, self.key, {
            **metadata, "unpublished": f"{len(unread)} utterance(s) skipped for reasons "
                                       f"other than their audio"})
        examples = "; ".join(f"{row.path}: {row.reason} ({row.reason_code})"
                             for row in unread.head(3).itertuples())
        logger.warning(
            "%d of %d utterances were skipped because their files could not be read, not "
            "because of their audio (first: %s). This run goes on with the other utterances, "
            "but the feature cache was NOT published under its key %s: it is kept for this "
            "run only in %s, and a later request computes it again (make the corpus readable "
            "on every node first).", len(unread), len(self.manifest), examples, self.key,
            kept.path)
        return kept


def feature_request(manifest_path: Path, recipe: FeatureRecipe, cache_root: Path,
                    augmentations: Sequence[AugmentationSpec] = (), seed: int = 0
                    ) -> FeatureRequest:
    """The request for these features of the manifest, keyed by content.

    Raises:
        UserError: an empty manifest.
    """
    manifest = read_manifest(manifest_path)
    if manifest.empty:
        raise UserError(f"manifest {manifest_path} lists no utterances")
    request = cache.feature_request(recipe, augmentations, seed, manifest)
    cache_root.mkdir(parents=True, exist_ok=True)
    return FeatureRequest(Path(manifest_path), manifest, recipe, tuple(augmentations), seed,
                          cache_root, request, cache.cache_key(request))


def build_features_here(manifest_path: Path, recipe: FeatureRecipe, cache_root: Path,
                        augmentations: Sequence[AugmentationSpec] = (), *, seed: int = 0,
                        batch_size: int = 8) -> tuple[cache.FeatureCache, bool]:
    """The same cache as `ser_ray.features.pipeline.build_features`, computed in this process
    (no Ray): the whole manifest as one block, so one Parquet part. Returns (cache, whether
    it was a hit)."""
    wanted = feature_request(manifest_path, recipe, cache_root, augmentations, seed)
    hit = wanted.published()
    if hit is not None:
        return hit, True
    staging, featurizer = wanted.stage(batch_size=batch_size)
    outcome = featurizer(wanted.manifest.loc[:, ["utterance_id", "path", "label"]])
    return wanted.publish(staging, gather_outcome([outcome])), False


def _refuse_parts_out_of_sight(outcome: Outcome, staging: Path) -> None:
    """Featurizer tasks write their parts where they run: a node that does not share the
    cache root reports so, or wrote a part that this machine does not see. Publishing then
    would make a cache without those rows, so nothing is kept and the run stops, naming the
    nodes (a hidden part still being written by a retried task is not one of the parts)."""
    data = staging / cache.DATA_DIR
    missing = [name for name in outcome.parts if not (data / name).is_file()]
    if not outcome.no_staging and not missing:
        for leftover in data.glob(f".*{PART_WRITING_SUFFIX}"):
            leftover.unlink(missing_ok=True)  # a task killed mid-write, written again since
        return
    shutil.rmtree(staging, ignore_errors=True)
    where = (f"on node(s) {', '.join(outcome.no_staging)}" if outcome.no_staging else
             f"({len(missing)} of {len(outcome.parts)} feature files written by featurizer "
             f"tasks are not visible here, e.g. {missing[0]})")
    raise UserError(f"the feature cache root {staging.parent} is not the same directory on "
                    f"every Ray node: its staging directory {data} is missing {where}; put the "
                    f"cache (--cache / cache_dir / SER_RAY_CACHE) on a file system every node "
                    f"mounts at the same path")


def _refuse_if_nothing_read(unread: pd.DataFrame, featurized: int, staging: Path) -> None:
    """No utterance featurized and files that could not be read: the corpus is not where the
    manifest says (a mount missing, a wrong root), and a cache of nothing would only fail
    later, in training; nothing is kept."""
    if unread.empty or featurized:
        return
    shutil.rmtree(staging, ignore_errors=True)
    examples = "; ".join(f"{row.path}: {row.reason}" for row in unread.head(3).itertuples())
    raise UserError(f"no utterance could be featurized and {len(unread)} of their files could "
                    f"not be read (first: {examples}), so no feature cache was written; check "
                    f"that the corpus is mounted at the same path on every node")


def _refuse_if_nothing_featurized(skipped: pd.DataFrame, utterances: int,
                                  staging: Path) -> None:
    """A recipe that fails on every utterance that decoded is broken (or its device is), not
    the data: caching that would skip the whole corpus for good, so nothing is published and
    the next request tries again."""
    failed = skipped[skipped["reason_code"] == FEATURIZE_FAILED]
    decoded = utterances - (len(skipped) - len(failed))
    if failed.empty or len(failed) < decoded:
        return
    shutil.rmtree(staging, ignore_errors=True)
    examples = "; ".join(f"{row.path}: {row.reason}" for row in failed.head(3).itertuples())
    raise UserError(f"featurizing failed for every one of the {decoded} decodable utterances, "
                    f"so no feature cache was written (first failures: {examples}); check the "
                    f"recipe's parameters and the device")
