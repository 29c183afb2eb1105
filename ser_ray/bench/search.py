"""`ser-ray bench search`: search strategies compared on a tabulated benchmark, over seeds.

The recorded grid (`search_table`: 64 eca_cnn configurations × 5 folds × 12 epochs, every
score kept) is replayed for each strategy and seed instead of trained again, as HPO research
compares schedulers (LCBench, HPOBench, YAHPO Gym; Syne Tune's simulator backend). ser-ray's
strategies run through the live searcher and scheduler objects (`study.tune_replay`), so a
replayed decision is the one a study would make; Optuna alone (in-process, the peer a user
would pick instead) runs TPE with its own pruners: `MedianPruner` and `HyperbandPruner` on
the fold mean per epoch, `WilcoxonPruner` over folds trained one after the other.

Every strategy gets the same trial budget, one trial at a time; a configuration proposed
again costs nothing (ser-ray replays its recorded epochs through the scheduler; Optuna alone
is told its first run's reports and end again). Per seed, a strategy's pick is its best
configuration that trained every epoch of every fold, and it is scored by that
configuration's final fold-mean UA in the table:
gap_pp = 100 × (the grid's best − the pick's), fraction = fold-epochs trained / the grid's.

`--live` runs one strategy through real Ray Tune on the grid's study, one trial at a time,
and checks its decisions against the replay of the same seed.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tabulate import tabulate
from tqdm import tqdm

from ser_ray.bench.search_table import GRID_STUDY, GRID_TABLE, CurveTable, configuration_key
from ser_ray.errors import UserError
from ser_ray.study.schema import StudyConfig, load_study
from ser_ray.study.space import DefineByRun, sampled_changes

# Rungs for ASHA and racing (epochs 1, 3 and 9 of 12), and Hyperband's first bracket.
GRACE_PERIOD = 1
REDUCTION_FACTOR = 3.0
RACING = {"kind": "racing", "grace_period": GRACE_PERIOD,
          "reduction_factor": REDUCTION_FACTOR, "alpha": 0.05}
ASHA = {"kind": "asha", "grace_period": GRACE_PERIOD, "reduction_factor": REDUCTION_FACTOR}
# ser-ray's strategies as study overrides (sampler, scheduler); the seed is the sampler's.
SER_RAY_STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"search.sampler": "random", "search.scheduler": {"kind": "none"}},
    "tpe": {"search.sampler": "tpe", "search.scheduler": {"kind": "none"}},
    "tpe+asha": {"search.sampler": "tpe", "search.scheduler": ASHA},
    "tpe+racing": {"search.sampler": "tpe", "search.scheduler": RACING},
    "tpe+racing+asha": {"search.sampler": "tpe", "search.scheduler": {**RACING, "asha": True}},
}
OPTUNA_PRUNERS = ("median", "hyperband", "wilcoxon")


@dataclass(frozen=True)
class Outcome:
    """One strategy at one seed: its pick's final fold-mean objective (None: nothing trained
    to the end) and the fold-epochs it trained."""

    pick: float | None
    fold_epochs: int


def strategy_study(strategy: str, seed: int, trials: int,
                   study_path: Path = GRID_STUDY, **overrides: Any) -> StudyConfig:
    """The grid's study turned into one of ser-ray's strategies at one seed."""
    return load_study(study_path, {**SER_RAY_STRATEGIES[strategy],
                                   "search.sampler_seed": seed, "budget.trials": trials,
                                   "name": f"bench-{strategy.replace('+', '-')}", **overrides})


def run_ser_ray(table: CurveTable, strategy: str, seed: int, trials: int) -> Outcome:
    from ser_ray.study.tune_replay import replay_search

    replayed = replay_search(strategy_study(strategy, seed, trials), table.curve, trials)
    finished = [configuration_key(trial.changes) for trial in replayed if trial.complete]
    return Outcome(pick=_best(table, finished),
                   fold_epochs=sum(trial.epochs for trial in replayed if trial.trained)
                   * len(table.folds))


def run_optuna(table: CurveTable, pruner_name: str, seed: int, trials: int) -> Outcome:
    """TPE with one of Optuna's pruners, in-process: the fold mean reported per epoch
    (median, hyperband), or each fold's final score reported per fold, folds in a per-trial
    random order (wilcoxon, as Optuna's documentation runs it)."""
    study = load_study(GRID_STUDY)
    assert study.search is not None
    make_pruner = {"median": lambda: optuna.pruners.MedianPruner(),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(
                  min_resource=GRACE_PERIOD, max_resource=table.epochs,
                  reduction_factor=int(REDUCTION_FACTOR)),
              # Optuna's default threshold (0.1): the pruner asks about at most four folds,
              # whose smallest p is 1/16, and prunes on p < threshold.
              "wilcoxon": optuna.pruners.WilcoxonPruner,
              }[pruner_name]
    with warnings.catch_warnings():  # WilcoxonPruner is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        pruner = make_pruner()
    sampler = optuna.samplers.TPESampler(seed=seed,
                                         n_startup_trials=study.search.n_startup_trials)
    # Named: Hyperband assigns brackets by a hash of the study's name and the trial number.
    optuna_study = optuna.create_study(study_name=f"bench-{pruner_name}-{seed}",
                                       direction="maximize" if table.mode == "max"
                                       else "minimize", sampler=sampler, pruner=pruner)
    space = DefineByRun(study.search.parameters)
    evaluate = _by_fold if pruner_name == "wilcoxon" else _by_epoch
    memo: dict[str, tuple[list[tuple[float, int]], float | None]] = {}
    fold_epochs, finished = 0, []
    for number in range(trials):
        trial = optuna_study.ask()
        space(trial)
        key = configuration_key(sampled_changes(trial.params))
        if key in memo:
            reports, value = memo[key]
            for report_value, step in reports:
                trial.report(report_value, step)
        else:
            reports, value = evaluate(table, key, trial, np.random.default_rng([seed, number]))
            memo[key] = reports, value
            fold_epochs += len(reports) * (table.epochs if pruner_name == "wilcoxon"
                                           else len(table.folds))
        if value is None:
            optuna_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            optuna_study.tell(trial, value)
            finished.append(key)
    return Outcome(pick=_best(table, finished), fold_epochs=fold_epochs)


def _by_epoch(table: CurveTable, key: str, trial: optuna.Trial,
              rng: np.random.Generator) -> tuple[list[tuple[float, int]], float | None]:
    reports = []
    for epoch, folds in enumerate(table.curves[key], start=1):
        mean = float(np.mean([folds[fold] for fold in table.folds]))
        reports.append((mean, epoch))
        trial.report(mean, epoch)
        if epoch < table.epochs and trial.should_prune():
            return reports, None
    return reports, reports[-1][0]


def _by_fold(table: CurveTable, key: str, trial: optuna.Trial,
             rng: np.random.Generator) -> tuple[list[tuple[float, int]], float | None]:
    reports = []
    for fold in rng.permutation(list(table.folds)):
        score = table.curves[key][-1][str(fold)]
        reports.append((score, int(fold)))
        trial.report(score, int(fold))
        if len(reports) < len(table.folds) and trial.should_prune():
            return reports, None
    return reports, float(np.mean([score for score, _ in reports]))


def _best(table: CurveTable, finished: list[str]) -> float | None:
    if not finished:
        return None
    sign = 1.0 if table.mode == "max" else -1.0
    return max(sign * table.final(key) for key in finished) * sign


@dataclass(frozen=True)
class Strategy:
    name: str
    run: Callable[[int], Outcome]


def strategies(table: CurveTable, trials: int) -> list[Strategy]:
    def ser_ray(name: str) -> Callable[[int], Outcome]:
        return lambda seed: run_ser_ray(table, name, seed, trials)

    def optuna_alone(pruner: str) -> Callable[[int], Outcome]:
        return lambda seed: run_optuna(table, pruner, seed, trials)

    return ([Strategy(name, ser_ray(name)) for name in SER_RAY_STRATEGIES]
            + [Strategy(f"optuna tpe+{pruner}", optuna_alone(pruner))
               for pruner in OPTUNA_PRUNERS])


def summarize(table: CurveTable, outcomes: list[Outcome]) -> dict[str, Any]:
    """Median and IQR over seeds of the gap (pp) and the fraction of the grid's fold-epochs."""
    sign = 1.0 if table.mode == "max" else -1.0
    gaps = np.array([100 * sign * (table.best - outcome.pick) if outcome.pick is not None
                     else np.nan for outcome in outcomes])
    fractions = np.array([outcome.fold_epochs / table.fold_epochs for outcome in outcomes])
    return {"gap_pp_median": _rounded(np.nanmedian(gaps), 2),
            "gap_pp_iqr": [_rounded(value, 2) for value in np.nanpercentile(gaps, [25, 75])],
            "fraction_median": _rounded(np.median(fractions), 4),
            "fraction_iqr": [_rounded(value, 4) for value in np.percentile(fractions, [25, 75])],
            "within_1pp": int(np.sum(gaps <= 1.0)), "no_pick": int(np.sum(np.isnan(gaps))),
            "seeds": len(outcomes)}


def _rounded(value: float, digits: int) -> float:
    return round(float(value), digits)


def bench_search(trials: Sequence[int] = (12,), seeds: int = 10) -> dict[str, Any]:
    """Replay every strategy for `seeds` seeds at each trial budget; the first budget is the
    headline (`strategies` in the JSON line), every one is under `by_budget`."""
    table = CurveTable.read()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"table: {table.study}, {len(table.curves)} configurations × {len(table.folds)} "
          f"folds × {table.epochs} epochs = {table.fold_epochs} fold-epochs; best fold-mean "
          f"{table.metric} {table.best:.4f}; {seeds} seeds per strategy")
    by_budget = {budget: _replay_budget(table, budget, seeds) for budget in trials}
    figures = {"benchmark": "search", "table": table.study, "grid_best": round(table.best, 4),
               "grid_fold_epochs": table.fold_epochs, "trials": trials[0], "seeds": seeds,
               "strategies": by_budget[trials[0]],
               "by_budget": {str(budget): results for budget, results in by_budget.items()}}
    print(json.dumps(figures))
    return figures


