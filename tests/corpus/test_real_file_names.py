"""Every real file name of nine public corpora parses with the right label and speaker count.

The trees are built from `tests/corpus/data/corpus_file_lists.csv.gz` (EmoBox's published file
lists, columns corpus, relpath, source_label, sample_rate, channels, duration_s) with one tiny
WAV hard-linked under every real name; no corpus audio is involved.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from ser_ray.corpus import Selection, apply_selection, scan_corpus, summarize

FILE_LISTS = Path(__file__).resolve().parent / "data" / "corpus_file_lists.csv.gz"

# The lists' own spellings, mapped by hand to canonical labels: independent of the readers.
SOURCE_TO_CANONICAL = {
    "iemocap": {"neu": "neutral", "ang": "angry", "sad": "sad", "hap": "happy", "exc": "excited"},
    "emodb": {"anger": "angry", "boredem": "boredom", "disgust": "disgust", "fear": "fear",
              "happy": "happy", "neutral": "neutral", "sad": "sad"},
    "ravdess": {"Angry": "angry", "Calm": "calm", "Disgust": "disgust", "Fearful": "fear",
                "Happy": "happy", "Neutral": "neutral", "Sad": "sad", "Surprised": "surprise"},
    "cremad": {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy",
               "NEU": "neutral", "SAD": "sad"},
    "tess": {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "neutral": "neutral", "ps": "surprise", "sad": "sad"},
    "savee": {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral",
              "sa": "sad", "su": "surprise"},
    "emovo": {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear",
              "rab": "angry", "sor": "surprise", "tri": "sad"},
    "shemo": {"angry": "angry", "fearful": "fear", "happy": "happy", "neutral": "neutral",
              "sad": "sad", "surprised": "surprise"},
    "subesco": {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                "neutral": "neutral", "sad": "sad", "surprise": "surprise"},
}
SPEAKERS = {"iemocap": 10, "emodb": 10, "ravdess": 24, "cremad": 91, "tess": 2, "savee": 4,
            "emovo": 6, "shemo": 87, "subesco": 20}
IEMOCAP_CODE = {"neutral": "neu", "angry": "ang", "sad": "sad", "happy": "hap", "excited": "exc"}


@pytest.fixture(scope="module")
def file_lists() -> pd.DataFrame:
    return pd.read_csv(FILE_LISTS)


def build_tree(root: Path, rows: pd.DataFrame, template: Path) -> None:
    for relpath in rows["relpath"]:
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(template, target)


def write_iemocap_labels(root: Path, rows: pd.DataFrame) -> None:
    """Consensus blocks as in IEMOCAP's EmoEvaluation files, plus a decoy evaluator folder."""
    rows = rows.assign(utterance=rows["relpath"].str.rsplit("/", n=1).str[-1].str[:-4])
    rows = rows.assign(dialog=rows["utterance"].str.rsplit("_", n=1).str[0])
    for (relpath_session, dialog), group in rows.groupby(
        [rows["relpath"].str.split("/").str[0], "dialog"]
    ):
        folder = root / relpath_session / "dialog" / "EmoEvaluation"
        (folder / "Categorical").mkdir(parents=True, exist_ok=True)
        blocks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for turn, (utterance, label) in enumerate(zip(group["utterance"], group["source_label"])):
            blocks += [
                f"[{turn * 3.0:.4f} - {turn * 3.0 + 2.5:.4f}]\t{utterance}\t{label}\t"
                "[2.5000, 2.5000, 2.5000]",
                "C-E2:\tNeutral;\t()",
                "A-E3:\tval 3; act 2; dom  2;\t()",
                "",
            ]
        (folder / f"{dialog}.txt").write_text("\n".join(blocks))
        decoy = [f"[0.0000 - 1.0000]\t{u}\tfru\t[1.0000, 1.0000, 1.0000]"
                 for u in group["utterance"]]
        (folder / "Categorical" / f"{dialog}_e2_cat.txt").write_text("\n".join(decoy))


