"""The format version every record of an experiment folder carries, and how an older
folder is refused.

A folder's files (study.json, ledger.jsonl, replays.jsonl) are written in one format; a
reader refuses any other with a message that says what to do, instead of misreading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ser_ray.errors import UserError
from ser_ray.schema import StrictModel

SCHEMA_VERSION = 2


class Record(StrictModel):
    """Base of the records a study writes: each line or file states its format."""

    schema_version: Literal[2] = SCHEMA_VERSION


# The literal above is the version a reader accepts: a new format changes both together.
assert Record.model_fields["schema_version"].annotation == Literal[SCHEMA_VERSION]


def check_format(raw: Any, path: Path, where: str = "") -> None:
    """Refuse a record of another format (or of none: written before records were versioned)."""
    found = raw.get("schema_version") if isinstance(raw, dict) else None
    if found == SCHEMA_VERSION:
        return
    written = (f"format {found}" if found is not None
               else "an unversioned format, written by ser-ray before record formats existed")
    newer = isinstance(found, int) and found > SCHEMA_VERSION
    advice = ("upgrade ser-ray to read it" if newer else
              "its report.md and results.csv stand as they were written; to continue or extend "
              "the study, run it again into a new directory (ser-ray search STUDY.yaml --out "
              "NEW_DIR, or ser-ray demo --out NEW_DIR), or remove this one: feature caches "
              "are reused, units are trained again")
    raise UserError(f"{path}{where} is in {written}; this ser-ray reads experiment record "
                    f"format {SCHEMA_VERSION}: {advice}")
