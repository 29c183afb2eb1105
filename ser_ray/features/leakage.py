"""The guard between feature rows and a fold: train on training sources, test on originals.

Every feature row derives from one source utterance — the manifest row — as the original,
an augmented copy, another STFT version or a segment of it. Fold membership is per source,
so selection and checks go through `source_utterance_id`, never a row's own
`utterance_id`: an augmented copy of a test utterance has its own id but the same speech,
and training on it inflates test scores (spec models.md §1.6 and §3.5). Test utterances are
scored as recorded, once, at the evaluated STFT version: never augmented, never multi-version.

Rows are a pandas DataFrame or a pyarrow Table with `utterance_id`, `source_utterance_id`,
`augmentation` ("none" for originals) and, for log-Mel features, `stft_version`; selections
come back as the same type.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TypeVar

import pandas as pd
import pyarrow as pa

from ser_ray.errors import UserError
from ser_ray.folds import LeakageError

ORIGINAL = "none"
ID_SEPARATOR = "|"
NAMED_AT_MOST = 10

Rows = TypeVar("Rows", pd.DataFrame, pa.Table)


class SourceLeakageError(LeakageError):
    """Training rows that derive from test utterances, or whose source cannot be trusted.

    `source_ids` names the source utterances involved, so a caller can report or drop them.
    """

    def __init__(self, message: str, source_ids: tuple[str, ...]) -> None:
        super().__init__(message, shared_speakers={})
        self.source_ids = source_ids


def derived_utterance_id(source_id: str, augmentation_name: str,
                         stft_version: int | None = None) -> str:
    """A row id that is unique per copy and leads back to its source.

    The augmentation name never contains the separator, so the id reads back unambiguously.

    >>> derived_utterance_id("Ses01F_impro01_F000", "noise:snr=20")
    'Ses01F_impro01_F000|noise:snr=20'
    >>> derived_utterance_id("Ses01F_impro01_F000", "none")
    'Ses01F_impro01_F000'
    >>> derived_utterance_id("Ses01F_impro01_F000", "pitch:steps=2", stft_version=3)
    'Ses01F_impro01_F000|pitch:steps=2|stft3'
    """
    parts = [source_id]
    if augmentation_name != ORIGINAL:
        parts.append(augmentation_name)
    if stft_version is not None:
        parts.append(f"stft{stft_version}")
    return ID_SEPARATOR.join(parts)


def training_rows(rows: Rows, train_utterance_ids: Iterable[str], *,
                  train_augmentations: Collection[str] | None = None,
                  train_versions: Collection[int] | None = None) -> Rows:
    """Rows whose source is a training utterance: originals and every copy derived from them.

    Args:
        rows: feature rows of the whole corpus.
        train_utterance_ids: the fold's training utterances (source ids).
        train_augmentations: keep only these `augmentation` values (include "none" for the
            originals); None keeps all. A value absent from `rows` is an error, not an
            empty selection.
        train_versions: keep only these STFT versions; None keeps all.
    """
    keep = _column(rows, "source_utterance_id").isin(set(train_utterance_ids))
    if train_augmentations is not None:
        keep &= _present_values(rows, "augmentation", train_augmentations)
    if train_versions is not None:
        keep &= _present_values(rows, "stft_version", train_versions)
    return _select(rows, keep)


def test_rows(rows: Rows, test_utterance_ids: Iterable[str], *,
              stft_version: int | None) -> Rows:
    """Original rows of the test utterances at the one evaluated STFT version.

    `stft_version=None` is for features without STFT versions; rows that hold several
    versions then raise instead of silently scoring each test utterance more than once.
    """
    keep = (_column(rows, "source_utterance_id").isin(set(test_utterance_ids))
            & (_column(rows, "augmentation") == ORIGINAL))
    if stft_version is not None:
        keep &= _present_values(rows, "stft_version", [stft_version])
    elif _has_column(rows, "stft_version"):
        versions = sorted({int(v) for v in _column(rows, "stft_version")[keep].dropna()})
        if len(versions) > 1:
            raise UserError(f"the test rows hold STFT versions {versions}; a test utterance is "
                            f"scored at one version, so pass stft_version=")
    return _select(rows, keep)


# `test_rows` is a selection, not a test: pytest must not collect it where it is imported.
test_rows.__test__ = False  # type: ignore[attr-defined]


def assert_no_leakage(train_rows: pd.DataFrame | pa.Table, test_utterance_ids: Iterable[str],
                      *, test_rows: pd.DataFrame | pa.Table | None = None) -> None:
    """Raise SourceLeakageError if any training row comes from a test utterance.

    The check is on `source_utterance_id`, so augmented copies and other STFT versions of a
    test utterance are caught although their own ids differ. Given `test_rows`, their
    sources count as test utterances too, so train and test can share no source. Rows whose
    id does not derive from their source (a mislabelled source would hide a copy) fail too.
    """
    test_sources = {str(source_id) for source_id in test_utterance_ids}
    if test_rows is not None:
        test_sources |= set(_column(test_rows, "source_utterance_id").astype(str))
    _check_provenance(train_rows)
    sources = _column(train_rows, "source_utterance_id").astype(str)
    row_ids = _column(train_rows, "utterance_id").astype(str)
    leaked = sorted(set(sources[sources.isin(test_sources) | row_ids.isin(test_sources)]))
    if leaked:
        raise SourceLeakageError(
            f"{len(leaked)} test utterance(s) have rows in the training set: {_name(leaked)}; "
            f"no copy or STFT version of a test utterance may be trained on",
            tuple(leaked),
        )


def _check_provenance(rows: pd.DataFrame | pa.Table) -> None:
    """Originals carry their source's id; a copy's id is its source's id plus a suffix."""
    row_ids = _column(rows, "utterance_id").astype(str).tolist()
    sources = _column(rows, "source_utterance_id").astype(str).tolist()
    augmentations = _column(rows, "augmentation").astype(str).tolist()
    broken = [
        (row_id, source, augmentation)
        for row_id, source, augmentation in zip(row_ids, sources, augmentations)
        if not (row_id.startswith(source + ID_SEPARATOR)
                or (row_id == source and augmentation == ORIGINAL))
    ]
    if broken:
        row_id, source, augmentation = broken[0]
        raise SourceLeakageError(
            f"cannot rule out leakage: {len(broken)} training row(s) have an utterance_id that "
            f"does not derive from their source_utterance_id, e.g. {row_id!r} with source "
            f"{source!r} and augmentation {augmentation!r}; an original keeps its source id "
            f"and a copy is named derived_utterance_id(source, augmentation)",
            tuple(sorted({source for _, source, _ in broken})),
        )


