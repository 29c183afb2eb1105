"""Constructed experiment directories: ledger rows and study.json dicts with known numbers.

Scores are given in percent (as the report shows them) and stored as fractions (as the
training stage records them). Each class's recall is the unit's UA ± a fixed offset, so UA is
exactly the value asked for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ser_ray.study.ledger import append_units

LABELS = ("angry", "happy", "neutral", "sad")
RECALL_OFFSETS = (0.05, -0.05, 0.02, -0.02)
SUPPORT = 100
TRACEBACK = ("Traceback (most recent call last):\n  File \"loop.py\", line 1, in fit\n"
             "FloatingPointError: loss is NaN at epoch 2")


def config_hash(variant: str) -> str:
    return f"hash-{variant}"


def unit_row(variant: str, fold: int, seed: int, ua_percent: float | None, *,
             status: str = "finished", config: dict[str, Any] | None = None,
             factors: dict[str, Any] | None = None, epochs_run: int = 3, epochs_planned: int = 3,
             parameters: int = 1000, study: str = "study") -> dict[str, Any]:
    """One ledger row; `ua_percent=None` with status 'failed' gives a failed unit."""
    failed = status == "failed"
    ua = None if failed else ua_percent / 100
    recalls = None if failed else [ua + offset for offset in RECALL_OFFSETS]
    return {
        "study": study, "variant": variant, "config_hash": config_hash(variant),
        "config": config or {}, "factors": factors or {}, "seed": seed, "fold": fold,
        "status": status, "error": TRACEBACK if failed else None, "epochs_run": epochs_run,
        "epochs_planned": epochs_planned, "selection": "last",
        "selected_epoch": None if failed else epochs_run,
        "metrics": None if failed else {"unweighted_accuracy": ua, "weighted_accuracy": ua,
                                        "ua_wa_mean": ua, "macro_f1": ua - 0.01},
        "per_class_recall": ({} if failed else dict(zip(LABELS, recalls))),
        "confusion_matrix": None if failed else confusion(recalls),
        "label_names": list(LABELS),
        "history": [] if failed else history(ua, epochs_run),
        "parameters": parameters, "wall_time_s": 1.0, "trial_id": None,
        "finished_at": "2025-01-01T00:00:00",
    }


def confusion(recalls: Sequence[float]) -> list[list[int]]:
    """SUPPORT utterances per class; the misses all go to the next class."""
    matrix = [[0] * len(recalls) for _ in recalls]
    for index, recall in enumerate(recalls):
        hits = round(recall * SUPPORT)
        matrix[index][index] = hits
        matrix[index][(index + 1) % len(recalls)] = SUPPORT - hits
    return matrix


def history(ua: float, epochs: int) -> list[dict[str, Any]]:
    """Test UA rising linearly to `ua` at the last epoch."""
    records = []
    for epoch in range(1, epochs + 1):
        score = ua * epoch / epochs
        records.append({"epoch": epoch, "train_loss": 1.0 / epoch, "lr": 1e-3,
                        "test": {"unweighted_accuracy": score, "weighted_accuracy": score,
                                 "ua_wa_mean": score, "macro_f1": score, "loss": 1.0},
                        "validation": None})
    return records


def study_description(name: str, design: str, variants: Sequence[str], *, folds: Sequence[int],
                      seeds: Sequence[int], baseline: str | None = None,
                      factors: dict[str, list[Any]] | None = None,
                      variant_factors: dict[str, dict[str, Any]] | None = None,
                      changes: dict[str, dict[str, Any]] | None = None,
                      search: dict[str, Any] | None = None, trials: int | None = None,
                      speaker_independent: bool = False, selection_rule: str = "last",
                      reproduces: dict[str, Any] | None = None,
                      skipped: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """A study.json dict in the studies stage's schema."""
    planned_configs = trials if design == "search" else len(variants)
    return {
        "name": name, "description": f"Constructed {design} study for the report tests.",
        "design": design, "objective": {"metric": "unweighted_accuracy", "mode": "max"},
        "baseline": baseline, "factors": factors or {},
        "variants": [] if design == "search" else [
            {"name": variant, "config_hash": config_hash(variant),
             "factors": (variant_factors or {}).get(variant, {}),
             "changes": (changes or {}).get(variant, {})} for variant in variants],
        "seeds": list(seeds), "folds": list(folds), "epochs": 3,
        "planned_units": planned_configs * len(folds) * len(seeds),
        "search": search,
        "corpus": {"name": "synthetic", "root": "/data/synth", "manifest": "/data/manifest.pq",
                   "selection": {"labels": list(LABELS)}, "utterances": 400, "speakers": 4,
                   "class_counts": {label: SUPPORT for label in LABELS}},
        "protocol": {"kind": "speaker" if speaker_independent else "stratified",
                     "k": None if speaker_independent else 5, "seed": 0,
                     "speaker_independent": speaker_independent,
                     "description": "constructed folds"},
        "model": {"name": "eca_cnn", "options": {"scale": 1}},
        "training": {"epochs": 3, "lr": 0.001, "batch_size": 32},
        "selection_rule": selection_rule,
        "features": [{"cache_key": "0123456789abcdef", "path": "/cache/logmel/0123456789abcdef",
                      "recipe": {"kind": "logmel"}, "augmentations": [], "rows": 3200}],
        "skipped": list(skipped),
        "hardware": {"cpus": 2, "gpus": [], "platform": "Linux-x86_64"},
        "git_commit": "d98d739", "packages": {"numpy": "2.2.0", "optuna": "5.0.0"},
        "reproduces": reproduces, "started_at": "2025-01-01T00:00:00",
    }


def write_experiment(directory: Path, study: dict[str, Any],
                     rows: Sequence[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "study.json").write_text(json.dumps(study, indent=2))
    append_units(directory, rows)
    return directory
