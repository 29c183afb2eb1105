"""Declarative class selection: merges, then the kept labels, then optional subsets.

The scan keeps every labelled utterance; which classes a study uses is decided here, once, so
every later stage (features, folds, training, report) sees the same selection, recorded in the
manifest's provenance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ser_ray.corpus.manifest import LABELS, read_manifest, read_provenance, write_manifest
from ser_ray.errors import UserError


@dataclass(frozen=True)
class Selection:
    """`merge` maps a source label onto a kept label (IEMOCAP: excited=happy)."""

    labels: tuple[str, ...]
    merge: dict[str, str] = field(default_factory=dict)
    improvised_only: bool = False

    def __post_init__(self) -> None:
        if not self.labels:
            raise UserError("--labels: name at least one label")
        for name in (*self.labels, *self.merge, *self.merge.values()):
            if name not in LABELS:
                raise UserError(
                    f"label {name!r} is not a canonical label; allowed: {', '.join(LABELS)}"
                )
        for source, target in self.merge.items():
            if target not in self.labels:
                raise UserError(
                    f"--merge {source}={target}: the target {target!r} must be one of the "
                    f"kept labels ({', '.join(self.labels)})"
                )
            if source in self.labels:
                raise UserError(
                    f"--merge {source}={target}: {source!r} is also a kept label; keep it or "
                    "merge it, not both"
                )

    def describe(self) -> dict[str, object]:
        return asdict(self)


def apply_selection(manifest: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """Rows of the selected classes with `label` merged; `raw_label` keeps the original code."""
    selected = manifest.assign(label=manifest["label"].replace(selection.merge))
    if selection.improvised_only:
        if selected["improvised"].isna().all():
            raise UserError(
                "--improvised-only needs a corpus with improvised and scripted sessions "
                "(IEMOCAP); this manifest has no `improvised` values"
            )
        selected = selected[selected["improvised"].fillna(False).astype(bool)]
    selected = selected[selected["label"].isin(selection.labels)].reset_index(drop=True)
    absent = [label for label in selection.labels if label not in set(selected["label"])]
    if absent:
        present = sorted(set(manifest["label"]))
        raise UserError(
            f"selected labels {absent} have no utterances in this manifest "
            f"(labels present: {', '.join(present)})"
        )
    return selected


def parse_merge(specs: list[str]) -> dict[str, str]:
    """`["excited=happy"]` → `{"excited": "happy"}`; a spec without `=` is a user error."""
    merge: dict[str, str] = {}
    for spec in specs:
        source, separator, target = spec.partition("=")
        if not separator or not source or not target:
            raise UserError(f"--merge {spec!r}: write it as SOURCE=TARGET, e.g. excited=happy")
        merge[source.strip()] = target.strip()
    return merge


def select_manifest(source: Path, selection: Selection, destination: Path) -> pd.DataFrame:
    """Apply a selection to a manifest file; the result records its source and selection."""
    manifest = read_manifest(source)
    selected = apply_selection(manifest, selection)
    provenance = {
        **read_provenance(source),
        "selected_from": str(source),
        "selection": selection.describe(),
        "utterances": len(selected),
    }
    write_manifest(selected, destination, provenance)
    return selected
