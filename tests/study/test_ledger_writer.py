"""The driver's ledger writer on its own (no Ray): trial events as Tune hands them over
become ledger rows, replays and trial names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ser_ray.experiment import read_ledger, read_replays
from ser_ray.study.ledger_writer import LedgerWriter
from ser_ray.study.units import REPLAY_KEY, TrialPlan, error_file
from tests.experiment.builders import configuration, scores

EPOCHS = 3


def plan(variant: str | None = None, selection: str = "last", folds=(0, 1)) -> TrialPlan:
    return TrialPlan(variant=variant, configuration=configuration(selection=selection),
                     config_hash=f"hash-{variant}", seed=0, folds=folds)


def epoch(fold: int, number: int, ua: float) -> dict[str, Any]:
    """One fold's record of one epoch, as the training loop reports it."""
    return {"fold": fold, "epoch": number, "train_loss": 1.0 / number, "lr": 1e-3,
            "seconds": 0.5, "train_rows": 10, "finished_at": 0.0,
            "test": scores(ua).model_dump(mode="json"), "validation": None}


def report(writer: LedgerWriter, trial_id: str, uas: list[float], folds=(0, 1),
           **extra: Any) -> None:
    for number, ua in enumerate(uas, start=1):
        writer.reported(trial_id, {"fold_records": [epoch(fold, number, ua) for fold in folds],
                                   "parameters": 1234, **extra})


@pytest.fixture
def writer(tmp_path: Path) -> LedgerWriter:
    return LedgerWriter(tmp_path, "study", "unweighted_accuracy", EPOCHS, planned=8,
                        storage=str(tmp_path))


def test_finished_and_pruned_trials_record_their_units_once(writer: LedgerWriter,
                                                            tmp_path: Path) -> None:
    best_test = plan("a", selection="best-test")
    writer.started("t1", best_test)
    report(writer, "t1", [0.5, 0.7, 0.6])
    writer.ended("t1", best_test, error=None, checkpoint=str(tmp_path / "tune" / "ckpt"))
    writer.ended("t1", best_test, error="called again", checkpoint=None)  # ignored
    pruned = plan("b")
    writer.started("t2", pruned)
    report(writer, "t2", [0.4])
    writer.ended("t2", pruned, error=None, checkpoint=None)
    rows = read_ledger(tmp_path)
    assert [(row.variant, row.fold, row.status) for row in rows] == [
        ("a", 0, "finished"), ("a", 1, "finished"), ("b", 0, "pruned"), ("b", 1, "pruned")]
    assert rows[0].selected_epoch == 2  # the configuration's rule: best test epoch
    assert rows[0].metrics.unweighted_accuracy == pytest.approx(0.7)
    assert rows[0].checkpoint == "tune/ckpt" and rows[2].checkpoint is None
    assert rows[0].configuration == best_test.configuration and rows[0].parameters == 1234
    assert rows[2].selected_epoch == 1 and rows[2].epochs_run == 1
    assert writer.recorded == 4 and writer.written == 4


def test_a_failed_trial_records_its_traceback_and_a_silent_end_says_why(
        writer: LedgerWriter, tmp_path: Path) -> None:
    failing = plan("c")
    error_file(tmp_path, "t3").parent.mkdir(parents=True)
    error_file(tmp_path, "t3").write_text("Traceback ...\nValueError: bad")
    writer.started("t3", failing)
    report(writer, "t3", [0.3])
    writer.ended("t3", failing, error=writer.trial_error("t3"), checkpoint=None)
    silent = plan("d")
    writer.ended("t4", silent, error=None, checkpoint=None)
    rows = read_ledger(tmp_path)
    assert {row.variant: row.status for row in rows} == {"c": "failed", "d": "failed"}
    assert rows[0].error.endswith("ValueError: bad") and rows[0].epochs_run == 1
    assert "ended before it finished an epoch" in rows[-1].error
    assert "no traceback reached the driver" in writer.trial_error("t9")


def test_search_trials_are_named_in_turn_and_a_replay_adds_no_row(writer: LedgerWriter,
                                                                  tmp_path: Path) -> None:
    first, second = plan(), plan()
    writer.started("x", first)
    writer.started("y", second)
    writer.started("x", first)  # a retried trial keeps its name
    assert (writer.names["x"], writer.names["y"]) == ("trial_0001", "trial_0002")
    report(writer, "y", [0.5, 0.6, 0.7], **{REPLAY_KEY: "trial_0001"})
    writer.ended("y", second, error=None, checkpoint=None)
    assert read_ledger(tmp_path) == []
    (replay,) = read_replays(tmp_path)
    assert (replay.variant, replay.replay_of, replay.error) == ("trial_0002", "trial_0001", None)


