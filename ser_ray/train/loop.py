"""The plain-PyTorch k-fold loop (no Ray inside): folds trained in lock-step, epoch by epoch.

Every fold owns its random state — model init, shuffling and mixup draws (a numpy
generator), dropout (a torch RNG state swapped in around the fold's work) — seeded by
(seed, fold). A fold's numbers therefore do not depend on which other folds share its process
or worker, and a run restored from a checkpoint continues exactly where it stopped.

Lock-step: `LockstepRun.run_epoch` trains every fold for one epoch before anyone reads the
epoch's fold-mean metrics, which is what a scheduler prunes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.experiment import TrainConfig
from ser_ray.train import metrics
from ser_ray.train.config import TrainJob
from ser_ray.train.data import FoldData, FoldSplits, Split, Standardizer
from ser_ray.train.losses import inverse_frequency_weights, make_loss, mixup_batch, mixup_loss
from ser_ray.train.results import Record, run_summary, select_epoch, selected_so_far

FOLD_FILE = "fold_{}.pt"
DESCRIPTION_FILE = "run.json"
# BatchNorm cannot normalise a batch of one example in training mode.
MIN_TRAIN_BATCH = 2


def resolve_device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


@dataclass(frozen=True)
class DdpGroup:
    """Workers that train one fold together: this worker's place in the group."""

    process_group: Any
    member: int
    size: int

    @property
    def leader(self) -> bool:
        return self.member == 0