def _replay_budget(table: CurveTable, trials: int, seeds: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {
        "grid": {"gap_pp_median": 0.0, "gap_pp_iqr": [0.0, 0.0], "fraction_median": 1.0,
                 "fraction_iqr": [1.0, 1.0], "within_1pp": seeds, "no_pick": 0,
                 "seeds": seeds}}
    every = strategies(table, trials)
    with tqdm(total=len(every) * seeds, desc=f"replay, {trials} trials", unit="run") as progress:
        for strategy in every:
            outcomes = []
            for seed in range(seeds):
                outcomes.append(strategy.run(seed))
                progress.update()
            results[strategy.name] = summarize(table, outcomes)
    print(f"\n{trials} trials per search (the grid: all {len(table.curves)})")
    print(tabulate([(name, figures["gap_pp_median"], _interval(figures["gap_pp_iqr"]),
                     f"{figures['fraction_median']:.1%}",
                     _interval([f"{value:.1%}" for value in figures["fraction_iqr"]]),
                     f"{figures['within_1pp']}/{seeds}")
                    for name, figures in results.items()],
                   headers=["strategy", "gap pp (median)", "gap IQR", "fold-epochs (median)",
                            "fold-epochs IQR", "seeds within 1 pp"]))
    return results


def _interval(bounds: list[Any]) -> str:
    return f"{bounds[0]} – {bounds[1]}"


def record(out: Path | None = None, cache: Path | None = None) -> None:
    from ser_ray.bench.search_table import record_table

    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-record-") as temp:
        path = record_table(out or Path(temp) / "grid", cache)
    table = CurveTable.read(path)
    print(f"recorded {path}: {len(table.curves)} configurations × {len(table.folds)} folds × "
          f"{table.epochs} epochs, best fold-mean {table.metric} {table.best:.4f}, "
          f"{table.seconds_per_fold_epoch:.2f} s per fold-epoch")


def live_check(strategy: str = "tpe+racing", seed: int = 0, trials: int = 12,
               out: Path | None = None, cache: Path | None = None,
               study_path: Path = GRID_STUDY,
               table_path: Path = GRID_TABLE) -> dict[str, Any]:
    """Run `strategy` at `seed` through real Ray Tune on the grid's study, one trial at a
    time (so that the order of results is the replay's), and compare each trial's
    configuration, epochs and end with the replay of the same seed, and the scores it
    trained with the table's."""
    if strategy not in SER_RAY_STRATEGIES:
        raise UserError(f"--strategy {strategy!r}: a live check runs one of "
                        f"{', '.join(SER_RAY_STRATEGIES)}")
    table = CurveTable.read(table_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # One trial at a time: the order of results, and so every decision, is the replay's.
    study = strategy_study(strategy, seed, trials, study_path,
                           **{"resources.max_concurrent_trials": 1})
    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-live-") as temp:
        experiment_dir = out or Path(temp) / "live"
        _run_live(study, study_path, experiment_dir, cache)
        live, trained, scores = live_trials(study, experiment_dir)
    from ser_ray.study.tune_replay import replay_search

    replay = replay_search(study, table.curve, trials)
    # A replayed trial ends COMPLETE (every epoch) or PRUNED, as the live searcher tells Optuna.
    replayed = [(trial.changes, trial.epochs, "COMPLETE" if trial.complete else "PRUNED")
                for trial in replay]
    differing = [number for number, (a, b) in enumerate(zip(live, replayed)) if a != b]
    mismatched_scores = sum(table.curve(changes)[epoch - 1][fold] != score
                            for changes, fold, epoch, score in scores)
    replay_fold_epochs = sum(trial.epochs for trial in replay if trial.trained) \
        * len(table.folds)
    figures = {"benchmark": "search-live", "strategy": strategy, "seed": seed,
               "trials": len(live),
               "decisions_equal": not differing and len(live) == len(replayed),
               "differing_trials": differing,
               "pruned_trials": sum(state == "PRUNED" for _, _, state in live),
               "live_fold_epochs": trained,
               "replay_fold_epochs": replay_fold_epochs,
               "scores_compared": len(scores), "scores_differing_from_table": mismatched_scores}
    for number, (decision, expected) in enumerate(zip(live, replayed)):
        changes, epochs, state = decision
        mark = "" if decision == expected else f"   ≠ replay: {expected[1]} epochs, {expected[2]}"
        print(f"trial {number:>2}: {configuration_key(changes)}  {epochs} epochs, {state}{mark}")
    print(f"live decisions {'equal' if figures['decisions_equal'] else 'differ from'} the "
          f"replay's ({len(differing)} of {len(live)} trials differ); {trained} fold-epochs "
          f"trained live, {replay_fold_epochs} in the replay; {mismatched_scores} of "
          f"{len(scores)} scores differ from the table's")
    print(json.dumps(figures))
    return figures


def _run_live(study: StudyConfig, study_path: Path, experiment_dir: Path,
              cache_root: Path | None) -> None:
    from ser_ray.study.run import run_study

    if experiment_dir.exists() and any(experiment_dir.iterdir()):
        raise UserError(f"{experiment_dir} is not empty; a live check starts from nothing")
    run_study(study_path, experiment_dir, cache_root, study=study)


def live_trials(study: StudyConfig, experiment_dir: Path
                ) -> tuple[list[tuple[dict[str, Any], int, str]], int,
                           list[tuple[dict[str, Any], str, int, float]]]:
    """What a live search decided, read from its Optuna storage (each trial's configuration,
    last epoch and state, by trial number), the fold-epochs its ledger trained, and every
    (changes, fold, epoch, score) it trained."""
    from ser_ray.experiment import OPTUNA_FILE, read_ledger, unit_rows
    from ser_ray.experiment.metrics import objective_split

    storage = optuna.load_study(study_name=study.name,
                                storage=f"sqlite:///{experiment_dir / OPTUNA_FILE}")
    decisions = [(sampled_changes(trial.params), max(trial.intermediate_values, default=0),
                  trial.state.name)
                 for trial in sorted(storage.trials, key=lambda trial: trial.number)]
    units = unit_rows(read_ledger(experiment_dir))
    _, name = objective_split(study.objective.metric)
    scores = [(unit.changes, str(unit.fold), record.epoch, record.test.score(name))
              for unit in units for record in unit.history]
    return decisions, sum(unit.epochs_run for unit in units), scores
