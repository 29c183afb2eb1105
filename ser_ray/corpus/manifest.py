"""The utterance manifest: one row per usable utterance, the table every later stage reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ser_ray.errors import UserError

LABELS: tuple[str, ...] = (
    "neutral", "calm", "happy", "excited", "sad", "angry", "fear", "disgust",
    "surprise", "boredom", "frustrated", "contempt", "other", "unknown",
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("utterance_id", pa.string()),
        ("path", pa.string()),
        ("corpus", pa.string()),
        ("speaker", pa.string()),
        ("gender", pa.string()),
        ("session", pa.string()),
        ("raw_label", pa.string()),
        ("label", pa.string()),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int64()),
        ("channels", pa.int64()),
        ("improvised", pa.bool_()),
    ]
)
MANIFEST_COLUMNS: tuple[str, ...] = tuple(MANIFEST_SCHEMA.names)
SKIPPED_COLUMNS: tuple[str, ...] = ("path", "reason_code", "reason")
METADATA_KEY = b"ser_ray.manifest"


@dataclass(frozen=True)
class Skipped:
    """A file that is not a usable utterance, or the absent audio file of a labelled one,
    with a reason a person understands."""

    path: str
    reason_code: str
    reason: str


def skipped_path_for(manifest_path: Path) -> Path:
    return manifest_path.with_name(f"{manifest_path.stem}_skipped.csv")


def write_manifest(
    manifest: pd.DataFrame,
    path: Path,
    provenance: dict[str, object],
    skipped: list[Skipped] | None = None,
) -> None:
    """Write the manifest as Parquet; the provenance (how it was made) rides in the metadata.

    A skipped list, when given, goes to `<stem>_skipped.csv` beside it, so a reader of the
    manifest can always see what was left out and why.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(
        manifest.loc[:, list(MANIFEST_COLUMNS)], schema=MANIFEST_SCHEMA, preserve_index=False
    )
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(provenance, sort_keys=True).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)
    if skipped is not None:
        rows = [(s.path, s.reason_code, s.reason) for s in skipped]
        pd.DataFrame(rows, columns=list(SKIPPED_COLUMNS)).to_csv(
            skipped_path_for(path), index=False
        )


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest written by `write_manifest`; anything else is a user error."""
    if not path.is_file():
        raise UserError(f"manifest {path} does not exist (make one with `ser-ray corpus scan`)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise UserError(f"manifest {path} is not a Parquet file: {error}") from error
    missing = [c for c in MANIFEST_COLUMNS if c not in table.column_names]
    if missing:
        raise UserError(f"manifest {path} lacks columns {missing}; was it written by ser-ray?")
    return table.to_pandas()


def read_provenance(path: Path) -> dict[str, object]:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def read_skipped(manifest_path: Path) -> pd.DataFrame:
    skipped_csv = skipped_path_for(manifest_path)
    if not skipped_csv.is_file():
        return pd.DataFrame(columns=list(SKIPPED_COLUMNS))
    return pd.read_csv(skipped_csv, dtype=str, keep_default_na=False)
