"""k-fold training through Ray Train's TorchTrainer on the shared local cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ray.train import UserCallback

from ser_ray.cli import main
from ser_ray.train import train_folds
from ser_ray.train.ray_train import train_folds_on_ray
from tests.train.test_loop import make_job, without_timing

pytestmark = pytest.mark.usefixtures("ray_session")


class ReportsToFile(UserCallback):
    """Every report's metrics, as rank 0 sent them, one JSON line each (the callback runs in
    Train's controller, another process)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Any) -> None:
        with self.path.open("a") as lines:
            lines.write(json.dumps(metrics[0]) + "\n")


def test_two_workers_train_two_folds_like_the_plain_loop(tiny_study, tmp_path: Path) -> None:
    job = make_job(tiny_study).model_copy(update={"fold_indices": (0, 1)})
    reports = tmp_path / "reports.jsonl"
    on_ray = train_folds_on_ray(job, storage_path=tmp_path, name="fold-parallel", workers=2,
                                callbacks=[ReportsToFile(reports)])
    in_process = train_folds(job)
    assert sorted(on_ray.histories) == [0, 1]
    assert all(len(history) == 2 for history in on_ray.histories.values())
    assert without_timing(on_ray.histories) == without_timing(in_process.histories)
    # Each epoch's report carries every fold's score at its selected epoch, gathered from
    # both workers: what fold racing pairs trials by.
    for line in reports.read_text().splitlines():
        report = json.loads(line)
        by_fold = report["by_fold_selected_unweighted_accuracy"]
        assert set(by_fold) == {"0", "1"}
        assert sum(by_fold.values()) / 2 == pytest.approx(
            report["selected_unweighted_accuracy"])
    assert len(reports.read_text().splitlines()) == 2
    summary = on_ray.summary()
    assert summary["pooled"]["support"] == sum(f["support"] for f in summary["folds"].values())
    assert set(on_ray.predictor_state) == set(in_process.predictor_state)


def test_cli_on_two_ray_workers_writes_complete_outputs(tiny_study, tmp_path: Path) -> None:
    folds = tmp_path / "two_folds.parquet"
    assert main(["folds", "--manifest", str(tiny_study.selected_manifest), "--protocol",
                 "speaker", "--k", "2", "--out", str(folds)]) == 0
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(tiny_study.selected_manifest), "--folds", str(folds),
                 "--cache", str(tiny_study.cache_root), "--recipe", "logmel", "--versions", "2,8",
                 "--set", "recipe.duration_s=2", "--augment", "noise:snr=20", "--version", "8",
                 "--model", "eca_cnn", "--set", "scale=1", "--set", "base_width=4",
                 "--epochs", "2", "--workers", "2", "--out", str(out)]) == 0
    frame = pd.read_parquet(out / "metrics.parquet")
    assert list(frame.columns) == ["fold", "epoch", "split", "metric", "value"]
    cells = frame.groupby(["fold", "epoch", "split"])["metric"].apply(set)
    assert sorted(cells.index) == [(fold, epoch, split) for fold in (0, 1) for epoch in (1, 2)
                                   for split in ("test", "train")]
    for (_, _, split), metrics in cells.items():
        assert metrics >= ({"loss", "lr"} if split == "train" else
                           {"unweighted_accuracy", "weighted_accuracy", "macro_f1", "loss"})
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["folds"]) == {"0", "1"}
    for scores in (*summary["folds"].values(), summary["pooled"]):
        for key in ("unweighted_accuracy", "weighted_accuracy", "macro_f1"):
            assert 0 <= scores[key] <= 1
    assert summary["optimistic_best_epoch"]["optimistic"]
    for png in ("confusion_pooled.png", "confusion_fold0.png", "confusion_fold1.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "model" / "predictor.pt").stat().st_size > 0


@pytest.mark.slow
def test_rerunning_the_same_ray_run_resumes_from_its_last_epoch(tiny_study, tmp_path) -> None:
    job = make_job(tiny_study).model_copy(update={"fold_indices": (2,)})
    first = train_folds_on_ray(job.model_copy(update={"train": job.train.model_copy(
        update={"epochs": 1})}), storage_path=tmp_path, name="resume", workers=1)
    assert len(first.histories[2]) == 1
    resumed = train_folds_on_ray(job, storage_path=tmp_path, name="resume", workers=1)
    assert without_timing(resumed.histories) == without_timing(train_folds(job).histories)


@pytest.mark.slow
def test_workers_beyond_the_folds_train_each_fold_with_ddp(tiny_study, tmp_path) -> None:
    job = make_job(tiny_study, epochs=1).model_copy(update={"fold_indices": (0,)})
    outcome = train_folds_on_ray(job, storage_path=tmp_path, name="ddp", workers=2)
    (record,) = outcome.histories[0]
    assert record["fold"] == 0 and 0.0 <= record["test"]["unweighted_accuracy"] <= 1.0
    assert record["test"]["support"] == outcome.summary()["pooled"]["support"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--workers", "2", "--set", "scal=1"], "unknown option 'scal'"),
    (["--workers", "4"], "4 workers cannot share 3 folds evenly"),
    (["--workers", "-1"], "--workers and --gpus must be 0 or more"),
])
def test_bad_ray_settings_are_user_errors_before_any_worker_starts(tiny_study, tmp_path, capsys,
                                                                   flags, message) -> None:
    from ser_ray.cli import main

    status = main(["train", "--manifest", str(tiny_study.selected_manifest), "--folds",
                   str(tiny_study.folds), "--cache", str(tiny_study.cache_root), "--recipe",
                   "logmel", "--versions", "2,8", "--set", "recipe.duration_s=2", "--augment",
                   "noise:snr=20", "--version", "8", "--model", "eca_cnn", "--epochs", "1",
                   "--out", str(tmp_path / "out"), *flags])
    assert status == 2 and message in capsys.readouterr().err
