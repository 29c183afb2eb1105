"""The plain k-fold loop on a real (tiny) synthetic corpus and feature cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from ser_ray.cli import main
from ser_ray.errors import UserError
from ser_ray.experiment import TrainConfig
from ser_ray.train import ModelChoice, TrainJob, train_folds
from ser_ray.train.data import FoldData
from ser_ray.train.loop import FOLD_FILE, FoldTrainer, LockstepRun

TINY_ECA_CNN = ModelChoice(name="eca_cnn", options={"scale": 1, "base_width": 4})
EASY_TRAINING = {"standardize": "train-fold", "lr": 3e-3, "batch_size": 16}


def make_job(tiny_study, **train: Any) -> TrainJob:
    settings = {"epochs": 2, "test_version": 8, **train}
    return TrainJob(manifest=tiny_study.selected_manifest, folds=tiny_study.folds,
                    cache=tiny_study.cache, model=TINY_ECA_CNN,
                    train=TrainConfig(**settings))


def without_timing(histories: dict[int, list[dict]]) -> dict[int, list[dict]]:
    return {fold: [{k: v for k, v in record.items() if k not in ("seconds", "finished_at")}
                   for record in history]
            for fold, history in histories.items()}


def test_cli_trains_every_fold_and_writes_complete_outputs(tiny_study, tmp_path: Path) -> None:
    out = tmp_path / "run"
    status = main(["train", "--manifest", str(tiny_study.selected_manifest),
                   "--folds", str(tiny_study.folds), "--cache", str(tiny_study.cache_root),
                   "--recipe", "logmel", "--versions", "2,8", "--set", "recipe.duration_s=2",
                   "--augment", "noise:snr=20", "--version", "8", "--model", "eca_cnn",
                   "--set", "scale=1", "--set", "base_width=4", "--epochs", "2",
                   "--workers", "0", "--out", str(out)])
    assert status == 0
    frame = pd.read_parquet(out / "metrics.parquet")
    assert list(frame.columns) == ["fold", "epoch", "split", "metric", "value"]
    assert sorted(frame["fold"].unique()) == [0, 1, 2]
    assert sorted(frame["epoch"].unique()) == [1, 2]
    ua = frame[(frame["split"] == "test") & (frame["metric"] == "unweighted_accuracy")]
    assert len(ua) == 3 * 2 and ua["value"].between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["folds"]) == {"0", "1", "2"}
    for key in ("unweighted_accuracy", "weighted_accuracy", "ua_wa_mean", "macro_f1"):
        assert 0 <= summary["fold_mean"][key] <= 1 and 0 <= summary["pooled"][key] <= 1
    assert summary["label_names"] == ["angry", "happy", "neutral", "sad"]
    assert summary["pooled"]["support"] == sum(f["support"] for f in summary["folds"].values())
    assert summary["protocol"] == "session" and summary["selection"] == "last"
    for png in ("confusion_pooled.png", "confusion_fold0.png", "learning_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    predictor = torch.load(out / "model" / "predictor.pt", weights_only=True)
    assert predictor["label_names"] == summary["label_names"]
    assert predictor["recipe"]["kind"] == "logmel" and predictor["stft_version"] == 8
    assert predictor["model_options"]["n_frames"] == 201


def test_no_row_of_a_test_utterance_reaches_a_training_batch(tiny_study, monkeypatch) -> None:
    trained: dict[int, set[str]] = {}
    original_batch = FoldTrainer._batch

    def recording_batch(self: FoldTrainer, split, positions):
        if split is self.splits.train:
            ids = self.data.rows["utterance_id"].to_numpy()[split.rows[positions]]
            trained.setdefault(self.fold_index, set()).update(ids)
        return original_batch(self, split, positions)

    monkeypatch.setattr(FoldTrainer, "_batch", recording_batch)
    job = make_job(tiny_study, epochs=1, train_versions=(8, 2), augmentations="all")
    train_folds(job)
    data = FoldData(job)
    rows = data.rows.set_index("utterance_id")
    for fold, row_ids in trained.items():
        held_out = set(data.fold_members[fold])
        sources = set(rows.loc[list(row_ids), "source_utterance_id"])
        assert not sources & held_out
        # The check is not vacuous: copies and the second STFT version did train.
        assert {"none", "noise:snr=20"} <= set(rows.loc[list(row_ids), "augmentation"])
        assert {2, 8} <= set(rows.loc[list(row_ids), "stft_version"].astype(int))
        test = data.splits(fold).test
        test_rows = data.rows.iloc[test.rows]
        assert set(test_rows["augmentation"]) == {"none"}
        assert set(test_rows["stft_version"].astype(int)) == {8}
        assert set(test_rows["source_utterance_id"]) == held_out


def test_resume_after_an_interruption_gives_identical_metrics(tiny_study, tmp_path) -> None:
    job = make_job(tiny_study, epochs=3, loss={"kind": "ce", "mixup_alpha": 0.2})
    uninterrupted = train_folds(job)

    class Interrupted(Exception):
        pass

    def stop_after_first_epoch(records: list[dict], run: LockstepRun) -> None:
        if run.epoch == 1:
            raise Interrupted

    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(Interrupted):
        train_folds(job, checkpoint_dir=checkpoint, on_epoch=stop_after_first_epoch)
    assert torch.load(checkpoint / FOLD_FILE.format(0), weights_only=True)["epoch"] == 1
    resumed = train_folds(job, checkpoint_dir=checkpoint)
    assert without_timing(resumed.histories) == without_timing(uninterrupted.histories)


def test_a_checkpoint_of_other_settings_is_refused(tiny_study, tmp_path) -> None:
    train_folds(make_job(tiny_study, epochs=1), checkpoint_dir=tmp_path / "checkpoint")
    with pytest.raises(UserError, match="other settings"):
        train_folds(make_job(tiny_study, epochs=1, lr=0.5),
                    checkpoint_dir=tmp_path / "checkpoint")


def test_a_fold_trains_alike_whichever_folds_share_its_process(tiny_study) -> None:
    job = make_job(tiny_study)
    alone = train_folds(job.model_copy(update={"fold_indices": (1,)}))
    together = train_folds(job)
    assert without_timing(alone.histories)[1] == without_timing(together.histories)[1]


def test_ua_is_clearly_above_chance_on_an_easy_setting(tiny_study) -> None:
    outcome = train_folds(make_job(tiny_study, epochs=12, **EASY_TRAINING))
    fold_mean = outcome.summary()["fold_mean"]
    # Four classes: chance UA is 0.25; measured 0.54 with this seed.
    assert fold_mean["unweighted_accuracy"] > 0.4


def test_selection_rules_and_validation_split(tiny_study) -> None:
    job = make_job(tiny_study, epochs=3, selection="best-validation",
                   validation="test-fold-speaker")
    summary = train_folds(job).summary()
    assert summary["selection"] == "best-validation" and not summary["optimistic"]
    data = FoldData(job)
    splits = data.splits(0)
    assert splits.validation is not None
    assert splits.validation.n_utterances + splits.test.n_utterances == \
        len(data.fold_members[0])
    optimistic = train_folds(make_job(tiny_study, epochs=3, selection="best-test")).summary()
    assert optimistic["optimistic"]
    for fold in optimistic["folds"].values():
        assert 1 <= fold["selected_epoch"] <= 3
    with pytest.raises(ValueError, match="needs a validation split"):
        TrainConfig(selection="best-validation")


def test_segments_are_scored_once_per_utterance(tiny_study, tmp_path) -> None:
    from ser_ray.features import parse_recipe
    from ser_ray.features.featurize import build_features_here

    feature_cache, _ = build_features_here(tiny_study.selected_manifest,
                                           parse_recipe("mfcc_segments"), tmp_path)
    job = TrainJob(manifest=tiny_study.selected_manifest, folds=tiny_study.folds,
                   cache=feature_cache.path, model=ModelChoice(name="ctmam-emodb"),
                   train=TrainConfig(epochs=1, batch_size=64, loss={"kind": "ce"}),
                   fold_indices=(0,))
    data = FoldData(job)
    test = data.splits(0).test
    assert len(test.rows) > test.n_utterances  # several segments per utterance
    summary = train_folds(job).summary()
    assert summary["folds"]["0"]["support"] == test.n_utterances
    assert {name: summary["model_options"][name] for name in ("heads", "lct_blocks")} == \
        {"heads": 1, "lct_blocks": 1}  # the preset's, among every option it was built with
    assert summary["parameters"] == 544_361 - 7 * 1280 - 7 + 4 * 1280 + 4  # 4 classes here


def test_shapes_that_do_not_fit_the_model_name_both_shapes(tiny_study) -> None:
    job = make_job(tiny_study).model_copy(
        update={"model": ModelChoice(name="ctmam")})
    with pytest.raises(UserError, match=r"takes inputs of shape \(1, 26, 57\)"):
        train_folds(job)


@pytest.mark.slow
def test_a_killed_training_process_resumes_to_identical_metrics(tiny_study, tmp_path) -> None:
    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "ser_ray", "train",
                "--manifest", str(tiny_study.selected_manifest), "--folds",
                str(tiny_study.folds), "--cache", str(tiny_study.cache_root), "--recipe",
                "logmel", "--versions", "2,8", "--set", "recipe.duration_s=2", "--augment",
                "noise:snr=20", "--version", "8", "--model", "eca_cnn", "--set", "scale=1",
                "--set", "base_width=4", "--epochs", "6", "--workers", "0", "--out", str(out)]

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoint" / FOLD_FILE.format(2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.is_file() and \
                torch.load(checkpoint, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "summary.json").exists()
    subprocess.run(command(killed), check=True, capture_output=True)
    subprocess.run(command(tmp_path / "whole"), check=True, capture_output=True)
    resumed = json.loads((killed / "summary.json").read_text())
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert resumed["folds"] == whole["folds"] and resumed["pooled"] == whole["pooled"]
    frames = [pd.read_parquet(path / "metrics.parquet") for path in (killed, tmp_path / "whole")]
    assert np.array_equal(frames[0].to_numpy(), frames[1].to_numpy())
