"""Readers on fake trees in each corpus's documented layout, with junk files in every tree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from ser_ray.corpus import ScanResult, scan_corpus, summarize
from ser_ray.corpus.manifest import read_manifest, read_provenance, read_skipped
from ser_ray.corpus.scan import write_scan
from ser_ray.errors import UserError
from tests.conftest import write_wav

JUNK_KINDS = ("empty", "not_audio", "bad_header", "too_short", "unreadable")


def drop_junk(junk_paths: Sequence[Path]) -> dict[str, str]:
    """One bad file of every kind, each under a name the corpus accepts so that only its
    content can be blamed, plus hidden and non-audio files beside them that a scan must
    neither read nor report. Returns the expected reason code per junk path."""
    empty, text, truncated, short, broken = junk_paths
    for path in junk_paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    empty.write_bytes(b"")
    text.write_text("this is a text file with a .wav name")
    truncated.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    write_wav(short, seconds=0.02)
    broken.symlink_to(broken.with_name("moved-away.wav"))
    folder = empty.parent
    (folder / f"._{empty.name}").write_bytes(b"\x00\x05\x16\x07")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "readme.txt").write_text("not audio, not .wav: ignored")
    return {str(path): kind for path, kind in zip(junk_paths, JUNK_KINDS)}


def scan_with_junk(
    corpus: str, root: Path, junk_paths: Sequence[Path]
) -> tuple[ScanResult, dict[str, str]]:
    """Scan `root` with the junk set dropped at `junk_paths`; check every junk file is in the
    skipped CSV with its reason and no hidden or non-audio file is anywhere. Returns the
    result and the reason codes of the other skipped files, by file name."""
    junk = drop_junk(junk_paths)
    result = scan_corpus(corpus, root)
    manifest_path = root.parent / f"{corpus}_manifest" / "manifest.parquet"
    write_scan(result, manifest_path)
    skipped = read_skipped(manifest_path).set_index("path")
    assert skipped.loc[list(junk), "reason_code"].to_dict() == junk
    assert "broken link" in skipped.loc[str(junk_paths[-1]), "reason"]
    assert skipped["reason"].str.len().gt(0).all()
    reported = [*skipped.index, *result.manifest["path"]]
    assert not [path for path in reported if Path(path).name.startswith(".")
                or not path.endswith(".wav")]
    assert not set(junk) & set(result.manifest["path"])
    others = {Path(path).name: code for path, code in skipped["reason_code"].items()
              if path not in junk}
    return result, others


def test_emodb_tree_with_every_junk_kind(tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    for name in ["03a01Fa.wav", "08a02Wb.wav", "16b10Lc.wav", "13a05Td.wav"]:
        write_wav(root / "wav" / name)
    write_wav(root / "wav" / "99x01Fa.wav")
    (root / "wav" / "15a01Na.wav").symlink_to(root / "wav" / "15a01Na.wav")

    result, others = scan_with_junk("emodb", root, [
        root / "wav" / f"{speaker}a01Na.wav" for speaker in ("09", "10", "11", "12", "14")])

    assert others == {"99x01Fa.wav": "bad_name", "15a01Na.wav": "unreadable"}
    loop = next(s for s in result.skipped if s.path.endswith("15a01Na.wav"))
    assert loop.reason == "cannot read the file: too many levels of symbolic links"
    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["03a01Fa", ["speaker", "gender", "label"]].tolist() == [
        "emodb:03", "M", "happy"]
    assert manifest.loc["16b10Lc", "label"] == "boredom"
    assert manifest.loc["08a02Wb", "gender"] == "F"
    assert result.ignored_files == 1


def test_skipped_files_are_written_beside_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    write_wav(root / "03a01Fa.wav")
    (root / "03a01Wa.wav").write_bytes(b"")
    (root / "08a01Wa.wav").symlink_to(root / "gone" / "08a01Wa.wav")
    result = scan_corpus("emodb", root)
    manifest_path = tmp_path / "out" / "emodb.parquet"
    write_scan(result, manifest_path)
    assert read_manifest(manifest_path)["utterance_id"].tolist() == ["03a01Fa"]
    skipped = read_skipped(manifest_path)
    assert (tmp_path / "out" / "emodb_skipped.csv").is_file()
    assert skipped.to_dict("records") == [
        {"path": str(root / "03a01Wa.wav"), "reason_code": "empty",
         "reason": "empty file (0 bytes)"},
        {"path": str(root / "08a01Wa.wav"), "reason_code": "unreadable",
         "reason": f"cannot read the file: broken link (its target {root / 'gone' / '08a01Wa.wav'}"
                   " does not exist)"}]


def _deeper_than_paths_may_be(top: Path, levels: int = 25) -> Path:
    """Nested folders whose full path is longer than Linux's PATH_MAX (4096 bytes). Each is
    made relative to the one above, which the OS allows, but the deepest ones cannot be
    listed by their full path. Returns the first of them."""
    name = "d" * 200
    top.mkdir(parents=True)
    folder = os.open(top, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir(name, dir_fd=folder)
        inner = os.open(name, os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.close(folder)
    return top / name


def test_linked_folders_are_scanned_once_under_the_real_name(tmp_path: Path) -> None:
    """Real folders are walked before links (readers take speakers and labels from folder
    names, so a link named otherwise must not claim a real folder's files); links out of the
    tree are followed; a folder reached twice and one that cannot be listed are reported."""
    root = tmp_path / "emodb"
    write_wav(root / "03a01Fa.wav")
    write_wav(root / "wav" / "08a01Wa.wav")
    (root / "aaa").symlink_to(root / "wav", target_is_directory=True)  # sorts before "wav"
    (root / "up").symlink_to(root, target_is_directory=True)
    other_disk = tmp_path / "other-disk" / "speaker10"
    write_wav(other_disk / "10a01Wa.wav")
    (root / "speaker10").symlink_to(other_disk, target_is_directory=True)
    (root / "speaker10-again").symlink_to(other_disk, target_is_directory=True)
    deep = _deeper_than_paths_may_be(root / "deep")

    result = scan_corpus("emodb", root)

    assert result.manifest.set_index("utterance_id")["path"].to_dict() == {
        "03a01Fa": str(root / "03a01Fa.wav"), "08a01Wa": str(root / "wav" / "08a01Wa.wav"),
        "10a01Wa": str(root / "speaker10" / "10a01Wa.wav")}
    skipped = {item.path: (item.reason_code, item.reason) for item in result.skipped}
    assert skipped.pop(str(root / "aaa")) == (
        "duplicate", f"a link to a folder already scanned as {root / 'wav'}")
    assert skipped.pop(str(root / "up")) == (
        "duplicate", f"a link to a folder already scanned as {root}")
    assert skipped.pop(str(root / "speaker10-again")) == (
        "duplicate", f"a link to a folder already scanned as {root / 'speaker10'}")
    [(path, (code, reason))] = skipped.items()
    assert path.startswith(str(deep)) and len(path) > 4096 and code == "unreadable"
    assert reason == "cannot read the directory: file name too long; no file under it was scanned"


def write_iemocap_dialog(root: Path, session: int, dialog: str,
                         turns: list[tuple[str, str]]) -> None:
    """turns: (utterance id, label code); label None = a wav without a label line."""
    wav_dir = root / f"Session{session}" / "sentences" / "wav" / dialog
    eval_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
    (eval_dir / "Categorical").mkdir(parents=True, exist_ok=True)
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for index, (utterance, label) in enumerate(turns):
        write_wav(wav_dir / f"{utterance}.wav")
        if label is not None:
            lines += [f"[{index:.4f} - {index + 0.9:.4f}]\t{utterance}\t{label}\t"
                      "[2.5000, 3.0000, 2.0000]", "C-E1:\tAnger;\t()",
                      "A-E2:\tval 2; act 4; dom  4;\t()", ""]
    (eval_dir / f"{dialog}.txt").write_text("\n".join(lines))
    (eval_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
        "\n".join(f"[0.0000 - 1.0000]\t{u}\tsur\t[1.0000, 1.0000, 1.0000]" for u, _ in turns))


def test_iemocap_speaker_is_session_and_turn_gender(tmp_path: Path) -> None:
    root = tmp_path / "IEMOCAP_full_release"
    write_iemocap_dialog(root, 1, "Ses01F_impro01", [
        ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "ang"),
        ("Ses01F_impro01_M001", "xxx"), ("Ses01F_impro01_F001", None)])
    write_iemocap_dialog(root, 3, "Ses03M_impro05a", [
        ("Ses03M_impro05a_F000", "exc"), ("Ses03M_impro05a_M000", "fru")])
    write_iemocap_dialog(root, 5, "Ses05M_script01_1b", [
        ("Ses05M_script01_1b_F002", "hap"), ("Ses05M_script01_1b_M010", "sad")])
    write_wav(root / "Session1" / "dialog" / "wav" / "Ses01F_impro01.wav")
    write_wav(root / "Session2" / "sentences" / "wav" / "Ses01F_impro02" /
              "Ses01F_impro02_F000.wav")
    junk_turns = [f"Ses02F_impro02_F{index:03d}" for index in range(len(JUNK_KINDS))]
    write_iemocap_dialog(root, 2, "Ses02F_impro02", [(turn, "neu") for turn in junk_turns])

    result, others = scan_with_junk("iemocap", root, [
        root / "Session2" / "sentences" / "wav" / "Ses02F_impro02" / f"{turn}.wav"
        for turn in junk_turns])

    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["Ses03M_impro05a_F000", ["speaker", "gender", "session", "label"]
                        ].tolist() == ["iemocap:03F", "F", "Session3", "excited"]
    assert manifest.loc["Ses05M_script01_1b_F002", "speaker"] == "iemocap:05F"
    assert not manifest.loc["Ses05M_script01_1b_F002", "improvised"]
    assert manifest.loc["Ses01F_impro01_M000", "speaker"] == "iemocap:01M"
    assert manifest.loc["Ses01F_impro01_M001", "label"] == "unknown"
    assert manifest.loc["Ses03M_impro05a_M000", "label"] == "frustrated"
    assert "surprise" not in set(manifest["label"]), "read the decoy Categorical folder"
    assert others == {
        "Ses01F_impro01_F001.wav": "no_label",
        "Ses01F_impro01.wav": "not_utterance",
        "Ses01F_impro02_F000.wav": "mislabelled",
    }


def test_iemocap_unreadable_label_file_is_a_note_not_a_crash(tmp_path: Path) -> None:
    write_iemocap_dialog(tmp_path, 1, "Ses01F_impro01", [("Ses01F_impro01_F000", "neu")])
    write_iemocap_dialog(tmp_path, 1, "Ses01F_impro02", [("Ses01F_impro02_M000", "sad")])
    label_file = tmp_path / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro02.txt"
    label_file.unlink()
    label_file.symlink_to(tmp_path / "elsewhere.txt")
    result = scan_corpus("iemocap", tmp_path)
    assert result.manifest["utterance_id"].tolist() == ["Ses01F_impro01_F000"]
    assert reasons(result) == {"Ses01F_impro02_M000.wav": "no_label"}
    assert result.notes == [
        f"label file {label_file}: cannot read the file: broken link (its target "
        f"{tmp_path / 'elsewhere.txt'} does not exist); its turns are skipped as unlabelled"]


def test_iemocap_label_lines_whose_audio_is_missing_are_reported(tmp_path: Path) -> None:
    """An incomplete download: label lines name turns whose wav is absent. Each such turn is
    a `missing_audio` row at the path the layout gives it; a turn whose wav is there but bad
    keeps only its own reason, and every good turn is kept."""
    root = tmp_path / "IEMOCAP_full_release"
    write_iemocap_dialog(root, 1, "Ses01F_impro01", [
        ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "ang"),
        ("Ses01F_impro01_F001", "sad"), ("Ses01F_impro01_M001", "hap")])
    write_iemocap_dialog(root, 1, "Ses01M_script02_1", [
        ("Ses01M_script02_1_F000", "exc"), ("Ses01M_script02_1_M000", "fru")])
    write_iemocap_dialog(root, 2, "Ses02F_impro03", [
        ("Ses02F_impro03_F000", "neu"), ("Ses02F_impro03_M000", "xxx")])
    turns = root / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    (turns / "Ses01F_impro01_M000.wav").unlink()
    (turns / "Ses01F_impro01_F001.wav").write_bytes(b"")
    (turns / "Ses01F_impro01_M001.wav").unlink()
    (turns / "Ses01F_impro01_M001.wav").mkdir()
    shutil.rmtree(root / "Session2" / "sentences")

    result = scan_corpus("iemocap", root)
    manifest_path = tmp_path / "out" / "iemocap.parquet"
    write_scan(result, manifest_path)

    assert sorted(read_manifest(manifest_path)["utterance_id"]) == [
        "Ses01F_impro01_F000", "Ses01M_script02_1_F000", "Ses01M_script02_1_M000"]
    evaluation = root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    evaluation_2 = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro03.txt"
    session_2_turns = root / "Session2" / "sentences" / "wav" / "Ses02F_impro03"
    assert read_skipped(manifest_path).to_dict("records") == [
        {"path": str(turns / "Ses01F_impro01_M001.wav"), "reason_code": "not_a_file",
         "reason": "a directory named like an audio file (the files in it are scanned as "
                   "usual)"},
        {"path": str(turns / "Ses01F_impro01_F001.wav"), "reason_code": "empty",
         "reason": "empty file (0 bytes)"},
        {"path": str(turns / "Ses01F_impro01_M000.wav"), "reason_code": "missing_audio",
         "reason": f"label file {evaluation} labels Ses01F_impro01_M000 (ang), but no audio "
                   "file Ses01F_impro01_M000.wav is under the corpus root (an incomplete "
                   "download?)"},
        {"path": str(session_2_turns / "Ses02F_impro03_F000.wav"),
         "reason_code": "missing_audio",
         "reason": f"label file {evaluation_2} labels Ses02F_impro03_F000 (neu), but no audio "
                   "file Ses02F_impro03_F000.wav is under the corpus root (an incomplete "
                   "download?)"},
        {"path": str(session_2_turns / "Ses02F_impro03_M000.wav"),
         "reason_code": "missing_audio",
         "reason": f"label file {evaluation_2} labels Ses02F_impro03_M000 (xxx), but no audio "
                   "file Ses02F_impro03_M000.wav is under the corpus root (an incomplete "
                   "download?)"},
    ]
    summary = summarize(result)
    assert "iemocap: 3 utterances" in summary
    assert "skipped 5: empty 1, missing_audio 3, not_a_file 1" in summary
    assert read_provenance(manifest_path)["skipped"] == 5


def test_iemocap_turn_found_elsewhere_in_the_tree_is_not_missing(tmp_path: Path) -> None:
    """Mirrors move turns out of `sentences/wav/<dialog>/`: a turn's audio found anywhere
    (even in a folder the reader rejects) is not reported missing on top of its own reason."""
    write_iemocap_dialog(tmp_path, 1, "Ses01F_impro01", [
        ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "ang")])
    turns = tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    (turns / "Ses01F_impro01_F000.wav").rename(tmp_path / "Ses01F_impro01_F000.wav")
    (tmp_path / "Session2").mkdir()
    (turns / "Ses01F_impro01_M000.wav").rename(tmp_path / "Session2" / "Ses01F_impro01_M000.wav")
    result = scan_corpus("iemocap", tmp_path)
    assert result.manifest["utterance_id"].tolist() == ["Ses01F_impro01_F000"]
    assert reasons(result) == {"Ses01F_impro01_M000.wav": "mislabelled"}


def test_things_named_like_audio_files_that_are_not_files_are_reported(tmp_path: Path) -> None:
    """A folder (or a link to one, or a pipe) under an audio name is reported as not a file;
    the files inside such a folder are scanned like any others."""
    root = tmp_path / "emodb"
    write_wav(root / "wav" / "03a01Fa.wav", sample_rate=48000, channels=2)
    (root / "wav" / "08a02Wb.wav").mkdir()
    write_wav(root / "wav" / "09b01Fc.wav" / "09b01Fc.wav")
    write_wav(tmp_path / "second-disk" / "10b02Tb.wav", sample_rate=22050)
    (root / "wav" / "11a01Wa.WAV").symlink_to(tmp_path / "second-disk",
                                              target_is_directory=True)
    os.mkfifo(root / "wav" / "12a01Na.wav")

    result = scan_corpus("emodb", root)
    manifest_path = tmp_path / "out" / "emodb.parquet"
    write_scan(result, manifest_path)

    manifest = read_manifest(manifest_path).set_index("utterance_id")
    assert manifest[["sample_rate", "channels"]].to_dict("index") == {
        "03a01Fa": {"sample_rate": 48000, "channels": 2},
        "09b01Fc": {"sample_rate": 16000, "channels": 1},
        "10b02Tb": {"sample_rate": 22050, "channels": 1}}
    folder_reason = "a directory named like an audio file (the files in it are scanned as usual)"
    assert read_skipped(manifest_path).to_dict("records") == [
        {"path": str(root / "wav" / "08a02Wb.wav"), "reason_code": "not_a_file",
         "reason": folder_reason},
        {"path": str(root / "wav" / "09b01Fc.wav"), "reason_code": "not_a_file",
         "reason": folder_reason},
        {"path": str(root / "wav" / "11a01Wa.WAV"), "reason_code": "not_a_file",
         "reason": folder_reason},
        {"path": str(root / "wav" / "12a01Na.wav"), "reason_code": "not_a_file",
         "reason": "a pipe, socket or device named like an audio file"},
    ]
    assert "skipped 4: not_a_file 4" in summarize(result)


def reasons(result: ScanResult) -> dict[str, str]:
    return {Path(s.path).name: s.reason_code for s in result.skipped}


def test_ravdess_skips_song_and_reads_speech(tmp_path: Path) -> None:
    root = tmp_path / "ravdess"
    write_wav(root / "Actor_01" / "03-01-05-02-01-01-01.wav", sample_rate=48000)
    write_wav(root / "Actor_12" / "03-01-02-01-02-02-12.wav", sample_rate=48000)
    write_wav(root / "Actor_01" / "03-02-05-02-01-01-01.wav", sample_rate=48000)
    result, others = scan_with_junk("ravdess", root, [
        root / "Actor_02" / f"03-01-0{emotion}-01-01-01-02.wav" for emotion in range(1, 6)])
    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["03-01-05-02-01-01-01", ["speaker", "gender", "label"]].tolist() == [
        "ravdess:01", "M", "angry"]
    assert manifest.loc["03-01-02-01-02-02-12", ["gender", "label"]].tolist() == ["F", "calm"]
    assert manifest["sample_rate"].eq(48000).all()
    assert others == {"03-02-05-02-01-01-01.wav": "song"}


CREMAD_DEMOGRAPHICS = (
    "ActorID,Age,Sex,Race,Ethnicity\n"
    "1001,51,Male,Caucasian,Not Hispanic\n"
    "1091,29,Female,Asian,Not Hispanic\n"
)


def test_cremad_gender_comes_from_the_demographics_table(tmp_path: Path) -> None:
    root = tmp_path / "CREMA-D"
    write_wav(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    write_wav(root / "AudioWAV" / "1091_IEO_HAP_HI.wav")
    (root / "AudioMP3").mkdir()
    (root / "AudioMP3" / "1001_DFA_ANG_XX.mp3").write_bytes(b"ID3")
    (root / "VideoDemographics.csv").write_text(CREMAD_DEMOGRAPHICS, encoding="utf-8-sig")
    result, others = scan_with_junk("cremad", root, [
        root / "AudioWAV" / f"1002_{sentence}_NEU_XX.wav"
        for sentence in ("IEO", "TIE", "IOM", "IWW", "TAI")])
    assert result.manifest.set_index("utterance_id")["gender"].to_dict() == {
        "1001_DFA_ANG_XX": "M", "1091_IEO_HAP_HI": "F"}
    assert others == {}
    assert result.notes == []


def test_cremad_without_demographics_keeps_files_and_says_so(tmp_path: Path) -> None:
    write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    write_wav(tmp_path / "AudioWAV" / "1091_IEO_HAP_HI.wav")
    result = scan_corpus("cremad", tmp_path)
    assert len(result.manifest) == 2
    assert result.manifest["gender"].isna().all()
    assert any("VideoDemographics.csv" in note for note in result.notes)


@pytest.mark.parametrize(("content", "complaint"), [
    (CREMAD_DEMOGRAPHICS.replace("ActorID", "Actor").encode(),
     r"lacks the column\(s\) ActorID \(its header: Actor, Age, Sex, Race, Ethnicity\)"),
    (CREMAD_DEMOGRAPHICS.replace("Sex", "Gender").encode(), r"lacks the column\(s\) Sex"),
    (CREMAD_DEMOGRAPHICS.replace("Asian", "Asiatique é").encode("latin-1"),
     r"is not UTF-8 text \(byte 0xe9 on line 3\)"),
    (f"{CREMAD_DEMOGRAPHICS}1002,{'9' * 200_000},Male,,\n".encode(),
     r"is not a readable CSV table \(field larger than field limit"),
])
def test_cremad_unusable_demographics_table_is_a_user_error(
    tmp_path: Path, content: bytes, complaint: str
) -> None:
    write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    table = tmp_path / "VideoDemographics.csv"
    table.write_bytes(content)
    with pytest.raises(UserError, match=complaint) as error:
        scan_corpus("cremad", tmp_path)
    assert str(error.value).startswith(str(table))
    assert str(error.value).endswith("expected a UTF-8 CSV file with the columns ActorID, Sex")


@pytest.mark.parametrize(("extra_row", "complaint"), [
    ("1002,30,F,Asian,Not Hispanic",
     r"line \d+: Sex 'F' of actor 1002 is not one of Female, Male"),
    ("1001,51,Female,Caucasian,Not Hispanic",
     r"line \d+: actor 1001 is listed again with another Sex \('Female'\)"),
])
def test_cremad_demographics_rows_that_would_guess_a_gender_are_user_errors(
    tmp_path: Path, extra_row: str, complaint: str
) -> None:
    write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    (tmp_path / "VideoDemographics.csv").write_text(f"{CREMAD_DEMOGRAPHICS}{extra_row}\n")
    with pytest.raises(UserError, match=complaint):
        scan_corpus("cremad", tmp_path)


def test_cremad_broken_link_to_the_demographics_table_is_a_user_error(tmp_path: Path) -> None:
    write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    (tmp_path / "VideoDemographics.csv").symlink_to(tmp_path / "lost.csv")
    with pytest.raises(UserError, match=r"\.csv: cannot read the file: broken link"):
        scan_corpus("cremad", tmp_path)


def test_tess_kaggle_folders_and_96k_file(tmp_path: Path) -> None:
    root = tmp_path / "tess"
    write_wav(root / "OAF_Pleasant_surprise" / "OAF_back_ps.wav", sample_rate=24414)
    write_wav(root / "YAF_pleasant_surprised" / "YAF_back_ps.wav", sample_rate=24414)
    write_wav(root / "OAF_Fear" / "OAF_food_fear.wav", sample_rate=96000)
    result, others = scan_with_junk("tess", root, [
        root / "OAF_Fear" / f"OAF_{word}_fear.wav"
        for word in ("bath", "bean", "boat", "bone", "book")])
    manifest = result.manifest.set_index("utterance_id")
    assert manifest["label"].to_dict() == {
        "OAF_back_ps": "surprise", "YAF_back_ps": "surprise", "OAF_food_fear": "fear"}
    assert manifest.loc["OAF_food_fear", "sample_rate"] == 96000
    assert set(manifest["speaker"]) == {"tess:OAF", "tess:YAF"}
    assert others == {}


@pytest.mark.parametrize("layout", ["flat", "official"])
def test_savee_layouts(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "savee"

    def savee_path(speaker: str, stem: str) -> Path:
        return (root / f"{speaker}_{stem}.wav" if layout == "flat"
                else root / "AudioData" / speaker / f"{stem}.wav")

    names = {"DC": ["sa01", "su15", "a03", "n30"], "KL": ["h01", "d02", "f03"]}
    for speaker, stems in names.items():
        for stem in stems:
            write_wav(savee_path(speaker, stem), sample_rate=44100)
    if layout == "official":
        write_wav(root / "AudioData" / "XX" / "a01.wav")
    result, others = scan_with_junk(
        "savee", root, [savee_path("JE", f"n{index:02d}") for index in range(1, 6)])
    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["DC_sa01", "label"] == "sad"
    assert manifest.loc["DC_su15", "label"] == "surprise"
    assert manifest.loc["KL_h01", ["speaker", "gender"]].tolist() == ["savee:KL", "M"]
    assert len(manifest) == 7
    assert others == ({"a01.wav": "bad_name"} if layout == "official" else {})


def test_emovo_stereo_and_shemo_speaker_namespaces(tmp_path: Path) -> None:
    emovo_root = tmp_path / "emovo"
    write_wav(emovo_root / "f1" / "rab-f1-b1.wav", sample_rate=48000, channels=2)
    write_wav(emovo_root / "m3" / "gio-m3-d2.wav", sample_rate=48000)
    emovo, emovo_others = scan_with_junk("emovo", emovo_root, [
        emovo_root / "f2" / f"neu-f2-{sentence}.wav"
        for sentence in ("b1", "b2", "b3", "l1", "l2")])
    emovo_manifest = emovo.manifest.set_index("utterance_id")
    assert emovo_manifest.loc["rab-f1-b1", ["channels", "gender", "label"]].tolist() == [
        2, "F", "angry"]
    assert emovo_manifest.loc["gio-m3-d2", "label"] == "happy"
    assert emovo_others == {}

    shemo_root = tmp_path / "shemo"
    write_wav(shemo_root / "female" / "F01A01.wav", sample_rate=44100)
    write_wav(shemo_root / "male" / "M01W02.wav", sample_rate=22050)
    shemo, shemo_others = scan_with_junk("shemo", shemo_root, [
        shemo_root / "female" / f"F02N{index:02d}.wav" for index in range(1, 6)])
    shemo_manifest = shemo.manifest.set_index("utterance_id")
    assert shemo_manifest["speaker"].to_dict() == {"F01A01": "shemo:F01", "M01W02": "shemo:M01"}
    assert shemo_manifest.loc["M01W02", "label"] == "surprise"
    assert shemo_others == {}


def test_banglaser_numbered_actors(tmp_path: Path) -> None:
    root = tmp_path / "BanglaSER"
    for name in ["03-01-01-01-01-01-01.wav", "03-01-05-02-03-03-34.wav",
                 "03-01-04-01-02-02-17.wav"]:
        write_wav(root / "Actor" / name, sample_rate=44100)
    write_wav(root / "03-01-06-01-01-01-01.wav")
    result, others = scan_with_junk("banglaser", root, [
        root / "Actor" / f"03-01-02-01-01-01-{actor:02d}.wav" for actor in range(5, 10)])
    manifest = result.manifest.set_index("utterance_id")
    assert manifest[["label", "gender"]].to_dict("index") == {
        "03-01-01-01-01-01-01": {"label": "happy", "gender": "M"},
        "03-01-05-02-03-03-34": {"label": "neutral", "gender": "F"},
        "03-01-04-01-02-02-17": {"label": "surprise", "gender": "M"},
    }
    assert others == {"03-01-06-01-01-01-01.wav": "bad_name"}


def test_esd_index_ranges_and_folder_cross_check(tmp_path: Path) -> None:
    root = tmp_path / "ESD"
    write_wav(root / "0005" / "Neutral" / "0005_000001.wav")
    write_wav(root / "0005" / "Angry" / "train" / "0005_000351.wav")
    write_wav(root / "0011" / "Surprise" / "0011_001750.wav")
    write_wav(root / "0011" / "Happy" / "0011_000100.wav")
    write_wav(root / "0011" / "0011_001751.wav")
    result, others = scan_with_junk("esd", root, [
        root / "0005" / "Neutral" / f"0005_{index:06d}.wav" for index in range(2, 7)])
    manifest = result.manifest.set_index("utterance_id")
    assert manifest[["label", "gender"]].to_dict("index") == {
        "0005_000001": {"label": "neutral", "gender": "M"},
        "0005_000351": {"label": "angry", "gender": "M"},
        "0011_001750": {"label": "surprise", "gender": "M"},
    }
    assert others == {"0011_000100.wav": "mislabelled", "0011_001751.wav": "bad_name"}


def test_subesco_stray_bracket_and_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "SUBESCO"
    write_wav(root / "F_02_MONIKA_S_2_SURPRISE_3].wav", sample_rate=44100)
    write_wav(root / "M_10_EVAN_S_10_DISGUST_2.wav", sample_rate=48000)
    write_wav(root / "mirror" / "M_10_EVAN_S_10_DISGUST_2.wav", sample_rate=48000)
    result, others = scan_with_junk("subesco", root, [
        root / f"F_01_OISHI_S_1_NEUTRAL_{take}.wav" for take in range(1, 6)])
    manifest = result.manifest.set_index("utterance_id")
    assert manifest["speaker"].to_dict() == {
        "F_02_MONIKA_S_2_SURPRISE_3": "subesco:F_02_MONIKA",
        "M_10_EVAN_S_10_DISGUST_2": "subesco:M_10_EVAN",
    }
    assert others == {"M_10_EVAN_S_10_DISGUST_2.wav": "duplicate"}


def test_manifest_round_trip_keeps_types(tmp_path: Path) -> None:
    write_wav(tmp_path / "c" / "03a01Fa.wav")
    result = scan_corpus("emodb", tmp_path / "c")
    write_scan(result, tmp_path / "m.parquet")
    manifest = read_manifest(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(manifest, result.manifest.astype(manifest.dtypes.to_dict()))
