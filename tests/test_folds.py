"""Folds: speaker independence where promised, balance, determinism, a leak check that bites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_ray.errors import UserError
from ser_ray.folds import (
    FoldProtocol,
    LeakageError,
    check_folds,
    make_folds,
    read_folds,
    write_folds,
)

LABELS = ("angry", "happy", "neutral", "sad")
FAST = settings(max_examples=40, deadline=None)


def make_manifest(
    n_speakers: int = 10,
    utterances: int | tuple[int, int] = 6,
    n_sessions: int = 5,
    seed: int = 0,
    genders: list[str | None] | None = None,
) -> pd.DataFrame:
    """An in-memory manifest: each speaker in one session (as in IEMOCAP), random labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_speakers):
        gender = genders[s] if genders is not None else rng.choice(["F", "M"])
        count = utterances if isinstance(utterances, int) else int(rng.integers(*utterances))
        for u in range(count):
            rows.append({
                "utterance_id": f"spk{s:02d}_{u:03d}",
                "path": f"/corpus/spk{s:02d}_{u:03d}.wav",
                "corpus": "test",
                "speaker": f"test:{s:02d}{gender or 'X'}",
                "gender": gender,
                "session": f"Session{s % n_sessions + 1}",
                "raw_label": "x",
                "label": str(rng.choice(LABELS)),
                "duration_s": 1.0,
                "sample_rate": 16000,
                "channels": 1,
            })
    return pd.DataFrame(rows)


@st.composite
def manifests(draw, min_speakers: int = 2) -> pd.DataFrame:
    return make_manifest(
        n_speakers=draw(st.integers(min_speakers, 12)),
        utterances=(1, draw(st.integers(2, 9))),
        n_sessions=draw(st.integers(2, 5)),
        seed=draw(st.integers(0, 2**16)),
        genders=None if draw(st.booleans()) else [
            draw(st.sampled_from(["F", "M", None])) for _ in range(12)
        ],
    )


def assert_partition(manifest: pd.DataFrame, folds: pd.DataFrame, k: int) -> None:
    """Every utterance in exactly one fold, in manifest order, with folds 0..k-1 all used."""
    assert list(folds.columns) == ["utterance_id", "fold"]
    assert folds["utterance_id"].tolist() == manifest["utterance_id"].tolist()
    assert folds["fold"].dtype == np.int64
    assert sorted(set(folds["fold"])) == list(range(k))


def folds_per_speaker(manifest: pd.DataFrame, folds: pd.DataFrame) -> pd.Series:
    return folds["fold"].groupby(manifest["speaker"].to_numpy()).nunique()


@FAST
@given(manifests())
def test_session_protocol_never_shares_a_speaker(manifest):
    folds = make_folds(manifest, FoldProtocol("session"))
    sessions = sorted(set(manifest["session"]))
    assert_partition(manifest, folds, len(sessions))
    assert (folds_per_speaker(manifest, folds) == 1).all()
    assert (folds["fold"].map(dict(enumerate(sessions))) == manifest["session"]).all()


@FAST
@given(manifests(), st.data())
def test_speaker_protocol_never_shares_a_speaker(manifest, data):
    n_speakers = manifest["speaker"].nunique()
    k = data.draw(st.one_of(st.none(), st.integers(2, n_speakers)))
    folds = make_folds(manifest, FoldProtocol("speaker", k=k, seed=data.draw(st.integers(0, 9))))
    assert_partition(manifest, folds, k or n_speakers)
    assert (folds_per_speaker(manifest, folds) == 1).all()
    assert check_folds(manifest, folds, FoldProtocol("speaker", k=k)).speaker_independent


@FAST
@given(manifests(), st.data())
def test_stratified_balances_classes_and_fold_sizes(manifest, data):
    k = data.draw(st.integers(2, min(len(manifest), 10)))
    seed = data.draw(st.integers(0, 2**32))
    folds = make_folds(manifest, FoldProtocol("stratified", k=k, seed=seed))
    assert_partition(manifest, folds, k)
    per_class = pd.crosstab(manifest["label"].to_numpy(), folds["fold"].to_numpy())
    assert per_class.shape[1] == k
    assert ((per_class.max(axis=1) - per_class.min(axis=1)) <= 1).all()
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1


@FAST
@given(manifests(), st.sampled_from(["stratified", "session", "speaker"]), st.integers(0, 99))
def test_same_seed_gives_identical_folds(manifest, kind, seed):
    k = {"stratified": 2, "session": None, "speaker": 2}[kind]
    protocol = FoldProtocol(kind, k=k, seed=seed)
    pd.testing.assert_frame_equal(make_folds(manifest, protocol), make_folds(manifest, protocol))


