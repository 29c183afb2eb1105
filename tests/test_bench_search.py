"""`ser-ray bench search`: the replay of search strategies on recorded learning curves, the
committed table, and (slow, on Ray) a live search whose decisions equal its replay's."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from ser_ray.bench import search
from ser_ray.bench.search_table import GRID_TABLE, CurveTable, configuration_key, record_table
from ser_ray.cli import main
from ser_ray.study.tune_replay import replay_search
from tests.study.builders import write_study

FOLDS = ("0", "1", "2", "3", "4")


def made_up_curve(changes: dict) -> tuple[dict[str, float], ...]:
    """Twelve epochs of five folds, fixed per configuration: a level drawn from the
    configuration, rising with the epochs, with per-fold noise."""
    rng = np.random.default_rng(zlib.crc32(configuration_key(changes).encode()))
    level = rng.uniform(0.3, 0.7)
    return tuple({fold: float(level * (1 - 0.5 ** epoch) + rng.normal(0, 0.02))
                  for fold in FOLDS} for epoch in range(1, 13))


def test_a_replay_is_determined_by_its_seed_and_the_scheduler_saves_epochs() -> None:
    def replay(strategy: str, seed: int) -> list:
        return replay_search(search.strategy_study(strategy, seed, 16), made_up_curve, 16)

    first = replay("tpe+racing+asha", 3)
    assert first == replay("tpe+racing+asha", 3)
    assert first != replay("tpe+racing+asha", 4)
    assert len(first) == 16
    # The first trial has no rival at any rung and runs to the end.
    assert first[0].complete and first[0].epochs == 12
    stopped = [trial for trial in first if not trial.complete]
    assert stopped and all(trial.epochs in (1, 3, 9) for trial in stopped if trial.trained)
    unpruned = replay("tpe", 3)
    assert all(trial.complete for trial in unpruned)
    assert sum(trial.epochs for trial in first if trial.trained) < \
        sum(trial.epochs for trial in unpruned if trial.trained)


def test_a_repeated_configuration_trains_nothing_and_replays_its_recorded_epochs(
        tmp_path: Path) -> None:
    space = {"model.options.eca_blocks": {"type": "categorical", "choices": [[], [5, 6]]}}
    study_path = write_study(tmp_path / "two.yaml", "two", budget={"epochs": 12, "trials": 6},
                             search={"sampler": "tpe", "parameters": space,
                                     "n_startup_trials": 2})
    study = search.strategy_study("tpe+racing+asha", 0, 6, study_path)
    replayed = replay_search(study, made_up_curve, 6)
    assert sum(trial.trained for trial in replayed) == 2
    first_run = {}
    for trial in replayed:
        key = configuration_key(trial.changes)
        if trial.trained:
            first_run[key] = trial.epochs
        else:  # what was recorded, unless the scheduler stops the replay sooner, as live
            assert trial.epochs <= first_run[key]
    assert any(not trial.trained and trial.epochs == first_run[configuration_key(trial.changes)]
               for trial in replayed)


def test_summaries_are_medians_and_quartiles_over_seeds() -> None:
    table = CurveTable(study="t", metric="unweighted_accuracy", mode="max", epochs=2,
                       folds=("0", "1"), seconds_per_fold_epoch=1.0,
                       curves={"a": ({"0": 0.5, "1": 0.5}, {"0": 0.6, "1": 0.8}),
                               "b": ({"0": 0.4, "1": 0.4}, {"0": 0.6, "1": 0.6})})
    assert table.best == pytest.approx(0.7) and table.fold_epochs == 8
    outcomes = [search.Outcome(pick=0.7, fold_epochs=2), search.Outcome(pick=0.6, fold_epochs=4),
                search.Outcome(pick=None, fold_epochs=8)]
    summary = search.summarize(table, outcomes)
    assert summary["gap_pp_median"] == pytest.approx(5.0)
    assert summary["gap_pp_iqr"] == pytest.approx([2.5, 7.5])
    assert summary["fraction_median"] == 0.5 and summary["fraction_iqr"] == [0.375, 0.75]
    assert (summary["within_1pp"], summary["no_pick"], summary["seeds"]) == (1, 1, 3)


@pytest.mark.skipif(not GRID_TABLE.is_file(), reason="no recorded table")
def test_the_benchmark_replays_the_committed_table(capsys) -> None:
    table = CurveTable.read()
    assert (len(table.curves), len(table.folds), table.epochs) == (64, 5, 12)
    assert main(["bench", "search", "--trials", "8", "--seeds", "2"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = {"grid", *search.SER_RAY_STRATEGIES,
             *(f"optuna tpe+{pruner}" for pruner in search.OPTUNA_PRUNERS)}
    assert set(figures["strategies"]) == names
    for summary in figures["strategies"].values():
        assert summary["seeds"] == 2
        assert 0 < summary["fraction_median"] <= 1
        assert summary["gap_pp_median"] >= 0


@pytest.mark.slow
@pytest.mark.ray
def test_live_searches_decide_as_their_replays(ray_session, tmp_path: Path,
                                                monkeypatch) -> None:
    """A tiny grid recorded for real, then TPE + ASHA and TPE + racing through real Ray Tune
    on the same space: every trial's configuration, epochs and end equal the replay's, and
    the scores it trained equal the table's (the same rows in the same order train the same
    numbers on CPU)."""
    space = {"model.options.eca_blocks": {"type": "categorical", "choices": [[], [5, 6]]},
             "train.lr": {"type": "categorical", "choices": [0.001, 0.01]}}
    # Three folds of 32 utterances: enough for the configurations to part from chance.
    corpus = {"reader": "iemocap", "synthetic": {"sessions": 3, "speakers_per_session": 2,
                                                 "utterances_per_speaker": 16}}
    grid = write_study(tmp_path / "grid.yaml", "grid", corpus=corpus, budget={"epochs": 3},
                       objective={"metric": "unweighted_accuracy"},
                       train={"test_version": 8, "batch_size": 8, "loss": {"kind": "ce"},
                              "selection": "last"},
                       search={"sampler": "grid", "parameters": space,
                               "scheduler": {"kind": "none"}})
    cache = tmp_path / "cache"
    table_path = record_table(tmp_path / "record", cache, grid, tmp_path / "grid.parquet")
    assert len(CurveTable.read(table_path).curves) == 4
    # With three folds no p falls below 1/8: a lenient race, so that it stops trials here.
    monkeypatch.setitem(search.SER_RAY_STRATEGIES, "tpe+racing", {
        "search.sampler": "tpe", "search.scheduler": {
            "kind": "racing", "grace_period": 1, "reduction_factor": 2, "alpha": 0.5,
            "min_folds_worse": 1}})
    for strategy in ("tpe+asha", "tpe+racing"):
        figures = search.live_check(strategy, 1, 4, tmp_path / strategy, cache,
                                    study_path=grid, table_path=table_path)
        assert figures["decisions_equal"], figures
        assert figures["pruned_trials"] >= 1  # the scheduler decided something
        assert figures["scores_differing_from_table"] == 0 and figures["scores_compared"] > 0
        assert figures["live_fold_epochs"] == figures["replay_fold_epochs"]
