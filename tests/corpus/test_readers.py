"""Readers on fake trees in each corpus's documented layout, with junk files in every tree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ser_ray.corpus import scan_corpus
from ser_ray.corpus.manifest import read_manifest, read_skipped
from ser_ray.corpus.scan import write_scan
from tests.conftest import write_wav


def add_ignored_files(folder: Path) -> None:
    """Hidden and non-audio files that a scan must neither read nor report."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "._AppleDouble.wav").write_bytes(b"\x00\x05\x16\x07")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "readme.txt").write_text("not audio, not .wav: ignored")


def junk_named(folder: Path, valid_names: list[str]) -> dict[str, str]:
    """Bad files that carry valid names, so only their content can be blamed."""
    empty, text, truncated, short = valid_names
    (folder / empty).write_bytes(b"")
    (folder / text).write_text("this is a text file with a .wav name")
    (folder / truncated).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    write_wav(folder / short, seconds=0.02)
    return {empty: "empty", text: "not_audio", truncated: "bad_header", short: "too_short"}


def reasons(result) -> dict[str, str]:
    return {Path(s.path).name: s.reason_code for s in result.skipped}


def test_emodb_tree_with_every_junk_kind(tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    for name in ["03a01Fa.wav", "08a02Wb.wav", "16b10Lc.wav", "13a05Td.wav"]:
        write_wav(root / "wav" / name)
    add_ignored_files(root / "wav")
    expected = junk_named(root / "wav", ["09a01Na.wav", "10a01Na.wav", "11a01Na.wav",
                                         "12a01Na.wav"])
    write_wav(root / "wav" / "99x01Fa.wav")
    expected["99x01Fa.wav"] = "bad_name"

    result = scan_corpus("emodb", root)

    assert reasons(result) == expected
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
    result = scan_corpus("emodb", root)
    manifest_path = tmp_path / "out" / "emodb.parquet"
    write_scan(result, manifest_path)
    assert read_manifest(manifest_path)["utterance_id"].tolist() == ["03a01Fa"]
    skipped = read_skipped(manifest_path)
    assert (tmp_path / "out" / "emodb_skipped.csv").is_file()
    assert skipped.to_dict("records") == [
        {"path": str(root / "03a01Wa.wav"), "reason_code": "empty",
         "reason": "empty file (0 bytes)"}]


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

    result = scan_corpus("iemocap", root)

    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["Ses03M_impro05a_F000", ["speaker", "gender", "session", "label"]
                        ].tolist() == ["iemocap:03F", "F", "Session3", "excited"]
    assert manifest.loc["Ses05M_script01_1b_F002", "speaker"] == "iemocap:05F"
    assert not manifest.loc["Ses05M_script01_1b_F002", "improvised"]
    assert manifest.loc["Ses01F_impro01_M000", "speaker"] == "iemocap:01M"
    assert manifest.loc["Ses01F_impro01_M001", "label"] == "unknown"
    assert manifest.loc["Ses03M_impro05a_M000", "label"] == "frustrated"
    assert "surprise" not in set(manifest["label"]), "read the decoy Categorical folder"
    assert reasons(result) == {
        "Ses01F_impro01_F001.wav": "no_label",
        "Ses01F_impro01.wav": "not_utterance",
        "Ses01F_impro02_F000.wav": "mislabelled",
    }


def test_ravdess_skips_song_and_reads_speech(tmp_path: Path) -> None:
    root = tmp_path / "ravdess"
    write_wav(root / "Actor_01" / "03-01-05-02-01-01-01.wav", sample_rate=48000)
    write_wav(root / "Actor_12" / "03-01-02-01-02-02-12.wav", sample_rate=48000)
    write_wav(root / "Actor_01" / "03-02-05-02-01-01-01.wav", sample_rate=48000)
    result = scan_corpus("ravdess", root)
    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["03-01-05-02-01-01-01", ["speaker", "gender", "label"]].tolist() == [
        "ravdess:01", "M", "angry"]
    assert manifest.loc["03-01-02-01-02-02-12", ["gender", "label"]].tolist() == ["F", "calm"]
    assert manifest["sample_rate"].eq(48000).all()
    assert reasons(result) == {"03-02-05-02-01-01-01.wav": "song"}


def test_cremad_without_demographics_keeps_files_and_says_so(tmp_path: Path) -> None:
    write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    write_wav(tmp_path / "AudioWAV" / "1091_IEO_HAP_HI.wav")
    (tmp_path / "AudioMP3").mkdir()
    (tmp_path / "AudioMP3" / "1001_DFA_ANG_XX.mp3").write_bytes(b"ID3")
    result = scan_corpus("cremad", tmp_path)
    assert len(result.manifest) == 2
    assert result.manifest["gender"].isna().all()
    assert any("VideoDemographics.csv" in note for note in result.notes)


def test_tess_kaggle_folders_and_96k_file(tmp_path: Path) -> None:
    write_wav(tmp_path / "OAF_Pleasant_surprise" / "OAF_back_ps.wav", sample_rate=24414)
    write_wav(tmp_path / "YAF_pleasant_surprised" / "YAF_back_ps.wav", sample_rate=24414)
    write_wav(tmp_path / "OAF_Fear" / "OAF_food_fear.wav", sample_rate=96000)
    manifest = scan_corpus("tess", tmp_path).manifest.set_index("utterance_id")
    assert manifest["label"].to_dict() == {
        "OAF_back_ps": "surprise", "YAF_back_ps": "surprise", "OAF_food_fear": "fear"}
    assert manifest.loc["OAF_food_fear", "sample_rate"] == 96000
    assert set(manifest["speaker"]) == {"tess:OAF", "tess:YAF"}


@pytest.mark.parametrize("layout", ["flat", "official"])
def test_savee_layouts(tmp_path: Path, layout: str) -> None:
    names = {"DC": ["sa01", "su15", "a03", "n30"], "KL": ["h01", "d02", "f03"]}
    for speaker, stems in names.items():
        for stem in stems:
            path = (tmp_path / f"{speaker}_{stem}.wav" if layout == "flat"
                    else tmp_path / "AudioData" / speaker / f"{stem}.wav")
            write_wav(path, sample_rate=44100)
    if layout == "official":
        write_wav(tmp_path / "AudioData" / "XX" / "a01.wav")
    result = scan_corpus("savee", tmp_path)
    manifest = result.manifest.set_index("utterance_id")
    assert manifest.loc["DC_sa01", "label"] == "sad"
    assert manifest.loc["DC_su15", "label"] == "surprise"
    assert manifest.loc["KL_h01", ["speaker", "gender"]].tolist() == ["savee:KL", "M"]
    assert len(manifest) == 7
    assert reasons(result) == ({"a01.wav": "bad_name"} if layout == "official" else {})


def test_emovo_stereo_and_shemo_speaker_namespaces(tmp_path: Path) -> None:
    write_wav(tmp_path / "emovo" / "f1" / "rab-f1-b1.wav", sample_rate=48000, channels=2)
    write_wav(tmp_path / "emovo" / "m3" / "gio-m3-d2.wav", sample_rate=48000)
    emovo = scan_corpus("emovo", tmp_path / "emovo").manifest.set_index("utterance_id")
    assert emovo.loc["rab-f1-b1", ["channels", "gender", "label"]].tolist() == [2, "F", "angry"]
    assert emovo.loc["gio-m3-d2", "label"] == "happy"

    write_wav(tmp_path / "shemo" / "female" / "F01A01.wav", sample_rate=44100)
    write_wav(tmp_path / "shemo" / "male" / "M01W02.wav", sample_rate=22050)
    shemo = scan_corpus("shemo", tmp_path / "shemo").manifest.set_index("utterance_id")
    assert shemo["speaker"].to_dict() == {"F01A01": "shemo:F01", "M01W02": "shemo:M01"}
    assert shemo.loc["M01W02", "label"] == "surprise"


def test_banglaser_numbered_actors(tmp_path: Path) -> None:
    for name in ["03-01-01-01-01-01-01.wav", "03-01-05-02-03-03-34.wav",
                 "03-01-04-01-02-02-17.wav"]:
        write_wav(tmp_path / "BanglaSER" / "Actor" / name, sample_rate=44100)
    write_wav(tmp_path / "BanglaSER" / "03-01-06-01-01-01-01.wav")
    result = scan_corpus("banglaser", tmp_path)
    manifest = result.manifest.set_index("utterance_id")
    assert manifest[["label", "gender"]].to_dict("index") == {
        "03-01-01-01-01-01-01": {"label": "happy", "gender": "M"},
        "03-01-05-02-03-03-34": {"label": "neutral", "gender": "F"},
        "03-01-04-01-02-02-17": {"label": "surprise", "gender": "M"},
    }
    assert reasons(result) == {"03-01-06-01-01-01-01.wav": "bad_name"}


def test_esd_index_ranges_and_folder_cross_check(tmp_path: Path) -> None:
    write_wav(tmp_path / "0005" / "Neutral" / "0005_000001.wav")
    write_wav(tmp_path / "0005" / "Angry" / "train" / "0005_000351.wav")
    write_wav(tmp_path / "0011" / "Surprise" / "0011_001750.wav")
    write_wav(tmp_path / "0011" / "Happy" / "0011_000100.wav")
    write_wav(tmp_path / "0011" / "0011_001751.wav")
    result = scan_corpus("esd", tmp_path)
    manifest = result.manifest.set_index("utterance_id")
    assert manifest[["label", "gender"]].to_dict("index") == {
        "0005_000001": {"label": "neutral", "gender": "M"},
        "0005_000351": {"label": "angry", "gender": "M"},
        "0011_001750": {"label": "surprise", "gender": "M"},
    }
    assert reasons(result) == {"0011_000100.wav": "mislabelled", "0011_001751.wav": "bad_name"}


def test_subesco_stray_bracket_and_duplicates(tmp_path: Path) -> None:
    write_wav(tmp_path / "F_02_MONIKA_S_2_SURPRISE_3].wav", sample_rate=44100)
    write_wav(tmp_path / "M_10_EVAN_S_10_DISGUST_2.wav", sample_rate=48000)
    write_wav(tmp_path / "mirror" / "M_10_EVAN_S_10_DISGUST_2.wav", sample_rate=48000)
    result = scan_corpus("subesco", tmp_path)
    manifest = result.manifest.set_index("utterance_id")
    assert manifest["speaker"].to_dict() == {
        "F_02_MONIKA_S_2_SURPRISE_3": "subesco:F_02_MONIKA",
        "M_10_EVAN_S_10_DISGUST_2": "subesco:M_10_EVAN",
    }
    assert [s.reason_code for s in result.skipped] == ["duplicate"]


def test_manifest_round_trip_keeps_types(tmp_path: Path) -> None:
    write_wav(tmp_path / "c" / "03a01Fa.wav")
    result = scan_corpus("emodb", tmp_path / "c")
    write_scan(result, tmp_path / "m.parquet")
    manifest = read_manifest(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(manifest, result.manifest.astype(manifest.dtypes.to_dict()))