def partition(manifest: pd.DataFrame, protocol: FoldProtocol) -> set[frozenset[str]]:
    folds = make_folds(manifest, protocol)
    return {frozenset(group) for _, group in folds.groupby("fold")["utterance_id"]}


@pytest.mark.parametrize("kind", ["stratified", "speaker"])
def test_different_seeds_give_different_partitions(kind):
    manifest = make_manifest(n_speakers=10, utterances=(3, 12))
    partitions = {
        frozenset(partition(manifest, FoldProtocol(kind, k=5, seed=seed))) for seed in range(5)
    }
    assert len(partitions) > 1


def test_grouped_speaker_folds_balance_gender():
    manifest = make_manifest(n_speakers=10, utterances=(2, 15), genders=["F", "M"] * 5)
    folds = make_folds(manifest, FoldProtocol("speaker", k=5, seed=3))
    speakers = manifest.assign(fold=folds["fold"]).drop_duplicates("speaker")
    per_fold = pd.crosstab(speakers["fold"], speakers["gender"])
    assert per_fold.shape == (5, 2)
    assert (per_fold == 1).all().all()


def test_leave_one_speaker_out_numbers_folds_by_sorted_speaker():
    manifest = make_manifest(n_speakers=4)
    for k in (None, 4):
        folds = make_folds(manifest, FoldProtocol("speaker", k=k))
        order = {s: i for i, s in enumerate(sorted(set(manifest["speaker"])))}
        assert (folds["fold"] == manifest["speaker"].map(order)).all()