def _present_values(rows: pd.DataFrame | pa.Table, name: str,
                    wanted: Collection[object]) -> pd.Series:
    """Mask of rows whose `name` is in `wanted`; a wanted value no row has is a user error."""
    column = _column(rows, name)
    present = set(column.dropna().unique())
    missing = [value for value in wanted if value not in present]
    if missing:
        raise UserError(f"{name} {_name(sorted(map(str, missing)))} not in the feature rows; "
                        f"they hold {_name(sorted(map(str, present)))}")
    return column.isin(list(wanted))


def _has_column(rows: pd.DataFrame | pa.Table, name: str) -> bool:
    return name in (rows.column_names if isinstance(rows, pa.Table) else rows.columns)


def _column(rows: pd.DataFrame | pa.Table, name: str) -> pd.Series:
    """A column as a Series indexed 0..n-1, so masks from different columns line up."""
    if not isinstance(rows, (pd.DataFrame, pa.Table)):
        raise TypeError(f"feature rows must be a pandas DataFrame or pyarrow Table, "
                        f"not {type(rows).__name__}")
    if not _has_column(rows, name):
        raise UserError(f"feature rows have no {name!r} column")
    if isinstance(rows, pa.Table):
        return rows.column(name).to_pandas()
    return rows[name].reset_index(drop=True)


def _select(rows: Rows, keep: pd.Series) -> Rows:
    mask = keep.to_numpy(dtype=bool)
    if isinstance(rows, pa.Table):
        return rows.filter(pa.array(mask))
    return rows[mask]


def _name(values: list[str]) -> str:
    named = ", ".join(values[:NAMED_AT_MOST])
    more = len(values) - NAMED_AT_MOST
    return named + (f" (and {more} more)" if more > 0 else "")
