"""The command line: summaries, files written, and exit status 2 with a message for user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ser_ray.cli import main
from ser_ray.corpus.manifest import read_manifest, read_provenance
from tests.conftest import write_wav


@pytest.fixture
def emodb_tree(tmp_path: Path) -> Path:
    root = tmp_path / "emodb"
    for name in ["03a01Fa.wav", "03a01Wa.wav", "08a02Wb.wav", "09b01Fc.wav", "10b02Tb.wav"]:
        write_wav(root / "wav" / name)
    (root / "wav" / "broken.wav").write_text("no audio here")
    return root


def test_scan_then_select(emodb_tree: Path, tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "out" / "emodb.parquet"
    assert main(["corpus", "scan", "--corpus", "emodb", "--root", str(emodb_tree),
                 "--out", str(manifest)]) == 0
    printed = capsys.readouterr().out
    assert "emodb: 5 utterances" in printed
    assert "per label:   angry 2, happy 2, sad 1" in printed
    assert "skipped 1: bad_name 1" in printed
    assert (tmp_path / "out" / "emodb_skipped.csv").is_file()

    selected = tmp_path / "out" / "emodb_2.parquet"
    assert main(["corpus", "select", "--manifest", str(manifest), "--labels", "angry,sad",
                 "--out", str(selected)]) == 0
    assert sorted(read_manifest(selected)["label"]) == ["angry", "angry", "sad"]
    assert read_provenance(selected)["selection"]["labels"] == ["angry", "sad"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["corpus", "scan", "--corpus", "iemocapp", "--root", ".", "--out", "m.parquet"],
         "unknown corpus 'iemocapp'; choose one of: banglaser"),
        (["corpus", "scan", "--corpus", "emodb", "--root", "does/not/exist",
          "--out", "m.parquet"], "is not a directory"),
        (["corpus", "select", "--manifest", "missing.parquet", "--labels", "sad",
          "--out", "x.parquet"], "does not exist"),
        (["folds", "--manifest", "missing.parquet", "--protocol", "session",
          "--out", "f.parquet"], "does not exist"),
        (["bench", "scan", "--files", "0"], "--files must be within"),
    ],
)
def test_user_errors_exit_2_and_name_the_fix(argv: list[str], message: str, capsys,
                                             tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_label_exits_2_listing_allowed_labels(emodb_tree: Path, tmp_path: Path,
                                                  capsys) -> None:
    manifest = tmp_path / "m.parquet"
    main(["corpus", "scan", "--corpus", "emodb", "--root", str(emodb_tree), "--out",
          str(manifest)])
    assert main(["corpus", "select", "--manifest", str(manifest), "--labels", "angri",
                 "--out", str(tmp_path / "s.parquet")]) == 2
    assert "allowed: neutral, calm, happy" in capsys.readouterr().err


def test_python_dash_m_form_runs_and_argparse_errors_exit_2() -> None:
    help_run = subprocess.run([sys.executable, "-m", "ser_ray", "--help"],
                              capture_output=True, text=True, check=False)
    assert help_run.returncode == 0 and "corpus" in help_run.stdout
    bad_flag = subprocess.run([sys.executable, "-m", "ser_ray", "folds", "--protocol", "nope"],
                              capture_output=True, text=True, check=False)
    assert bad_flag.returncode == 2
    assert "invalid choice: 'nope'" in bad_flag.stderr
