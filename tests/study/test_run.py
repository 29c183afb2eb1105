"""Studies on the shared local Ray cluster: ablations, searches with ASHA, ledger, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import psutil
import pytest

from ser_ray.cli import main
from ser_ray.experiment import (
    CheckpointRow,
    EpochRecord,
    read_ledger,
    read_replays,
    read_study_record,
)
from ser_ray.experiment.ledger import CHECKPOINTS_FILE, read_lines
from ser_ray.study.space import sampled_changes
from ser_ray.study.storage import checkpoint_directory
from ser_ray.study.tune_run import WALL_TIME_FILE
from ser_ray.train.loop import outcome_from_checkpoint
from tests.study.builders import ECA, TINY_CORPUS, VERSION, write_study


def units_by_key(experiment: Path) -> Counter:
    return Counter(row.key for row in read_ledger(experiment) if row.status != "failed")


def test_an_ablation_records_every_unit_once_and_extends(ray_session, study_cache,
                                                         tmp_path: Path) -> None:
    experiment = tmp_path / "experiment"
    first = write_study(tmp_path / "a.yaml", "ablation", budget={"epochs": 2},
                        ablation={"design": "one-factor", "factors": {"eca": ECA}})
    assert main(["search", str(first), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    rows = read_ledger(experiment)
    assert {(row.variant, row.fold) for row in rows} == {
        ("baseline", 0), ("baseline", 1), ("eca=on", 0), ("eca=on", 1)}
    assert all(row.status == "finished" and row.epochs_run == 2 for row in rows)
    assert all(0 <= row.metrics.unweighted_accuracy <= 1 for row in rows)
    parameters = {row.variant: row.parameters for row in rows}
    assert parameters["eca=on"] == parameters["baseline"] + 2 * 7  # kernel-7 ECA on blocks 5, 6
    record = read_study_record(experiment)
    assert record.planned_units == 4 and record.protocol.speaker_independent
    # Each unit records its variant's configuration whole, as resolved once by the driver.
    planned = {variant.name: variant for variant in record.variants}
    for row in rows:
        assert row.configuration == planned[row.variant].configuration
        assert row.config_hash == planned[row.variant].config_hash
    assert planned["eca=on"].configuration.model_options["eca_blocks"] == [5, 6]
    assert planned["baseline"].configuration.model_options["n_frames"] == 201  # 2 s features
    assert (experiment / "report.md").is_file() and (experiment / "progress.md").is_file()
    assert list((experiment / "tune").rglob("events.out.tfevents.*"))
    assert_optuna_mirrors_the_ledger(experiment, "ablation", {"baseline", "eca=on"})

    extended = write_study(tmp_path / "b.yaml", "ablation", budget={"epochs": 2},
                           ablation={"design": "one-factor",
                                     "factors": {"eca": ECA, "version": VERSION}})
    assert main(["search", str(extended), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    counts = units_by_key(experiment)
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert {row.variant for row in read_ledger(experiment)} == {
        "baseline", "eca=on", "version=v2"}
    assert_optuna_mirrors_the_ledger(experiment, "ablation", {"baseline", "eca=on",
                                                              "version=v2"})


def assert_optuna_mirrors_the_ledger(experiment: Path, name: str, variants: set[str]) -> None:
    """One Optuna trial per configuration, in the state the ledger gives it, with the fold
    mean of its objective after every epoch and what a reader needs as user attributes."""
    loaded = optuna.load_study(study_name=name, storage=f"sqlite:///{experiment / 'optuna.db'}")
    by_variant = {trial.user_attrs["variant"]: trial for trial in loaded.trials}
    assert set(by_variant) == variants and len(loaded.trials) == len(variants)
    rows = read_ledger(experiment)
    for variant, trial in by_variant.items():
        own = [row for row in rows if row.variant == variant and row.seed == 0]
        assert trial.state.name == {"finished": "COMPLETE", "pruned": "PRUNED"}[own[0].status]
        assert trial.params == own[0].factors
        epochs = range(1, own[0].epochs_run + 1)
        fold_means = [np.mean([row.history[epoch - 1].test.unweighted_accuracy for row in own])
                      for epoch in epochs]
        assert trial.intermediate_values == pytest.approx(dict(zip(epochs, fold_means)))
        assert trial.user_attrs["units_finished"] == len(own)
        assert trial.user_attrs["selection_rule"] == "last"
        assert set(trial.user_attrs["fold_scores"]) == {str(row.fold) for row in own}
        assert trial.user_attrs["optimistic"].startswith("OPTIMISTIC")


def test_a_search_prunes_with_asha_and_keeps_the_optuna_study(ray_session, study_cache,
                                                               tmp_path: Path) -> None:
    """ASHA stops trials on the objective; Optuna holds each trial in the state the ledger
    records (a stopped one PRUNED, not COMPLETE with its early score), with the fold-mean
    objective of every epoch as its intermediate values."""
    experiment = tmp_path / "search"
    space = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
             "model.options.eca_blocks": {"type": "categorical", "choices": [[], [5, 6]]},
             "model.options.eca_kernel": {"type": "categorical", "choices": [3, 7],
                                          "when": {"model.options.eca_blocks": [[5, 6]]}}}
    # The test UA of 16 utterances a fold: one validation speaker of these tiny folds scores
    # 8 utterances, too coarse for ASHA to tell trials apart.
    study = write_study(tmp_path / "s.yaml", "search", budget={"epochs": 4, "trials": 6},
                        objective={"metric": "unweighted_accuracy"},
                        search={"parameters": space, "n_startup_trials": 2,
                                "scheduler": {"kind": "asha", "grace_period": 1}})
    assert main(["search", str(study), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    rows = read_ledger(experiment)
    trials = {row.variant for row in rows}
    assert len(trials) == 6 and len(rows) == 6 * 2
    statuses = Counter(row.status for row in rows)
    assert statuses["pruned"] >= 2 and statuses["finished"] >= 2
    for row in rows:
        blocks = row.configuration.changes["model.options.eca_blocks"]
        assert ("model.options.eca_kernel" in row.configuration.changes) == (blocks == [5, 6])
    loaded = optuna.load_study(study_name="search",
                               storage=f"sqlite:///{experiment / 'optuna.db'}")
    assert len(loaded.trials) == 6
    states = {"finished": "COMPLETE", "pruned": "PRUNED"}
    for trial in loaded.trials:
        own = [row for row in rows if row.configuration.changes == sampled_changes(trial.params)]
        assert len(own) == 2 and trial.state.name == states[own[0].status]
        # eca_cnn selects its last epoch: the objective after epoch e is the fold mean at e.
        epochs = range(1, own[0].epochs_run + 1)
        fold_means = [np.mean([row.history[epoch - 1].test.unweighted_accuracy for row in own])
                      for epoch in epochs]
        assert trial.intermediate_values == pytest.approx(dict(zip(epochs, fold_means)))
        assert trial.user_attrs["variant"] == own[0].variant
        assert trial.user_attrs["epochs_run"] == own[0].epochs_run
        assert trial.user_attrs["fold_scores"] == pytest.approx(
            {str(row.fold): row.history[-1].test.unweighted_accuracy for row in own})


def test_a_repeated_configuration_replays_without_a_second_ledger_row(ray_session, study_cache,
                                                                       tmp_path: Path) -> None:
    experiment = tmp_path / "replays"
    # Four trials over two configurations: at least two trials repeat one.
    space = {"model.options.eca_blocks": {"type": "categorical", "choices": [[], [5, 6]]}}
    study = write_study(tmp_path / "r.yaml", "replays", budget={"epochs": 2, "trials": 4},
                        resources={"cpus": 1, "max_concurrent_trials": 1},
                        search={"parameters": space, "sampler": "random",
                                "scheduler": {"kind": "asha", "grace_period": 1}})
    assert main(["search", str(study), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    rows, replays = read_ledger(experiment), read_replays(experiment)
    configurations = {row.config_hash for row in rows}
    assert len(rows) == 2 * len(configurations) and set(units_by_key(experiment).values()) == {1}
    assert len(replays) == 4 - len(configurations) >= 2
    recorded = {row.variant for row in rows}
    assert {replay.replay_of for replay in replays} <= recorded
    assert all(replay.config_hash in configurations and replay.error is None
               for replay in replays)
    loaded = optuna.load_study(study_name="replays",
                               storage=f"sqlite:///{experiment / 'optuna.db'}")
    assert len(loaded.trials) == 4

    # Ranked by the search's objective: validation UA, each fold at its selected epoch.
    objective = read_study_record(experiment).objective.metric
    assert objective == "validation_unweighted_accuracy"
    finished = [row for row in rows if row.status == "finished"]
    by_variant: dict[str, list[float]] = {}
    for row in finished:
        by_variant.setdefault(row.variant, []).append(row.objective_score(objective))
    best = max(sorted(by_variant), key=lambda variant: np.mean(by_variant[variant]))
    best_config = next(row.configuration.changes for row in rows if row.variant == best)
    predictor = json.loads((experiment / "best_model" / "predictor.json").read_text())
    assert predictor["model_options"]["eca_blocks"] == best_config["model.options.eca_blocks"]

    # The replays count against the trial budget: a resume has nothing left to run.
    assert main(["resume", str(experiment), "--cache", str(study_cache)]) == 0
    assert read_ledger(experiment) == rows and read_replays(experiment) == replays


def test_the_wall_time_budget_spans_resumes(ray_session, study_cache, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    experiment = tmp_path / "clock"
    study = write_study(tmp_path / "w.yaml", "clock", budget={"epochs": 1, "wall_time_s": 3600},
                        ablation={"design": "one-factor", "factors": {"eca": ECA}})
    started = time.monotonic()
    assert main(["search", str(study), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    used = json.loads((experiment / WALL_TIME_FILE).read_text())["used_s"]
    assert 0 < used < time.monotonic() - started
    rows = read_ledger(experiment)
    assert len(rows) == 4

    # Extended with a budget the first run already used up: nothing more runs.
    extended = write_study(tmp_path / "w2.yaml", "clock",
                           budget={"epochs": 1, "wall_time_s": used / 2},
                           ablation={"design": "one-factor",
                                     "factors": {"eca": ECA, "version": VERSION}})
    assert main(["search", str(extended), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    assert "budget.wall_time_s" in capsys.readouterr().out
    assert read_ledger(experiment) == rows


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_a_killed_driver_resumes_without_rerunning_or_missing_units(ray_session, study_cache,
                                                                    tmp_path: Path) -> None:
    """Recorded units are not run again; a unit in flight continues from its last checkpoint
    (its earlier epochs as they were trained) to the metrics of an uninterrupted run."""
    def study(name: str) -> Path:
        return write_study(tmp_path / f"{name}.yaml", name, budget={"epochs": 3},
                           resources={"cpus": 1, "max_concurrent_trials": 1},
                           ablation={"design": "factorial",
                                     "factors": {"eca": ECA, "version": VERSION}})

    experiment = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "ser_ray", "search", str(study("killed")), "--out",
         str(experiment), "--cache", str(study_cache)], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None \
            and not (read_ledger(experiment)
                     and any(row.epoch < 3 for row in in_flight(experiment))):
        time.sleep(0.05)
    assert process.poll() is None, "the study ended before it could be killed"
    orphans = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for orphan in orphans:  # Ray's agents outlive a SIGKILLed driver
        try:
            orphan.kill()
        except psutil.NoSuchProcess:
            pass
    interrupted = in_flight(experiment)
    assert interrupted, "no unit was in flight with a checkpoint when the driver was killed"
    with checkpoint_directory(str(experiment), interrupted[-1].checkpoint) as directory:
        trained = outcome_from_checkpoint(directory).histories
    before = units_by_key(experiment)
    assert 0 < sum(before.values()) < 8
    assert main(["resume", str(experiment), "--cache", str(study_cache)]) == 0
    after = units_by_key(experiment)
    assert len(after) == 8 and set(after.values()) == {1}
    assert all(after[key] == 1 for key in before)
    calm = tmp_path / "calm"
    assert main(["search", str(study("calm")), "--out", str(calm), "--cache",
                 str(study_cache)]) == 0
    uninterrupted = {row.key: row for row in read_ledger(calm)}
    resumed = [row for row in read_ledger(experiment)
               if (row.config_hash, row.seed) == (interrupted[-1].config_hash,
                                                  interrupted[-1].seed)]
    assert len(resumed) == 2
    for row in resumed:
        continued = [record.model_dump() for record in row.history]
        assert continued[:interrupted[-1].epoch] == [  # not trained again
            EpochRecord.model_validate({name: record[name] for name in EpochRecord.model_fields})
            .model_dump() for record in trained[row.fold]]
        assert [without_time(record) for record in row.history] == \
            [without_time(record) for record in uninterrupted[row.key].history]


def in_flight(experiment: Path) -> list[CheckpointRow]:
    """Checkpoints of units the ledger does not hold yet."""
    recorded = {(row.config_hash, row.seed) for row in read_ledger(experiment)}
    return [row for row in read_lines(experiment / CHECKPOINTS_FILE, CheckpointRow)
            if (row.config_hash, row.seed) not in recorded]


def without_time(record: Any) -> dict:
    return record.model_dump(exclude={"seconds"})


def test_a_configuration_that_keeps_failing_is_recorded_with_its_error(ray_session, study_cache,
                                                                        tmp_path: Path) -> None:
    experiment = tmp_path / "failing"
    one_speaker_sessions = {**TINY_CORPUS, "synthetic": {**TINY_CORPUS["synthetic"],
                                                         "speakers_per_session": 1}}
    validation = {"levels": {
        "none": {},
        "speaker": {"train.validation": "test-fold-speaker",
                    "train.selection": "best-validation"}}}
    study = write_study(tmp_path / "f.yaml", "failing", corpus=one_speaker_sessions,
                        budget={"epochs": 1, "retries": 0},
                        ablation={"design": "one-factor", "factors": {"validation": validation}})
    assert main(["search", str(study), "--out", str(experiment),
                 "--cache", str(study_cache)]) == 0
    rows = read_ledger(experiment)
    failed = [row for row in rows if row.status == "failed"]
    assert {row.variant for row in failed} == {"validation=speaker"}
    assert len(failed) == 2 and all("needs two speakers" in row.error for row in failed)
    assert {row.status for row in rows if row.variant == "baseline"} == {"finished"}
    report = (experiment / "report.md").read_text()
    assert "PARTIAL" in report and "needs two speakers" in report
    # A resume retries the failed units (they are not done) and records them again.
    assert main(["resume", str(experiment), "--cache", str(study_cache)]) == 0
    assert sum(row.status == "failed" for row in read_ledger(experiment)) == 4