def write_cremad_demographics(root: Path) -> dict[str, str]:
    sexes = {str(actor): ("Female" if actor % 3 else "Male") for actor in range(1001, 1092)}
    lines = ["ActorID,Age,Sex,Race,Ethnicity"]
    lines += [f"{actor},30,{sex},Caucasian,Not Hispanic" for actor, sex in sexes.items()]
    (root / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    return {actor: sex[0] for actor, sex in sexes.items()}


@pytest.mark.parametrize("corpus", sorted(SOURCE_TO_CANONICAL))
def test_every_real_file_name_parses(
    corpus: str, file_lists: pd.DataFrame, tmp_path: Path
) -> None:
    rows = file_lists[file_lists["corpus"] == corpus]
    template = tmp_path / "template.wav"
    soundfile.write(template, np.full(1600, 0.1, dtype=np.float32), 16000)
    root = tmp_path / corpus
    build_tree(root, rows, template)
    if corpus == "iemocap":
        write_iemocap_labels(root, rows)
    expected_gender = write_cremad_demographics(root) if corpus == "cremad" else None

    result = scan_corpus(corpus, root)

    assert result.skipped == []
    manifest = result.manifest
    assert len(manifest) == len(rows)
    assert manifest["utterance_id"].is_unique
    assert manifest["speaker"].nunique() == SPEAKERS[corpus]
    assert manifest["speaker"].str.startswith(f"{corpus}:").all()
    expected = dict(zip(
        (str(root / relpath) for relpath in rows["relpath"]),
        rows["source_label"].map(SOURCE_TO_CANONICAL[corpus]),
    ))
    assert dict(zip(manifest["path"], manifest["label"])) == expected
    assert manifest["gender"].isin(["F", "M"]).all()
    if expected_gender is not None:
        actors = manifest["utterance_id"].str[:4]
        assert (manifest["gender"] == actors.map(expected_gender)).all()


def test_iemocap_incomplete_download_lists_every_missing_turn(
    file_lists: pd.DataFrame, tmp_path: Path
) -> None:
    """Session 1 with every label line but one dialog's wav folder and every tenth other wav
    absent: each absent turn is reported where the layout puts it, every present turn kept."""
    rows = file_lists[(file_lists["corpus"] == "iemocap")
                      & file_lists["relpath"].str.startswith("Session1/")]
    lost_dialog = rows["relpath"].str.contains("/Ses01F_impro04/")
    absent = lost_dialog | (np.arange(len(rows)) % 10 == 0)
    template = tmp_path / "template.wav"
    soundfile.write(template, np.full(1600, 0.1, dtype=np.float32), 16000)
    root = tmp_path / "iemocap"
    build_tree(root, rows[~absent], template)
    write_iemocap_labels(root, rows)

    result = scan_corpus("iemocap", root)

    assert sorted(result.manifest["path"]) == sorted(
        str(root / relpath) for relpath in rows[~absent]["relpath"])
    assert {item.reason_code for item in result.skipped} == {"missing_audio"}
    assert sorted(item.path for item in result.skipped) == sorted(
        str(root / relpath) for relpath in rows[absent]["relpath"])
    assert f"skipped {absent.sum()}: missing_audio {absent.sum()}" in summarize(result)


@pytest.fixture(scope="module")
def iemocap_manifest(file_lists: pd.DataFrame, tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("iemocap")
    rows = file_lists[file_lists["corpus"] == "iemocap"]
    template = root / "template.wav"
    soundfile.write(template, np.full(1600, 0.1, dtype=np.float32), 16000)
    build_tree(root, rows, template)
    write_iemocap_labels(root, rows)
    return scan_corpus("iemocap", root).manifest


def test_iemocap_real_names_give_the_published_subsets(iemocap_manifest: pd.DataFrame) -> None:
    """Speaker = session + turn gender (not the dialog letter), and the per-speaker counts."""
    manifest = iemocap_manifest
    per_speaker = manifest["speaker"].str.split(":").str[1].value_counts().to_dict()
    assert per_speaker == {"01F": 528, "01M": 557, "02F": 481, "02M": 542, "03F": 522,
                           "03M": 629, "04F": 528, "04M": 503, "05F": 590, "05M": 651}
    dialog_letter = manifest["utterance_id"].str[5]
    assert (dialog_letter != manifest["gender"]).sum() == 2750
    assert manifest["improvised"].sum() == 2943
    per_session = manifest["session"].value_counts().sort_index().tolist()
    assert per_session == [1085, 1023, 1151, 1031, 1241]


def test_iemocap_selection_gives_the_seed_papers_sets(iemocap_manifest: pd.DataFrame) -> None:
    manifest = iemocap_manifest
    four_classes = ("angry", "happy", "neutral", "sad")

    full = apply_selection(manifest, Selection(four_classes, {"excited": "happy"}))
    improvised = apply_selection(
        manifest, Selection(four_classes, {"excited": "happy"}, improvised_only=True))
    happy_only = apply_selection(manifest, Selection(four_classes))

    assert len(full) == 5531
    assert improvised["label"].value_counts().to_dict() == {
        "neutral": 1099, "happy": 947, "sad": 608, "angry": 289}
    assert len(happy_only) == 4490
    assert set(full.loc[full["label"] == "happy", "raw_label"]) == {"hap", "exc"}