class FoldTrainer:
    """One fold's model, optimiser, schedule, loss and random state."""

    def __init__(self, data: FoldData, splits: FoldSplits, job: TrainJob,
                 model: models.ResolvedModel, device: torch.device,
                 ddp: DdpGroup | None = None) -> None:
        self.config = job.train
        self.data = data
        self.splits = splits
        self.fold_index = splits.fold_index
        self.device = device
        self.ddp = ddp
        self.resume_key = job.resume_key()
        torch_seed, numpy_seed = np.random.SeedSequence(
            [job.seed, self.fold_index]).generate_state(2)
        self.generator = np.random.default_rng(int(numpy_seed))
        self.num_classes = len(data.label_names)
        self.rng_state = torch.Generator().manual_seed(int(torch_seed)).get_state()
        self.cuda_rng_state = _cuda_rng_state(device, int(torch_seed))
        with self._own_rng():
            self.module = model.build(self.num_classes).to(device)
        self.parameters = models.count_parameters(self.module)
        self.input_shape = model.input_shape
        self.model: nn.Module = self.module if ddp is None else \
            nn.parallel.DistributedDataParallel(self.module, process_group=ddp.process_group)
        self.optimizer = _optimizer(self.module, self.config)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer,
                                                                gamma=self.config.lr_decay)
        weights = (self._class_weights().to(device)
                   if self.config.loss.needs_class_weights else None)
        self.loss_fn = make_loss(self.config.loss, weights)
        self.standardizer: Standardizer | None = (
            data.standardizer(splits.train) if self.config.standardize == "train-fold" else None)
        self.epoch = 0
        self.history: list[Record] = []
        self.selected_state: dict[str, torch.Tensor] | None = None

    def _class_weights(self) -> torch.Tensor:
        try:
            return inverse_frequency_weights(torch.from_numpy(self.splits.train.targets),
                                             self.num_classes)
        except ValueError as error:
            raise UserError(f"fold {self.fold_index}: {error}; class weights need every class "
                            f"in every training fold (choose another protocol or drop the "
                            f"class)") from error

    # --- one epoch -------------------------------------------------------------------------

    def train_epoch(self) -> Record:
        started = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])
        with self._own_rng():
            train_loss = self._fit_once()
            if self.scheduler.get_last_lr()[0] >= self.config.lr_floor:
                self.scheduler.step()
            test = self.evaluate(self.splits.test)
            validation = (self.evaluate(self.splits.validation)
                          if self.splits.validation is not None else None)
        self.epoch += 1
        record: Record = {
            "fold": self.fold_index, "epoch": self.epoch, "train_loss": train_loss, "lr": lr,
            "train_rows": len(self.splits.train.rows),
            "seconds": time.perf_counter() - started, "finished_at": time.time(),
            "test": test, "validation": validation,
        }
        self.history.append(record)
        if self.config.selection != "last" and \
                select_epoch(self.history, self.config.selection) == self.epoch:
            self.selected_state = _cpu_copy(self.module.state_dict())
        return record

    def _fit_once(self) -> float:
        self.model.train()
        split = self.splits.train
        order = self.generator.permutation(len(split.rows))
        total, seen = 0.0, 0
        members = self.ddp.size if self.ddp is not None else 1
        for start in range(0, len(order), self.config.batch_size):
            batch = order[start:start + self.config.batch_size]
            # Decided on the whole batch, so every DDP member skips the same steps (a member
            # that skipped alone would leave the others waiting in the gradient all-reduce).
            if len(batch) < MIN_TRAIN_BATCH * members:
                continue
            if self.ddp is not None:
                batch = batch[self.ddp.member::self.ddp.size]
            inputs, targets = self._batch(split, batch)
            loss = self._loss(inputs, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        return total / max(seen, 1)

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        alpha = self.config.loss.mixup_alpha
        with self._autocast():
            if alpha > 0:
                mixed, targets_a, targets_b, lam = mixup_batch(inputs, targets, alpha,
                                                               self.generator)
                logits = self.model(mixed).float()
                loss = mixup_loss(self.loss_fn, logits, targets_a, targets_b, lam)
            else:
                loss = self.loss_fn(self.model(inputs).float(), targets)
        penalty = getattr(self.module, "l2_penalty", None)
        return loss + penalty() if penalty is not None else loss

    @torch.no_grad()
    def evaluate(self, split: Split) -> dict[str, Any]:
        """Metrics of a split; an utterance's rows (segments) are scored by their mean logits."""
        self.model.eval()
        logits = np.zeros((split.n_utterances, self.num_classes), np.float64)
        for start in range(0, len(split.rows), self.config.eval_batch_size):
            batch = np.arange(start, min(start + self.config.eval_batch_size, len(split.rows)))
            inputs, _ = self._batch(split, batch)
            with self._autocast():
                np.add.at(logits, split.groups[batch],
                          self.module(inputs).float().cpu().numpy())
        logits /= np.bincount(split.groups, minlength=split.n_utterances)[:, None]
        targets = split.utterance_targets()
        matrix = metrics.confusion_matrix(targets, logits.argmax(axis=1), self.num_classes)
        loss = float(nn.functional.cross_entropy(torch.from_numpy(logits),
                                                 torch.from_numpy(targets)))
        return {**metrics.report(matrix, self.data.label_names), "loss": loss}

    def _batch(self, split: Split, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.data.features[split.rows[positions]]
        if self.standardizer is not None:
            features = self.standardizer(features)
        inputs = torch.from_numpy(np.ascontiguousarray(features, np.float32)) \
            .reshape(len(positions), *self.input_shape).to(self.device, non_blocking=True)
        targets = torch.from_numpy(split.targets[positions]).to(self.device)
        return inputs, targets

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda" and self.config.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run with this fold's torch RNGs (CPU, and the device's on CUDA: dropout draws from
        the generator of the device it runs on), leaving the process's RNGs as they were."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self.rng_state)
        if self.cuda_rng_state is not None:
            outer_cuda = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self.cuda_rng_state, self.device)
        try:
            yield
        finally:
            self.rng_state = torch.get_rng_state()
            torch.set_rng_state(outer)
            if self.cuda_rng_state is not None:
                self.cuda_rng_state = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(outer_cuda, self.device)

    # --- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "fold": self.fold_index, "resume_key": self.resume_key, "epoch": self.epoch,
            "history": self.history,
            "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng_state": self.rng_state,
            "cuda_rng_state": self.cuda_rng_state,
            "generator": self.generator.bit_generator.state,
            "selected_state": self.selected_state,
            "standardizer": self.standardizer.to_dict() if self.standardizer else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["fold"] != self.fold_index:
            raise ValueError(f"checkpoint of fold {state['fold']} given to fold "
                             f"{self.fold_index}")
        if state["resume_key"] != self.resume_key:
            raise UserError("the checkpoint belongs to a run with other settings (model, data "
                            "or training options differ); resume with the same settings or "
                            "write to another output directory")
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # RNG states are CPU byte tensors wherever the checkpoint was mapped to.
        self.rng_state = state["rng_state"].cpu()
        if self.cuda_rng_state is not None and state["cuda_rng_state"] is not None:
            self.cuda_rng_state = state["cuda_rng_state"].cpu()
        self.generator.bit_generator.state = state["generator"]
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.selected_state = state["selected_state"]