def leaky_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-speaker-out, except speaker 0's last utterance sits in speaker 1's fold."""
    folds = make_folds(manifest, FoldProtocol("speaker"))
    last_of_first = manifest.index[manifest["speaker"] == manifest["speaker"].iloc[0]][-1]
    folds.loc[last_of_first, "fold"] = 1
    return folds


def test_shared_speaker_is_leakage_under_speaker_independent_protocols():
    manifest = make_manifest(n_speakers=5, n_sessions=5)
    folds = leaky_table(manifest)
    leaked = manifest["speaker"].iloc[0]
    for protocol in (FoldProtocol("speaker"), FoldProtocol("session")):
        with pytest.raises(LeakageError, match=f"{leaked} \\(folds 0, 1\\)") as raised:
            check_folds(manifest, folds, protocol)
        assert raised.value.shared_speakers == {leaked: [0, 1]}
        assert isinstance(raised.value, UserError)


def test_shared_speaker_is_allowed_but_reported_under_stratified():
    manifest = make_manifest(n_speakers=5)
    check = check_folds(manifest, leaky_table(manifest), FoldProtocol("stratified", k=5))
    assert not check.speaker_independent
    assert check.shared_speakers == {manifest["speaker"].iloc[0]: [0, 1]}
    assert check.describe().startswith(
        "SPEAKER-DEPENDENT: 1 of 5 speakers appear in more than one fold (protocol 'stratified')"
    )
    stratified = make_folds(manifest, FoldProtocol("stratified", k=5))
    assert "SPEAKER-DEPENDENT: 5 of 5 speakers" in check_folds(
        manifest, stratified, FoldProtocol("stratified", k=5)
    ).describe()


def test_check_reports_sizes_and_label_counts():
    manifest = make_manifest(n_speakers=4, n_sessions=2)
    check = check_folds(manifest, make_folds(manifest, FoldProtocol("session")),
                        FoldProtocol("session"))
    assert check.describe().startswith("speaker-independent: no speaker appears in two folds")
    assert check.fold_sizes == {0: 12, 1: 12}
    assert sum(n for counts in check.per_fold_label_counts.values()
               for n in counts.values()) == len(manifest)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.iloc[1:], "1 manifest utterances have no fold"),
        (lambda f: pd.concat([f, pd.DataFrame({"utterance_id": ["ghost"], "fold": [0]})]),
         "1 fold-table utterances are not in the manifest"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "appear twice in the fold table"),
        (lambda f: f.assign(fold=f["fold"].replace({1: 2})), r"folds \[1\] are empty"),
    ],
)
def test_check_rejects_tables_that_do_not_cover_the_manifest(edit, message):
    manifest = make_manifest(n_speakers=3)
    folds = make_folds(manifest, FoldProtocol("speaker"))
    with pytest.raises(UserError, match=message):
        check_folds(manifest, edit(folds), FoldProtocol("speaker", k=None))


@pytest.mark.parametrize(
    ("manifest_kw", "protocol", "message"),
    [
        ({}, dict(kind="foo"), "protocol 'foo' is not one of: stratified, session, speaker"),
        ({}, dict(kind="stratified"), "protocol 'stratified' needs k"),
        ({}, dict(kind="speaker", k=1), "k=1: the number of folds must be an integer"),
        ({}, dict(kind="speaker", k=True), "k=True"),
        ({}, dict(kind="speaker", seed="a"), "seed='a'"),
        ({}, dict(kind="speaker", seed=-1), "seed=-1: the seed must be a non-negative integer"),
        ({}, dict(kind="session", k=4), "k=4 but the manifest has 5 sessions"),
        ({}, dict(kind="speaker", k=11), "k=11 is more than the 10 speakers"),
        ({"n_speakers": 1, "utterances": 3}, dict(kind="stratified", k=4),
         "k=4 is more than the 3 utterances"),
        ({"n_sessions": 1}, dict(kind="session"), "at least 2 sessions"),
    ],
)
def test_bad_protocols_are_user_errors_naming_the_field(manifest_kw, protocol, message):
    with pytest.raises(UserError, match=message):
        make_folds(make_manifest(**manifest_kw), FoldProtocol(**protocol))


def test_session_protocol_needs_a_session_everywhere():
    manifest = make_manifest()
    manifest.loc[:2, "session"] = None
    with pytest.raises(UserError, match="3 utterances have none — use 'speaker'"):
        make_folds(manifest, FoldProtocol("session"))


@pytest.mark.parametrize(
    "protocol", [FoldProtocol("speaker", k=3, seed=7), FoldProtocol("session"),
                 FoldProtocol("stratified", k=4, seed=2),
                 FoldProtocol("stratified", k=3, seed=2, repeats=3)]
)
def test_write_read_round_trip_keeps_the_protocol(tmp_path, protocol):
    manifest = make_manifest()
    folds = make_folds(manifest, protocol)
    path = tmp_path / "out" / "folds.parquet"
    write_folds(folds, protocol, check_folds(manifest, folds, protocol), path)
    loaded, loaded_protocol = read_folds(path)
    assert loaded_protocol == protocol
    pd.testing.assert_frame_equal(loaded, folds)
    check_folds(manifest, loaded, loaded_protocol)


def test_read_folds_rejects_missing_files_and_foreign_tables(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_folds(tmp_path / "nothing.parquet")
    pq.write_table(pa.table({"utterance_id": ["a"]}), tmp_path / "bare.parquet")
    with pytest.raises(UserError, match=r"lacks columns \['fold'\]"):
        read_folds(tmp_path / "bare.parquet")
    pq.write_table(pa.table({"utterance_id": ["a"], "fold": [0]}), tmp_path / "plain.parquet")
    with pytest.raises(UserError, match="ser_ray.folds metadata"):
        read_folds(tmp_path / "plain.parquet")


def test_repeated_stratified_folds_repeat_the_split_with_the_next_seeds():
    """Repeat r is the k-fold split at seed + r, renumbered r·k..r·k+k-1: every utterance is
    tested once per repeat, and repeat 0 is the unrepeated split."""
    manifest = make_manifest(n_speakers=6, utterances=(4, 9))
    protocol = FoldProtocol("stratified", k=3, seed=5, repeats=3)
    folds = make_folds(manifest, protocol)
    assert sorted(folds["fold"].unique()) == list(range(9))
    for repeat in range(3):
        members = folds[folds["fold"].map(protocol.repeat_of) == repeat]
        assert sorted(members["utterance_id"]) == sorted(manifest["utterance_id"].astype(str))
        alone = make_folds(manifest, FoldProtocol("stratified", k=3, seed=5 + repeat))
        np.testing.assert_array_equal(members["fold"].to_numpy() - 3 * repeat,
                                      alone["fold"].to_numpy())
    assert "3 repeats of 3-fold, seeds 5-7" in check_folds(manifest, folds, protocol).describe()


def test_a_repeat_that_misses_an_utterance_is_refused():
    manifest = make_manifest()
    protocol = FoldProtocol("stratified", k=2, repeats=2)
    folds = make_folds(manifest, protocol)
    with pytest.raises(UserError, match="1 manifest utterances have no fold"):
        check_folds(manifest, folds.iloc[:-1], protocol)


def test_only_stratified_folds_repeat():
    with pytest.raises(UserError, match="only protocol 'stratified' is repeated"):
        FoldProtocol("session", repeats=2)