def test_an_ablation_variant_is_one_optuna_trial_over_its_seeds(tmp_path: Path) -> None:
    """The variant's Optuna trial opens with its first Tune trial, takes the lowest seed's
    fold-mean objective after each epoch, and ends with its last seed with the score the
    study's ranking gives it (a failed unit counted, not hiding the finished ones); a variant
    trained again later gets a new trial that names the one it supersedes; a trial the run
    leaves open is FAIL when the run is over."""
    import optuna

    from ser_ray.experiment import write_study_record
    from ser_ray.experiment.study_record import Objective
    from ser_ray.study.optuna_trials import OptunaTrials
    from tests.experiment.builders import study_record

    write_study_record(tmp_path, study_record(
        "ablation", "one-factor", ["a", "b"], folds=(0, 1), seeds=(0, 1), baseline="a",
        factors={"eca": ["off", "on"]}, variant_factors={"a": {"eca": "off"},
                                                          "b": {"eca": "on"}}))
    plans = [TrialPlan(variant=variant, factors={"eca": level},
                       configuration=configuration(), config_hash=f"hash-{variant}",
                       seed=seed, folds=(0, 1))
             for variant, level in (("a", "off"), ("b", "on")) for seed in (0, 1)]
    trials = OptunaTrials(tmp_path, tmp_path / "optuna.db", "ablation", Objective(), EPOCHS,
                          plans, {"eca": ["off", "on"]})
    writer = LedgerWriter(tmp_path, "ablation", "unweighted_accuracy", EPOCHS, planned=8,
                          storage=str(tmp_path), optuna_trials=trials)
    uas = {("a", 0): [0.5, 0.6, 0.7], ("a", 1): [0.4, 0.5, 0.9],
           ("b", 0): [0.3, 0.4, 0.5], ("b", 1): [0.2, 0.3]}
    for (variant, seed), values in uas.items():
        own = next(p for p in plans if p.variant == variant and p.seed == seed)
        writer.started(f"{variant}{seed}", own)
        report(writer, f"{variant}{seed}", values)
        stored = optuna.load_study(study_name="ablation", storage=f"sqlite:///{tmp_path}/optuna.db")
        assert len(stored.trials) == (1 if variant == "a" else 2)
        assert stored.trials[-1].state.name == "RUNNING"
        error = "Traceback ...\nMemoryError" if (variant, seed) == ("b", 1) else None
        writer.ended(f"{variant}{seed}", own, error=error, checkpoint=None)
    stored = optuna.load_study(study_name="ablation", storage=f"sqlite:///{tmp_path}/optuna.db")
    a, b = stored.trials
    assert (a.state.name, b.state.name) == ("COMPLETE", "COMPLETE")
    assert (a.params, b.params) == ({"eca": "off"}, {"eca": "on"})
    assert a.value == pytest.approx(0.8)  # mean over both seeds' finished units
    assert b.value == pytest.approx(0.5)  # seed 0's units; seed 1's failed
    assert a.intermediate_values == pytest.approx({1: 0.5, 2: 0.6, 3: 0.7})  # seed 0's
    assert a.user_attrs["fold_scores"] == pytest.approx({"0": 0.8, "1": 0.8})
    assert a.user_attrs["units_finished"] == 4 and b.user_attrs["units_finished"] == 2
    assert (a.user_attrs["units_failed"], b.user_attrs["units_failed"]) == (0, 2)
    assert a.user_attrs["optimistic"].startswith("OPTIMISTIC")

    retry = next(p for p in plans if p.variant == "b" and p.seed == 1)
    again = OptunaTrials(tmp_path, tmp_path / "optuna.db", "ablation", Objective(), EPOCHS,
                         [retry], {"eca": ["off", "on"]})
    again.started("b1-again", retry, None)
    again.close()
    stored = optuna.load_study(study_name="ablation", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert stored.trials[-1].user_attrs["supersedes"] == [b.number]
    assert stored.trials[-1].state.name == "FAIL"
