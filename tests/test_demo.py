"""The demo end to end (quick): every stage on the offline corpus, reports, a best model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ser_ray.cli import main
from ser_ray.experiment import read_ledger, read_study_record
from ser_ray.folds import read_folds
from ser_ray.predict import Predictor


@pytest.mark.slow
def test_quick_demo_produces_reports_with_tables_plots_and_a_model(ray_session, tmp_path: Path,
                                                                  capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    for where in ("report:", "ser-ray monitor ", "Ray dashboard:",
                  "ser-ray predict --checkpoint"):
        assert where in printed

    ablation = (out / "ablation" / "report.md").read_text()
    assert "## Factorial" in ablation and "Wilcoxon p" in ablation and "Holm p" in ablation
    assert "speaker-independent" in ablation
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", ablation)
    assert images and all((out / "ablation" / image).is_file() for image in images)
    study = read_study_record(out / "ablation")
    assert study.planned_units == 8 * 5 * 2
    assert len(read_ledger(out / "ablation")) == study.planned_units
    assert study.features[0].identity.recipe["versions"] == list(range(1, 9))
    assert study.features[0].identity.augmentations == ("noise:snr=20",)
    assert "**Training settings**" in ablation and "| epochs " in ablation
    folds, protocol = read_folds(out / "ablation" / "data" / "folds.parquet")
    assert protocol.kind == "session" and folds["fold"].nunique() == 5

    search = (out / "search" / "report.md").read_text()
    assert "## Search" in search and "optimisation history" in search
    assert (out / "search" / "optuna.db").is_file()
    assert {row.variant for row in read_ledger(out / "search")} == {
        f"trial_{n:04d}" for n in range(1, 5)}

    index = (out / "report.md").read_text()
    assert "[ablation/report.md](ablation/report.md)" in index
    predictor = Predictor(out / "search" / "best_model" / "predictor.pt")
    prediction = predictor.predict(out / "new_recording.wav")
    assert prediction.error is None and prediction.label in predictor.label_names


def test_cli_synth_scan_select_folds(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    assert main(["corpus", "synth", "--out", str(corpus), "--utterances-per-speaker", "8",
                 "--seed", "3"]) == 0
    assert main(["corpus", "scan", "--corpus", "iemocap", "--root", str(corpus),
                 "--out", str(tmp_path / "m.parquet")]) == 0
    assert main(["corpus", "select", "--manifest", str(tmp_path / "m.parquet"),
                 "--labels", "angry,happy,neutral,sad", "--merge", "excited=happy",
                 "--out", str(tmp_path / "m4.parquet")]) == 0
    assert main(["folds", "--manifest", str(tmp_path / "m4.parquet"), "--protocol", "speaker",
                 "--k", "5", "--out", str(tmp_path / "f.parquet")]) == 0
    folds, _ = read_folds(tmp_path / "f.parquet")
    assert folds["fold"].nunique() == 5
    assert main(["corpus", "synth", "--out", str(corpus), "--speakers-per-session", "3"]) == 2
