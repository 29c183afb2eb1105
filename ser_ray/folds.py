"""Cross-validation folds for an utterance manifest, with a speaker-leakage check.

Whether test speakers are also heard in training changes SER accuracy by many points, so every
fold table states its protocol and is checked: a protocol that claims speaker independence and
shares a speaker across folds is an error, and a speaker-dependent one says so plainly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ser_ray.errors import UserError

KINDS: tuple[str, ...] = ("stratified", "session", "speaker")
FOLD_SCHEMA = pa.schema([("utterance_id", pa.string()), ("fold", pa.int64())])
METADATA_KEY = b"ser_ray.folds"
NAMED_AT_MOST = 10


class LeakageError(UserError):
    """A speaker-independent protocol whose folds share a speaker: results would be inflated."""

    def __init__(self, message: str, shared_speakers: dict[str, list[int]]) -> None:
        super().__init__(message)
        self.shared_speakers = shared_speakers


@dataclass(frozen=True)
class FoldProtocol:
    """How folds are made; `k=None` means one fold per session or speaker.

    `repeats` > 1 (stratified only) repeats the k-fold split with seeds seed, seed + 1, …:
    fold f of the table is fold f % k of repeat f // k, and each utterance has one fold per
    repeat. Repeated k-fold is what the corrected resampled t-test compares learners over.
    """

    kind: str
    k: int | None = None
    seed: int = 0
    repeats: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"protocol {self.kind!r} is not one of: {', '.join(KINDS)}")
        if self.k is not None and (not _is_int(self.k) or self.k < 2):
            raise UserError(f"k={self.k!r}: the number of folds must be an integer of at least 2")
        if self.kind == "stratified" and self.k is None:
            raise UserError("protocol 'stratified' needs k, the number of folds (e.g. k=5)")
        if not _is_int(self.seed) or self.seed < 0:
            raise UserError(f"seed={self.seed!r}: the seed must be a non-negative integer")
        if not _is_int(self.repeats) or self.repeats < 1:
            raise UserError(f"repeats={self.repeats!r}: the number of repeats must be an "
                            f"integer of at least 1")
        if self.repeats > 1 and self.kind != "stratified":
            raise UserError(f"repeats={self.repeats}: only protocol 'stratified' is repeated "
                            f"with other seeds; {self.kind!r} folds are the same every time")

    @property
    def speaker_independent(self) -> bool:
        return self.kind in ("session", "speaker")

    def repeat_of(self, fold: int) -> int:
        """The repeat a fold index of the table belongs to."""
        return fold // self.k if self.repeats > 1 else 0  # type: ignore[operator]


@dataclass(frozen=True)
class FoldCheck:
    """What a fold table guarantees: `speaker_independent` is measured, not taken on trust."""

    protocol: FoldProtocol
    speaker_independent: bool
    shared_speakers: dict[str, list[int]]
    n_speakers: int
    fold_sizes: dict[int, int]
    per_fold_label_counts: dict[int, dict[str, int]]

    def describe(self) -> str:
        sizes = self.fold_sizes.values()
        shape = f"{len(self.fold_sizes)} folds of {min(sizes)}-{max(sizes)} utterances"
        if self.protocol.repeats > 1:
            shape += (f" ({self.protocol.repeats} repeats of {self.protocol.k}-fold, seeds "
                      f"{self.protocol.seed}-{self.protocol.seed + self.protocol.repeats - 1})")
        if self.speaker_independent:
            return f"speaker-independent: no speaker appears in two folds; {shape}"
        return (
            f"SPEAKER-DEPENDENT: {len(self.shared_speakers)} of {self.n_speakers} speakers appear "
            f"in more than one fold (protocol {self.protocol.kind!r}); test speakers are seen "
            f"in training; {shape}"
        )


def make_folds(manifest: pd.DataFrame, protocol: FoldProtocol) -> pd.DataFrame:
    """One `fold` (0-based) per manifest row and repeat, in manifest order within each repeat;
    leakage-checked before return."""
    needs = {"stratified": (), "session": ("session",), "speaker": ("gender",)}[protocol.kind]
    _require_columns(manifest, ("utterance_id", "speaker", "label", *needs))
    if manifest.empty:
        raise UserError("the manifest has no utterances to split into folds")
    if protocol.kind == "stratified":
        k = int(protocol.k)  # type: ignore[arg-type]  (validated: stratified always has k)
        repeats = [repeat * k + _stratified(manifest["label"], k, protocol.seed + repeat)
                   for repeat in range(protocol.repeats)]
    elif protocol.kind == "session":
        _check_sessions(manifest, protocol)
        repeats = [_leave_one_group_out(manifest["session"])]
    else:
        repeats = [_by_speaker(manifest, protocol)]
    ids = manifest["utterance_id"].astype(str).to_numpy()
    folds = pd.DataFrame({"utterance_id": np.tile(ids, len(repeats)),
                          "fold": np.concatenate(repeats).astype(np.int64)})
    check_folds(manifest, folds, protocol)
    return folds


def _stratified(labels: pd.Series, k: int, seed: int) -> np.ndarray:
    """Per class, shuffle and deal round-robin, each class starting where the last one stopped.

    Dealing all classes as one continuous round-robin keeps both per-class counts and fold
    totals within ±1 across folds.
    """
    if k > len(labels):
        raise UserError(f"k={k} is more than the {len(labels)} utterances in the manifest")
    rng = np.random.default_rng(seed)
    codes = labels.astype(str).to_numpy()
    fold = np.empty(len(codes), dtype=np.int64)
    start = 0
    for label in sorted(set(codes)):
        rows = rng.permutation(np.flatnonzero(codes == label))
        fold[rows] = (start + np.arange(len(rows))) % k
        start = (start + len(rows)) % k
    return fold


def _check_sessions(manifest: pd.DataFrame, protocol: FoldProtocol) -> None:
    missing = int(manifest["session"].isna().sum())
    if missing:
        raise UserError(
            f"protocol 'session' needs a session for every utterance; {missing} utterances have "
            "none — use 'speaker'"
        )
    sessions = sorted(set(manifest["session"]))
    if len(sessions) < 2:
        raise UserError(f"protocol 'session' needs at least 2 sessions; the manifest has only "
                        f"{sessions[0]!r} — use 'speaker'")
    if protocol.k is not None and protocol.k != len(sessions):
        raise UserError(
            f"protocol 'session' makes one fold per session: k={protocol.k} but the manifest "
            f"has {len(sessions)} sessions; leave k unset or set k={len(sessions)}"
        )


def _leave_one_group_out(groups: pd.Series) -> np.ndarray:
    """Fold i holds the i-th group in sorted order."""
    order = {group: index for index, group in enumerate(sorted(set(groups)))}
    return groups.map(order).to_numpy()


def _by_speaker(manifest: pd.DataFrame, protocol: FoldProtocol) -> np.ndarray:
    speakers = manifest["speaker"]
    missing = int(speakers.isna().sum())
    if missing:
        raise UserError(f"protocol 'speaker' needs a speaker for every utterance; "
                        f"{missing} utterances have none")
    n_speakers = speakers.nunique()
    if n_speakers < 2:
        raise UserError("protocol 'speaker' needs at least 2 speakers; the manifest has 1")
    if protocol.k is None or protocol.k == n_speakers:
        return _leave_one_group_out(speakers)
    if protocol.k > n_speakers:
        raise UserError(
            f"k={protocol.k} is more than the {n_speakers} speakers; protocol 'speaker' needs "
            f"k <= {n_speakers} (k={n_speakers} or unset is leave-one-speaker-out)"
        )
    return speakers.map(_grouped_speaker_folds(manifest, protocol.k, protocol.seed)).to_numpy()


def _grouped_speaker_folds(manifest: pd.DataFrame, k: int, seed: int) -> dict[str, int]:
    """Speaker-grouped k-fold, balanced by gender first and utterances second.

    Within each gender, speakers are taken in a seeded random order and each goes to the fold
    with the fewest speakers of that gender, ties to the fewest utterances, then the lowest index.
    The order is random rather than largest-first so that different seeds give different
    partitions even when every speaker has a different utterance count. No fold stays empty:
    an empty fold always wins the tie-breaks while one exists.
    """
    rng = np.random.default_rng(seed)
    per_speaker = manifest.groupby("speaker", sort=True).agg(
        utterances=("utterance_id", "size"), gender=("gender", "first")
    )
    gender = per_speaker["gender"].fillna("unknown")
    of_gender = np.zeros((gender.nunique(), k), dtype=np.int64)
    utterances = np.zeros(k, dtype=np.int64)
    assignment: dict[str, int] = {}
    for g, name in enumerate(sorted(set(gender))):
        names = per_speaker.index[gender == name].to_numpy()
        for speaker in rng.permutation(names):
            fold = min(range(k), key=lambda f: (of_gender[g, f], utterances[f], f))
            assignment[speaker] = fold
            of_gender[g, fold] += 1
            utterances[fold] += per_speaker.at[speaker, "utterances"]
    return assignment


def check_folds(manifest: pd.DataFrame, folds: pd.DataFrame, protocol: FoldProtocol) -> FoldCheck:
    """Check coverage and speaker leakage of a fold table (fresh or loaded from disk).

    Raises UserError when the table does not cover exactly the manifest's utterances or has an
    empty fold, and LeakageError when a speaker-independent protocol shares a speaker.
    """
    _require_columns(manifest, ("utterance_id", "speaker", "label"))
    _require_columns(folds, ("utterance_id", "fold"), what="fold table")
    if manifest.empty:
        raise UserError("the manifest has no utterances to check folds against")
    if manifest["speaker"].isna().any():
        raise UserError(f"{int(manifest['speaker'].isna().sum())} utterances have no speaker; "
                        "the leakage check needs a speaker for every utterance")
    fold = folds["fold"].to_numpy()
    if not np.issubdtype(fold.dtype, np.integer) or fold.min() < 0:
        raise UserError("fold table: `fold` must hold integers 0, 1, ... (0-based fold numbers)")
    n_folds = int(fold.max()) + 1
    empty = sorted(set(range(n_folds)) - set(fold.tolist()))
    if empty:
        raise UserError(f"fold table: folds {empty} are empty (folds must be numbered 0..k-1)")
    if protocol.k is not None and n_folds != protocol.k * protocol.repeats:
        raise UserError(f"fold table has {n_folds} folds but protocol {protocol.kind!r} "
                        f"says k={protocol.k}" + (f" × {protocol.repeats} repeats"
                                                  if protocol.repeats > 1 else ""))

    rows = manifest[["utterance_id", "speaker", "label"]].assign(
        utterance_id=manifest["utterance_id"].astype(str)
    ).merge(folds.assign(utterance_id=folds["utterance_id"].astype(str)), on="utterance_id")
    repeat = rows["fold"].map(protocol.repeat_of)
    for number in range(protocol.repeats):
        _check_coverage(manifest["utterance_id"].astype(str),
                        folds["utterance_id"].astype(str)[
                            folds["fold"].map(protocol.repeat_of) == number])
    shared: dict[str, list[int]] = {}
    for _, one_repeat in rows.groupby(repeat):
        for speaker, fs in one_repeat.groupby("speaker")["fold"].unique().items():
            if len(fs) > 1:
                shared[speaker] = sorted({*shared.get(speaker, ()), *(int(f) for f in fs)})
    n_speakers = rows["speaker"].nunique()
    if shared and protocol.speaker_independent:
        named = "; ".join(f"{speaker} (folds {', '.join(map(str, fs))})"
                          for speaker, fs in list(shared.items())[:NAMED_AT_MOST])
        more = f"; and {len(shared) - NAMED_AT_MOST} more" if len(shared) > NAMED_AT_MOST else ""
        raise LeakageError(
            f"protocol {protocol.kind!r} must be speaker-independent, but {len(shared)} of "
            f"{n_speakers} speakers appear in more than one fold: {named}{more}",
            shared,
        )
    counts = rows.groupby(["fold", "label"]).size()
    return FoldCheck(
        protocol=protocol,
        speaker_independent=not shared,
        shared_speakers=shared,
        n_speakers=n_speakers,
        fold_sizes={int(f): int(n) for f, n in rows["fold"].value_counts().sort_index().items()},
        per_fold_label_counts={
            int(f): {str(label): int(n) for (_, label), n in group.items()}
            for f, group in counts.groupby(level="fold")
        },
    )


def _check_coverage(manifest_ids: pd.Series, fold_ids: pd.Series) -> None:
    """The fold table must name each manifest utterance exactly once, and nothing else."""
    problems = []
    for ids, what in ((manifest_ids, "manifest"), (fold_ids, "fold table")):
        duplicated = ids[ids.duplicated()].unique().tolist()
        if duplicated:
            problems.append(f"{len(duplicated)} utterance ids appear twice in the {what} "
                            f"(e.g. {_examples(duplicated)})")
    missing = sorted(set(manifest_ids) - set(fold_ids))
    extra = sorted(set(fold_ids) - set(manifest_ids))
    if missing:
        problems.append(f"{len(missing)} manifest utterances have no fold "
                        f"(e.g. {_examples(missing)})")
    if extra:
        problems.append(f"{len(extra)} fold-table utterances are not in the manifest "
                        f"(e.g. {_examples(extra)})")
    if problems:
        raise UserError("the fold table does not match the manifest: " + "; ".join(problems)
                        + " — make the folds again from this manifest")


def write_folds(folds: pd.DataFrame, protocol: FoldProtocol, check: FoldCheck,
                path: str | Path) -> None:
    """Write the fold table as Parquet; the protocol and measured independence ride along."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(folds.loc[:, ["utterance_id", "fold"]], schema=FOLD_SCHEMA,
                                 preserve_index=False)
    recorded = {"kind": protocol.kind, "k": protocol.k, "seed": protocol.seed,
                "repeats": protocol.repeats, "speaker_independent": check.speaker_independent}
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(recorded, sort_keys=True).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def read_folds(path: str | Path) -> tuple[pd.DataFrame, FoldProtocol]:
    """Read a table written by `write_folds`, with the protocol it was made under."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"fold table {path} does not exist (make one with `ser-ray folds`)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise UserError(f"fold table {path} is not a Parquet file: {error}") from error
    missing = [c for c in FOLD_SCHEMA.names if c not in table.column_names]
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if missing or raw is None:
        lacks = f"columns {missing}" if missing else f"the {METADATA_KEY.decode()} metadata"
        raise UserError(f"fold table {path} lacks {lacks}; was it written by `ser-ray folds`?")
    recorded = json.loads(raw)
    protocol = FoldProtocol(kind=recorded["kind"], k=recorded["k"], seed=recorded["seed"],
                            repeats=recorded.get("repeats", 1))
    folds = table.select(FOLD_SCHEMA.names).to_pandas()
    return folds.astype({"utterance_id": str, "fold": "int64"}), protocol


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...],
                     what: str = "manifest") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"the {what} lacks columns {missing} (it needs {', '.join(columns)})")


def _examples(ids: list[str]) -> str:
    return ", ".join(map(str, ids[:3]))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
