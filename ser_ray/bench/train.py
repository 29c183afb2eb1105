"""`ser-ray bench train`: the cost of Ray Train over the plain k-fold loop, measured in one run.

One configuration (a narrow eca_cnn on log-Mel features of a generated corpus, every fold,
checkpointed each epoch in both paths) is trained twice: by `train_folds` in this process and
by `train_folds_on_ray` with one TorchTrainer worker. The steady-state epoch time of each
(median over epochs 2..E, from the fold records' end times) gives the per-epoch overhead
ratio; the Ray run's time before its first epoch ended, less the plain loop's first epoch,
is its fixed start-up toll, reported apart. The two paths alternate for several rounds and
the medians run over every round: on a small shared machine one round's ratio swings by
±15 % with whatever else runs, so a single pair of runs says little.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ser_ray.corpus import Selection
from ser_ray.errors import UserError
from ser_ray.experiment import paper_training
from ser_ray.folds import FoldProtocol
from ser_ray.study.prepare import manifest_and_folds
from ser_ray.synth import SynthConfig, write_synthetic_iemocap
from ser_ray.train import ModelChoice, TrainJob

FOUR_CLASSES = Selection(labels=("angry", "happy", "neutral", "sad"), merge={"excited": "happy"})
BENCH_MODEL = ModelChoice(name="eca_cnn", options={"scale": 1, "base_width": 8})
BENCH_TRAINING = {"test_version": 8, "lr": 0.003, "batch_size": 32,
                  "standardize": "train-fold"}


def prepare_corpus(base: Path, utterances_per_speaker: int,
                   duration_s: float) -> tuple[Path, Path, Path]:
    """A synthetic corpus, its 4-class manifest, leave-one-session-out folds, and a log-Mel
    cache at STFT version 8: (manifest, folds, cache path)."""
    from ser_ray.features import parse_recipe
    from ser_ray.features.pipeline import build_features

    write_synthetic_iemocap(base / "corpus",
                            SynthConfig(utterances_per_speaker=utterances_per_speaker))
    manifest_and_folds("iemocap", base / "corpus", FOUR_CLASSES, FoldProtocol(kind="session"),
                       base)
    feature_cache, _ = build_features(
        base / "manifest_selected.parquet",
        parse_recipe({"kind": "logmel", "versions": [8], "duration_s": duration_s}),
        base / "cache")
    return base / "manifest_selected.parquet", base / "folds.parquet", feature_cache.path


def epoch_times(histories: dict[int, list[dict[str, Any]]], started: float) -> list[float]:
    """Wall seconds of each lock-step epoch: from the end of the previous epoch (or `started`)
    to the end of this epoch's last fold."""
    epochs = len(next(iter(histories.values())))
    ends = [max(history[epoch]["finished_at"] for history in histories.values())
            for epoch in range(epochs)]
    return [end - start for start, end in zip([started, *ends[:-1]], ends)]


def bench_train(epochs: int = 5, utterances_per_speaker: int = 50,
                duration_s: float = 3.0, cpus: int = 2, rounds: int = 3) -> dict[str, Any]:
    """Both paths train with `cpus` threads: the plain loop here, Ray's one worker with
    `cpus` CPUs; `rounds` times each, alternating."""
    import torch

    if epochs < 3:
        raise UserError(f"--epochs must be at least 3 (epochs 2.. are the steady state), "
                        f"got {epochs}")
    if rounds < 1:
        raise UserError(f"--rounds must be at least 1, got {rounds}")
    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-train-") as temp:
        base = Path(temp)
        # The feature stage starts Ray, so both paths train beside the same idle cluster.
        manifest, folds, cache = prepare_corpus(base, utterances_per_speaker, duration_s)
        job = TrainJob(manifest=manifest, folds=folds, cache=cache, model=BENCH_MODEL,
                       train=paper_training("eca_cnn", {**BENCH_TRAINING, "epochs": epochs}))
        torch.set_num_threads(cpus)
        measured = [_one_round(job, base / f"round-{number}", cpus)
                    for number in range(rounds)]
    plain_epoch = statistics.median(t for round_ in measured for t in round_.plain[1:])
    ray_epoch = statistics.median(t for round_ in measured for t in round_.ray[1:])
    ratios = [statistics.median(round_.ray[1:]) / statistics.median(round_.plain[1:])
              for round_ in measured]
    figures = {
        "epochs": epochs, "folds": measured[0].folds, "train_rows_per_fold": measured[0].rows,
        "threads": cpus, "rounds": rounds,
        "plain_epoch_s": round(plain_epoch, 3), "ray_train_epoch_s": round(ray_epoch, 3),
        "ray_train_overhead_ratio": round(ray_epoch / plain_epoch, 3),
        "round_ratios": [round(ratio, 3) for ratio in ratios],
        "ray_train_startup_s": round(statistics.median(
            round_.ray[0] - round_.plain[0] for round_ in measured), 2),
        "ray_train_total_s": round(statistics.median(r.ray_total for r in measured), 2),
        "plain_total_s": round(statistics.median(sum(r.plain) for r in measured), 2),
    }
    print(f"plain loop : {plain_epoch:.2f} s per epoch ({figures['folds']} folds × "
          f"{figures['train_rows_per_fold']} training rows; median of {rounds} rounds)")
    print(f"Ray Train  : {ray_epoch:.2f} s per epoch, {figures['ray_train_overhead_ratio']:.3f}× "
          f"the plain loop (rounds: {', '.join(f'{r:.3f}' for r in ratios)}); fixed start-up "
          f"{figures['ray_train_startup_s']:.1f} s")
    print(json.dumps(figures))
    return figures


@dataclass(frozen=True)
class _Round:
    """Per-epoch wall seconds of each path in one round, and the Ray run's whole time."""

    plain: list[float]
    ray: list[float]
    ray_total: float
    folds: int
    rows: int


def _one_round(job: TrainJob, base: Path, cpus: int) -> _Round:
    from ser_ray.train import train_folds
    from ser_ray.train.ray_train import train_folds_on_ray

    started = time.time()
    plain = train_folds(job, checkpoint_dir=base / "plain-checkpoint")
    plain_epochs = epoch_times(plain.histories, started)
    started = time.time()
    on_ray = train_folds_on_ray(job, storage_path=base / "ray", name="bench", workers=1,
                                cpus_per_worker=cpus)
    ray_total = time.time() - started
    rows = next(iter(plain.histories.values()))[0]["train_rows"]
    return _Round(plain_epochs, epoch_times(on_ray.histories, started), ray_total,
                  len(plain.histories), rows)