class LockstepRun:
    """The folds of one job (or the subset a worker owns), trained epoch by epoch together."""

    def __init__(self, job: TrainJob, fold_indices: Sequence[int] | None = None,
                 device: torch.device | None = None,
                 ddp_groups: dict[int, DdpGroup] | None = None) -> None:
        self.job = job
        self.data = FoldData(job)
        self.device = device or resolve_device(job.train)
        # Process-wide: set either way, so a reused worker does not keep a previous trial's mode.
        if job.train.deterministic and self.device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(job.train.deterministic)
        # Validated once for every fold: the options as given, sized to the cache's features.
        self.model = models.resolve(job.model.name, self.data.feature_shape,
                                    **job.model.options)
        chosen = fold_indices if fold_indices is not None else self.data.job_folds
        self.trainers = [FoldTrainer(self.data, self.data.splits(index), job, self.model,
                                     self.device, (ddp_groups or {}).get(index))
                         for index in chosen]

    @property
    def epoch(self) -> int:
        return min((trainer.epoch for trainer in self.trainers), default=0)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.job.train.epochs

    def run_epoch(self) -> list[Record]:
        return [trainer.train_epoch() for trainer in self.trainers]

    def selected_so_far(self) -> list[Record]:
        """Each fold's record at the epoch its selection rule picks among those trained."""
        return [selected_so_far(trainer.history, self.job.train.selection)
                for trainer in self.trainers]

    def train(self, report: Callable[[list[Record], Path], None]) -> None:
        """Train to the last epoch; after each, save a checkpoint into a new directory and hand
        it with the epoch's records to `report`, which keeps it (in Tune, in Ray Train, or in
        a folder) and publishes the metrics."""
        while not self.finished:
            records = self.run_epoch()
            with tempfile.TemporaryDirectory(prefix="ser-ray-checkpoint-") as directory:
                self.save(Path(directory))
                report(records, Path(directory))

    def save(self, directory: Path) -> None:
        """One file per fold, each written whole before it takes its final name, and the run's
        description, so a checkpoint alone can become a predictor."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / DESCRIPTION_FILE).write_text(json.dumps(self.describe()))
        for trainer in self.trainers:
            if trainer.ddp is not None and not trainer.ddp.leader:
                continue
            final = directory / FOLD_FILE.format(trainer.fold_index)
            partial = final.with_suffix(f".partial{os.getpid()}")
            torch.save(trainer.state_dict(), partial)
            partial.replace(final)

    def restore(self, directory: Path) -> bool:
        """Load every fold's state from `directory`; False when it holds no checkpoint."""
        paths = [directory / FOLD_FILE.format(t.fold_index) for t in self.trainers]
        present = [path.is_file() for path in paths]
        if not any(present):
            return False
        if not all(present):
            missing = [path.name for path, there in zip(paths, present) if not there]
            raise UserError(f"the checkpoint in {directory} lacks {', '.join(missing)}; it is "
                            f"not from this run's folds (remove it to start over)")
        for trainer, path in zip(self.trainers, paths):
            trainer.load_state_dict(torch.load(path, map_location=self.device,
                                               weights_only=True))
        return True

    def describe(self) -> dict[str, Any]:
        """What the run is, for summaries, ledgers and the saved predictor."""
        return {
            "model": self.model.family,
            "model_options": self.model.options.model_dump(mode="json"),
            "parameters": self.trainers[0].parameters, "label_names": list(self.data.label_names),
            "recipe": self.data.recipe, "feature_shape": list(self.data.feature_shape),
            "test_version": self.data.test_version,
            "train_versions": list(self.data.train_versions or []),
            "protocol": self.data.protocol.kind,
            "missing_utterances": self.data.missing_utterances,
            "selection": self.job.train.selection,
        }


