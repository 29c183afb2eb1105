"""Class selection: merges, kept labels, improvised subset, and the errors that name the fix."""

from __future__ import annotations

import pandas as pd
import pytest

from ser_ray.corpus import Selection, apply_selection, parse_merge
from ser_ray.errors import UserError


def manifest(labels: list[str], improvised: list[bool | None]) -> pd.DataFrame:
    return pd.DataFrame({
        "utterance_id": [f"u{i}" for i in range(len(labels))],
        "label": labels,
        "raw_label": labels,
        "improvised": improvised,
    })


def test_merge_then_keep() -> None:
    source = manifest(["excited", "happy", "sad", "frustrated", "unknown"], [True] * 5)
    selected = apply_selection(source, Selection(("happy", "sad"), {"excited": "happy"}))
    assert selected["label"].tolist() == ["happy", "happy", "sad"]
    assert selected["raw_label"].tolist() == ["excited", "happy", "sad"]


def test_improvised_only() -> None:
    source = manifest(["sad", "sad", "angry"], [True, False, True])
    selected = apply_selection(source, Selection(("sad", "angry"), improvised_only=True))
    assert selected["utterance_id"].tolist() == ["u0", "u2"]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (lambda: Selection(("happyy",)), "allowed: neutral, calm"),
        (lambda: Selection(("sad",), {"excited": "happy"}), "must be one of the kept labels"),
        (lambda: Selection(("sad", "happy"), {"sad": "happy"}), "keep it or merge it"),
        (lambda: Selection(()), "at least one label"),
        (lambda: parse_merge(["excited"]), "SOURCE=TARGET"),
    ],
)
def test_bad_selections_name_the_fix(selection, message: str) -> None:
    with pytest.raises(UserError, match=message):
        selection()


def test_absent_label_and_missing_improvised_column_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"\['angry'\] have no utterances"):
        apply_selection(manifest(["sad"], [None]), Selection(("sad", "angry")))
    with pytest.raises(UserError, match="needs a corpus with improvised"):
        apply_selection(manifest(["sad"], [None]), Selection(("sad",), improvised_only=True))
