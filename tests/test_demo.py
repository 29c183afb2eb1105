"""The demo end to end: synthetic corpus → scan → 4-class selection → leak-checked folds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ser_ray.cli import main
from ser_ray.corpus.manifest import read_manifest, read_skipped
from ser_ray.demo import run_demo
from ser_ray.folds import read_folds
from ser_ray.synth import SynthConfig

SMALL = SynthConfig(utterances_per_speaker=12, min_duration_s=1.0, max_duration_s=2.0)


@pytest.mark.slow
def test_demo_pipeline_on_the_synthetic_corpus(tmp_path: Path, capsys) -> None:
    outputs = run_demo(tmp_path, SMALL)

    manifest = read_manifest(outputs.manifest)
    assert len(manifest) == 5 * 2 * 12
    assert read_skipped(outputs.manifest).empty
    assert manifest["speaker"].nunique() == 10

    selected = read_manifest(outputs.selected_manifest)
    assert set(selected["label"]) == {"angry", "happy", "neutral", "sad"}
    assert set(selected["raw_label"]) == {"ang", "hap", "exc", "neu", "sad"}

    folds, protocol = read_folds(outputs.folds)
    assert protocol.kind == "session"
    by_fold = selected.merge(folds, on="utterance_id").groupby("fold")
    assert by_fold["session"].nunique().eq(1).all()
    assert sorted(by_fold["session"].first()) == [f"Session{n}" for n in range(1, 6)]

    summary = outputs.summary.read_text()
    assert "speaker-independent" in summary
    assert str(outputs.summary) in capsys.readouterr().out


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