EpochCallback = Callable[[list[Record], LockstepRun], None]


def train_folds(job: TrainJob, *, checkpoint_dir: Path | None = None,
                on_epoch: EpochCallback | None = None) -> RunOutcome:
    """Train every fold of `job` in this process, resuming from `checkpoint_dir` if it holds a
    checkpoint of this job; the checkpoint is replaced whole after every epoch."""
    run = LockstepRun(job)
    if checkpoint_dir is not None:
        latest = latest_checkpoint(checkpoint_dir)
        if latest is not None and run.restore(latest):
            print(f"resumed from {latest} after epoch {run.epoch}", flush=True)

    def keep(records: list[Record], directory: Path) -> None:
        if checkpoint_dir is not None:
            publish_checkpoint(directory, checkpoint_dir)
        if on_epoch is not None:
            on_epoch(records, run)

    run.train(keep)
    return RunOutcome.from_run(run)


def publish_checkpoint(source: Path, target: Path) -> None:
    """Replace `target` with a copy of `source` so that, killed at any moment, a complete
    checkpoint remains: `target` itself, or `<target>.old` between the two renames."""
    staged = target.with_name(f"{target.name}.new")
    previous = target.with_name(f"{target.name}.old")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged)
    if target.exists():
        shutil.rmtree(previous, ignore_errors=True)
        target.rename(previous)
    staged.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def latest_checkpoint(target: Path) -> Path | None:
    for candidate in (target, target.with_name(f"{target.name}.old")):
        if (candidate / DESCRIPTION_FILE).is_file():
            return candidate
    return None


@dataclass(frozen=True)
class RunOutcome:
    """A finished k-fold run: what it was, every fold's history, the selected results."""

    description: dict[str, Any]
    histories: dict[int, list[Record]]
    predictor_fold: int
    predictor_state: dict[str, torch.Tensor]
    standardizer: dict[str, Any] | None

    @classmethod
    def from_run(cls, run: LockstepRun) -> RunOutcome:
        return cls.from_states(run.describe(), [trainer.state_dict() for trainer in run.trainers])

    @classmethod
    def from_states(cls, description: dict[str, Any],
                    states: Sequence[dict[str, Any]]) -> RunOutcome:
        """From fold checkpoints: the predictor is the fold with the best selected UA+WA."""
        histories = {int(state["fold"]): list(state["history"]) for state in states}
        summary = run_summary(histories, description["selection"], description["label_names"])
        best = max(summary["folds"], key=lambda fold: summary["folds"][fold]["ua_wa_mean"])
        state = next(s for s in states if int(s["fold"]) == int(best))
        return cls(description=description, histories=histories, predictor_fold=int(best),
                   predictor_state=state["selected_state"] or state["model"],
                   standardizer=state["standardizer"])

    def summary(self) -> dict[str, Any]:
        return {**self.description, "predictor_fold": self.predictor_fold,
                **run_summary(self.histories, self.description["selection"],
                              self.description["label_names"])}


def outcome_from_checkpoint(directory: Path) -> RunOutcome:
    """The outcome recorded in a checkpoint directory written by `LockstepRun.save`."""
    description = json.loads((directory / DESCRIPTION_FILE).read_text())
    states = [torch.load(path, map_location="cpu", weights_only=True)
              for path in sorted(directory.glob(FOLD_FILE.format("*")))]
    return RunOutcome.from_states(description, states)


def _optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    parameters = module.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(parameters, lr=config.lr, betas=config.betas,
                           weight_decay=config.weight_decay)


def _cuda_rng_state(device: torch.device, seed: int) -> torch.Tensor | None:
    """A fresh CUDA generator state for `seed` (None off CUDA)."""
    if device.type != "cuda":
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator.get_state()


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state.items()}
