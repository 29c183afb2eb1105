"""`ser-ray bench search`: what TPE + ASHA finds for a fraction of a full grid's epochs.

The grid study `search_spaces/bench/grid16.yaml` runs whole (every configuration to the last
epoch), then the same space runs as a TPE search with ASHA pruning under a trial budget. Both
use the same corpus, folds and feature cache. Reported: each run's best fold-mean UA over
finished configurations, and the search's fold-epochs as a fraction of the grid's.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ser_ray.experiment import ledger_frame, read_ledger, trials_run
from ser_ray.study.schema import load_study

GRID_STUDY = Path(__file__).resolve().parents[2] / "search_spaces" / "bench" / "grid16.yaml"


def search_overrides(trials: int, grace_period: int, reduction_factor: float) -> dict[str, Any]:
    return {"name": "bench-tpe-asha", "search.sampler": "tpe", "search.n_startup_trials": 4,
            "search.scheduler": {"kind": "asha", "grace_period": grace_period,
                                 "reduction_factor": reduction_factor},
            "budget.trials": trials}


def best_and_epochs(experiment_dir: Path) -> tuple[float, int, int, int]:
    """(best fold-mean UA of a finished configuration, fold-epochs trained, trials,
    distinct configurations). A trial that repeated a recorded configuration trained none and
    wrote no ledger row, but counts as a trial."""
    rows = read_ledger(experiment_dir)
    frame = ledger_frame(rows)
    finished = frame[frame["status"] == "finished"]
    best = float(finished.groupby("config_hash")["unweighted_accuracy"].mean().max())
    trained = sum(row.epochs_run for row in rows)
    return (best, trained, len(trials_run(experiment_dir, rows)),
            int(frame["config_hash"].nunique()))


def bench_search(trials: int = 8, grace_period: int = 1,
                 reduction_factor: float = 3.0) -> dict[str, Any]:
    from ser_ray.study.run import run_study

    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-search-") as temp:
        base = Path(temp)
        grid = load_study(GRID_STUDY)
        run_study(GRID_STUDY, base / "grid", base / "cache", study=grid)
        search = load_study(GRID_STUDY, search_overrides(trials, grace_period,
                                                         reduction_factor))
        run_study(GRID_STUDY, base / "search", base / "cache", study=search)
        grid_best, grid_epochs, grid_configs, _ = best_and_epochs(base / "grid")
        search_best, search_epochs, search_trials, search_configs = \
            best_and_epochs(base / "search")
    figures = {
        "grid_configurations": grid_configs, "grid_best_ua": round(grid_best, 4),
        "grid_fold_epochs": grid_epochs, "search_trials": search_trials,
        "search_configurations": search_configs,
        "search_best_ua": round(search_best, 4), "search_fold_epochs": search_epochs,
        "epoch_fraction": round(search_epochs / grid_epochs, 3),
        "ua_gap_pp": round(100 * (grid_best - search_best), 2),
    }
    print(f"grid   : {grid_configs} configurations, best UA {grid_best:.4f}, "
          f"{grid_epochs} fold-epochs trained")
    print(f"search : {search_trials} TPE trials ({search_configs} distinct configurations) "
          f"with ASHA, best UA {search_best:.4f} "
          f"({figures['ua_gap_pp']:+.2f} pp below the grid's best), {search_epochs} fold-epochs "
          f"trained = {figures['epoch_fraction']:.0%} of the grid's")
    print(json.dumps(figures))
    return figures
