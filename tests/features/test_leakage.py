"""Leakage guard: no row of a test utterance reaches training, whatever copy or version it is."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_ray.errors import UserError
from ser_ray.features import leakage
from ser_ray.features.leakage import (
    ORIGINAL,
    SourceLeakageError,
    assert_no_leakage,
    derived_utterance_id,
    training_rows,
)
from ser_ray.folds import LeakageError

AUGMENTATIONS = ("noise:snr=20", "pitch:steps=2", "pitch:steps=2+noise_peak:scale=0.035")
VERSIONS = (1, 2, 3, 8)


@dataclass(frozen=True)
class Split:
    rows: pd.DataFrame | pa.Table
    train: frozenset[str]
    test: frozenset[str]


def row(source: str, augmentation: str, version: int) -> dict[str, object]:
    return {"utterance_id": derived_utterance_id(source, augmentation), "label": "ang",
            "source_utterance_id": source, "augmentation": augmentation,
            "stft_version": version}


@st.composite
def splits(draw: st.DrawFn) -> Split:
    """A corpus cut in two, with originals, copies and versions drawn per source."""
    count = draw(st.integers(2, 12))
    sources = [f"Ses0{index % 5 + 1}F_impro0{index % 7}_F{index:03d}" for index in range(count)]
    in_test = draw(st.lists(st.booleans(), min_size=count, max_size=count)
                   .filter(lambda flags: any(flags) and not all(flags)))
    records = []
    for source in sources:
        for augmentation in (ORIGINAL, *sorted(draw(st.sets(st.sampled_from(AUGMENTATIONS))))):
            for version in sorted(draw(st.sets(st.sampled_from(VERSIONS), min_size=1))):
                records.append(row(source, augmentation, version))
    frame = pd.DataFrame(records)
    rows = pa.Table.from_pandas(frame, preserve_index=False) if draw(st.booleans()) else frame
    return Split(rows, frozenset(s for s, t in zip(sources, in_test) if not t),
                 frozenset(s for s, t in zip(sources, in_test) if t))


def as_frame(rows: pd.DataFrame | pa.Table) -> pd.DataFrame:
    return rows.to_pandas() if isinstance(rows, pa.Table) else rows


def with_row(rows: pd.DataFrame | pa.Table, extra: dict[str, object]) -> pd.DataFrame:
    return pd.concat([as_frame(rows), pd.DataFrame([extra])], ignore_index=True)


@settings(max_examples=80, deadline=None)
@given(split=splits(), data=st.data())
def test_training_rows_never_come_from_a_test_utterance(split: Split, data: st.DataObject
                                                        ) -> None:
    everything = as_frame(split.rows)
    augmentations = data.draw(st.none() | st.sets(
        st.sampled_from(sorted(set(everything["augmentation"]))), min_size=1))
    train = training_rows(split.rows, split.train, train_augmentations=augmentations)
    assert type(train) is type(split.rows)
    frame = as_frame(train)
    assert set(frame["source_utterance_id"]) <= split.train
    wanted = everything["source_utterance_id"].isin(split.train)
    if augmentations is not None:
        wanted &= everything["augmentation"].isin(augmentations)
    assert len(frame) == wanted.sum()
    assert_no_leakage(train, split.test)


@settings(max_examples=60, deadline=None)
@given(split=splits(), data=st.data())
def test_a_copy_or_other_version_of_a_test_utterance_is_caught(split: Split,
                                                              data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(sorted(split.test)))
    intruder = data.draw(st.sampled_from([
        row(source, "noise:snr=20", 1),  # augmented copy, its own id
        row(source, ORIGINAL, 8),  # another STFT version, same id as the original
        {**row(source, ORIGINAL, 8),  # another STFT version with a version-specific id
         "utterance_id": derived_utterance_id(source, ORIGINAL, stft_version=8)},
    ]))
    train = with_row(training_rows(split.rows, split.train), intruder)
    with pytest.raises(LeakageError) as caught:
        assert_no_leakage(train, split.test)
    assert caught.value.source_ids == (source,)
    assert source in str(caught.value)


@settings(max_examples=80, deadline=None)
@given(split=splits(), data=st.data())
def test_test_rows_are_originals_at_one_version(split: Split, data: st.DataObject) -> None:
    everything = as_frame(split.rows)
    version = data.draw(st.sampled_from(sorted(set(everything["stft_version"]))))
    frame = as_frame(leakage.test_rows(split.rows, split.test, stft_version=version))
    assert set(frame["augmentation"]) <= {ORIGINAL}
    assert set(frame["stft_version"]) <= {version}
    assert set(frame["source_utterance_id"]) <= split.test
    expected = (everything["source_utterance_id"].isin(split.test)
                & (everything["augmentation"] == ORIGINAL)
                & (everything["stft_version"] == version))
    assert len(frame) == expected.sum()


def test_test_rows_without_a_version_refuse_several_versions() -> None:
    rows = pd.DataFrame([row("a", ORIGINAL, 1), row("a", ORIGINAL, 2)])
    with pytest.raises(UserError, match=r"STFT versions \[1, 2\]"):
        leakage.test_rows(rows, ["a"], stft_version=None)
    single = pd.DataFrame([row("a", ORIGINAL, 1), row("a", "noise:snr=20", 1)])
    assert len(leakage.test_rows(single, ["a"], stft_version=None)) == 1


def test_train_and_test_rows_may_share_no_source() -> None:
    train = pd.DataFrame([row("a", ORIGINAL, 1), row("b", "pitch:steps=2", 1)])
    test = pd.DataFrame([row("b", ORIGINAL, 1)])
    with pytest.raises(SourceLeakageError, match="1 test utterance"):
        assert_no_leakage(train, [], test_rows=test)


@pytest.mark.parametrize("broken", [
    {"utterance_id": "x|noise:snr=20", "source_utterance_id": "x|noise:snr=20"},  # own source
    {"utterance_id": "x", "source_utterance_id": "x"},  # a copy wearing the original's id
    {"utterance_id": "x|noise:snr=20", "source_utterance_id": "y"},  # another source's id
])
def test_rows_whose_id_does_not_derive_from_their_source_fail_closed(
        broken: dict[str, str]) -> None:
    rows = pd.DataFrame([{**row("x", "noise:snr=20", 1), **broken}])
    with pytest.raises(SourceLeakageError, match="does not derive"):
        assert_no_leakage(rows, ["z"])


def test_selections_reject_values_the_rows_lack() -> None:
    rows = pd.DataFrame([row("a", ORIGINAL, 1), row("a", "noise:snr=20", 1)])
    with pytest.raises(UserError, match="gain:db=3 not in the feature rows"):
        training_rows(rows, ["a"], train_augmentations=["none", "gain:db=3"])
    with pytest.raises(UserError, match="stft_version 5 not in the feature rows"):
        leakage.test_rows(rows, ["a"], stft_version=5)


def test_derived_ids_are_unique_and_lead_back_to_their_source() -> None:
    ids = [derived_utterance_id(source, augmentation, version)
           for source in ("Ses01F_impro01_F000", "Ses01F_impro01_F001")
           for augmentation in (ORIGINAL, *AUGMENTATIONS)
           for version in (None, *VERSIONS)]
    assert len(set(ids)) == len(ids)
    assert all(i.split("|")[0] in ("Ses01F_impro01_F000", "Ses01F_impro01_F001") for i in ids)
