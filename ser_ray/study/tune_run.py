"""A study's trials on Ray Tune: the Tuner, its scheduler and searcher, and the wall clock.

Ablation trials are a grid over their plans; a search's trials are sampled by Optuna
(`ResolvingSearch`), each sample resolved into its plan in the driver before Tune launches
it. `budget.wall_time_s` spans runs: the Tune time each run uses is added up in
`DIR/wall_time.json`, and a resumed run gets what is left.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from ser_ray.errors import UserError
from ser_ray.study.cluster import alive_nodes
from ser_ray.study.cluster_shape import ClusterShape, NodeType, describe_node_types
from ser_ray.study.ledger_writer import TRIAL_PREFIX, LedgerWriter
from ser_ray.study.optuna_trials import OPTUNA_TRIAL_KEY
from ser_ray.study.racing import FoldRacingScheduler
from ser_ray.study.schema import Resources, StudyConfig, TrialMemory
from ser_ray.study.space import DefineByRun, make_sampler, open_storage
from ser_ray.study.storage import TUNE_DIR, next_run_name, storage_child
from ser_ray.study.trial import TrialContext, run_trial, trial_memory
from ser_ray.study.units import PLAN_KEY, TrialPlan, trial_plan
from ser_ray.train.memory import PROCESS_BYTES
from ser_ray.train.results import selected_metric

WALL_TIME_FILE = "wall_time.json"
logger = logging.getLogger(__name__)
# How often the driver records the wall time used: a killed driver loses at most this much.
WALL_TIME_PERIOD_S = 10.0


class EpochOptunaSearch(OptunaSearch):
    """Optuna's Tune searcher with intermediate values indexed by epoch and trials that end
    in the state they really reached.

    Tune ends a trial its scheduler stopped as it ends a finished one, with the last result;
    Optuna's searcher then records it COMPLETE with its early score, and TPE learns from an
    epoch-2 number as if it were final. Here only a trial that trained every epoch is
    COMPLETE; a stopped one is PRUNED (TPE ranks it by its intermediate values, one per epoch)
    and a failed one FAIL, whatever it reported before failing.
    """

    def __init__(self, *args: Any, epochs: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epochs = epochs
        self.last_epochs: dict[str, int] = {}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # Intermediate values are indexed by epoch: a retried multi-worker trial resumes at
        # its last epoch while Tune's iteration count starts again.
        super().on_trial_result(trial_id, {**result, TRAINING_ITERATION: result["epoch"]})
        self.last_epochs[trial_id] = result["epoch"]

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        # Tune hands a trial's last result to this call only, not to `on_trial_result`.
        if result and "epoch" in result and self.metric in result \
                and result["epoch"] != self.last_epochs.get(trial_id):
            self.on_trial_result(trial_id, result)
        if not error and result and result.get("epoch") == self.epochs:
            super().on_trial_complete(trial_id, result)
            return
        # A trial that ended before its first epoch is failed in the ledger too.
        stopped = not error and trial_id in self.last_epochs
        state = optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.FAIL
        try:
            self._ot_study.tell(self._ot_trials[trial_id], state=state)
        except Exception as failure:  # as OptunaSearch does: the ledger stays the record
            logger.warning("Optuna could not record trial %s as %s: %s", trial_id,
                           state.name, failure)
        self._completed_trials.add(trial_id)


class ResolvingSearch(EpochOptunaSearch):
    """An `EpochOptunaSearch` whose every sample is resolved into a `TrialPlan` in the
    driver, so that each trial receives its configuration whole (under `PLAN_KEY`)."""

    def __init__(self, *args: Any, plan: Callable[[dict[str, Any]], TrialPlan],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        sampled = super().suggest(trial_id)
        if not isinstance(sampled, dict):
            return sampled  # None (wait) or Searcher.FINISHED
        return {**sampled, PLAN_KEY: self.plan(sampled).model_dump_json(),
                OPTUNA_TRIAL_KEY: self._ot_trials[trial_id].number}


def optuna_search(study: StudyConfig, optuna_file: Path,
                  plan: Callable[[dict[str, Any]], TrialPlan]) -> Searcher:
    assert study.search is not None
    return ResolvingSearch(space=DefineByRun(study.search.parameters),
                           metric=selected_metric(study.objective.metric),
                           mode=study.objective.mode, sampler=make_sampler(study.search),
                           storage=open_storage(optuna_file, study.name,
                                                continue_interrupted=True),
                           study_name=study.name, plan=plan, epochs=study.budget.epochs)


def wall_time_left(study: StudyConfig, experiment_dir: Path) -> float | None:
    """Seconds of `budget.wall_time_s` earlier runs left (None: no budget)."""
    if study.budget.wall_time_s is None:
        return None
    return study.budget.wall_time_s - WallClock(experiment_dir).used_before


def fit(study: StudyConfig, experiment_dir: Path, context: TrialContext,
        ledger: LedgerWriter, shape: ClusterShape, num_samples: int, time_left: float | None,
        param_space: dict[str, Any] | None = None, search_alg: Searcher | None = None,
        plans: Sequence[TrialPlan] = (), memory: TrialMemoryRequests | None = None) -> None:
    """Run the trials on the cluster (`join_cluster`, whose nodes and node types `shape` is).

    Every trial asks Ray for its resources and the memory its processes will hold
    (`trial_memory`), so that no node runs more trials than it can hold, and Ray's autoscaler
    sees what to start (`trial_concurrency` says how many at once). A study whose known
    trials (`plans`, an ablation's) fit on no node the cluster can ever have is refused
    here, with the numbers (a search's sampled configuration that cannot fails as its trial:
    `PlaceablePlans`, whose estimates `memory` then reuses).
    """
    clock = WallClock(experiment_dir)
    resources = study.resources
    memory = memory or TrialMemoryRequests(context)
    largest = max((memory.of_plan(plan) for plan in plans),
                  default=TrialMemory(trial=PROCESS_BYTES),
                  key=lambda need: sum(bundle.memory
                                       for bundle in resources.trial_bundles(need)))
    announce_placement(resources, shape, largest)
    concurrency = trial_concurrency(resources, shape, largest, len(plans) or num_samples)
    print(f"up to {concurrency} trial(s) at once" + (
        " (the autoscaler's node types are unknown: set resources.max_concurrent_trials to "
        "what the cluster can hold; a search samples that many configurations at once)"
        if shape.node_types is None and resources.max_concurrent_trials is None else ""),
        flush=True)
    tuner = tune.Tuner(
        trial_trainable(resources, context, memory), param_space=param_space or {},
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=study_scheduler(study), num_samples=num_samples,
            max_concurrent_trials=concurrency,
            reuse_actors=resources.workers == 1, time_budget_s=time_left,
            trial_dirname_creator=lambda trial: f"{TRIAL_PREFIX}{trial.trial_id}"),
        run_config=tune.RunConfig(
            name=next_run_name(context.storage),
            storage_path=storage_child(context.storage, TUNE_DIR),
            callbacks=[LedgerCallback(ledger), clock], verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # A trial whose process or node dies is retried from its last checkpoint.
            failure_config=tune.FailureConfig(max_failures=study.budget.retries)),
    )
    tuner.fit()


def memory_requests(shape: ClusterShape) -> bool:
    """Whether trials ask Ray for memory: not where the autoscaler has node types that
    declare none, as it would never start one for such a request."""
    blind = shape.memory_blind_types
    if blind:
        print(f"trials ask Ray for no memory: the autoscaler's node type(s) "
              f"{', '.join(blind)} declare none (resources: {{memory: BYTES}} in the cluster "
              f"config), and it never starts a node for a request it cannot check",
              flush=True)
    return not blind


def trial_concurrency(resources: Resources, shape: ClusterShape, need: TrialMemory,
                      trials: int) -> int:
    """Trials run at once: as many as the largest cluster the autoscaler can make holds, at
    most `resources.max_concurrent_trials`; where its node types are unknown (KubeRay's
    autoscaler runs beside the head, out of sight), `resources.max_concurrent_trials`, else
    every trial (Tune's limit on pending placement groups still paces them).

    Tune needs the number: a trial with Train workers asks Tune only for its own sliver (its
    workers are placed by their TorchTrainer), and a searcher would otherwise have one trial
    pending at a time, so the autoscaler would add one node at a time.
    """
    cap = min(resources.max_concurrent_trials or trials, trials)
    if shape.node_types is None:
        return cap
    nodes = shape.candidates(trials * len(resources.trial_bundles(need)))
    return resources.model_copy(update={"max_concurrent_trials": cap}).concurrent_trials(
        nodes, need)


def announce_placement(resources: Resources, shape: ClusterShape, need: TrialMemory) -> None:
    """Refuse a trial no node the cluster can ever have holds; say when trials wait for the
    autoscaler to start nodes."""
    bundles = len(resources.trial_bundles(need))
    if shape.node_types is not None:
        refusal = resources.unplaceable(shape.candidates(bundles), need)
        if refusal is not None:
            raise UserError(refusal + (f"; the autoscaler's node types: "
                                       f"{describe_node_types(shape.node_types)}"
                                       if shape.node_types else ""))
    waiting = resources.unplaceable(shape.alive, need)
    if waiting is not None:
        source = ("the autoscaler's node types: " + describe_node_types(shape.node_types)
                  if shape.node_types is not None
                  else "the autoscaler's node types could not be read from this node")
        print(f"waiting for resources: no node up now holds one trial ({waiting}); trials "
              f"start as the autoscaler adds nodes ({source})", flush=True)


def trial_trainable(resources: Resources, context: TrialContext,
                    memory: TrialMemoryRequests) -> Callable[..., Any]:
    """`run_trial` with the study's context, asking for the trial's resources and memory."""
    return tune.with_resources(
        tune.with_parameters(run_trial, context=context),
        lambda config: tune.PlacementGroupFactory([resources.tune_request(memory(config))]))


class TrialMemoryRequests:
    """The memory each trial asks for, by its plan's configuration and folds (estimated once
    per configuration: it builds the model and runs one forward pass)."""

    def __init__(self, context: TrialContext) -> None:
        self.context = context
        self.known: dict[tuple[str, tuple[int, ...], bool], TrialMemory] = {}

    def of_plan(self, plan: TrialPlan) -> TrialMemory:
        # A plan that fails (configuration None) asks for less than its configuration would.
        key = (plan.config_hash, tuple(plan.folds), plan.configuration is None)
        if key not in self.known:
            self.known[key] = trial_memory(self.context, plan)
        return self.known[key]

    def __call__(self, config: dict[str, Any]) -> TrialMemory:
        return self.of_plan(trial_plan(config))


class PlaceablePlans:
    """A search's plans (`SearchPlans`), where a sampled configuration whose trial no node
    the cluster can ever have holds (`ClusterShape.candidates`) becomes a trial that fails at
    once with the numbers: Tune would keep it waiting for a node that never comes. Its memory
    estimates (`memory`) serve the trials' requests too. Picklable, as Tune saves its
    searcher."""

    def __init__(self, plans: Callable[[dict[str, Any]], TrialPlan], context: TrialContext,
                 node_types: list[NodeType] | None) -> None:
        self.plans = plans
        self.memory = TrialMemoryRequests(context)
        self.node_types = node_types

    def __call__(self, sampled: dict[str, Any]) -> TrialPlan:
        plan = self.plans(sampled)
        if plan.configuration is None:
            return plan
        need = self.memory.of_plan(plan)
        resources = self.memory.context.resources
        shape = ClusterShape(alive_nodes(), self.node_types)
        if shape.node_types is None:
            return plan  # nothing known to refuse with: the trial waits for nodes
        refusal = resources.unplaceable(shape.candidates(len(resources.trial_bundles(need))),
                                        need)
        if refusal is None:
            return plan
        return plan.model_copy(update={
            "configuration": None, "unresolved_changes": plan.changes,
            "error": f"the sampled configuration {plan.changes} fits on no node the "
                     f"cluster can have: {refusal}"})


def ablation_space(plans: list[TrialPlan]) -> dict[str, Any]:
    return {PLAN_KEY: tune.grid_search([plan.model_dump_json() for plan in plans])}


def study_scheduler(study: StudyConfig) -> TrialScheduler:
    """The search's scheduler (`search.scheduler`); an ablation runs every unit whole."""
    if study.search is None or study.search.scheduler.kind == "none":
        return FIFOScheduler()
    scheduler = study.search.scheduler
    metric = study.objective.metric
    if scheduler.kind == "racing":
        return FoldRacingScheduler(
            metric=metric, mode=study.objective.mode, max_epochs=study.budget.epochs,
            grace_period=scheduler.grace_period, reduction_factor=scheduler.reduction_factor,
            alpha=scheduler.alpha, min_folds_worse=scheduler.min_folds_worse,
            asha=scheduler.asha)
    # Rungs count epochs, not reports: a retried TorchTrainer trial resumes at its last
    # epoch while Tune's iteration count starts again.
    return ASHAScheduler(
        metric=selected_metric(metric), mode=study.objective.mode, time_attr="epoch",
        max_t=study.budget.epochs, grace_period=scheduler.grace_period,
        reduction_factor=scheduler.reduction_factor)


class LedgerCallback(tune.Callback):
    """Tune's trial events, handed to the ledger writer by trial id and plan."""

    def __init__(self, ledger: LedgerWriter) -> None:
        self.ledger = ledger

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ledger.started(trial.trial_id, trial_plan(trial.config),
                            trial.config.get(OPTUNA_TRIAL_KEY))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        # A multi-worker trial's checkpoint is its TorchTrainer's, reported with its metrics.
        self.ledger.reported(trial.trial_id, result, result.get(CHECKPOINT_PATH_KEY))

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        self.ledger.checkpointed(trial.trial_id, checkpoint.path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, error=self.ledger.trial_error(trial.trial_id))

    def _ended(self, trial: Any, error: str | None) -> None:
        checkpoint = trial.checkpoint.path if trial.checkpoint is not None else None
        self.ledger.ended(trial.trial_id, trial_plan(trial.config), error, checkpoint)


class WallClock(tune.Callback):
    """Adds this run's Tune time to the wall time earlier runs used, in WALL_TIME_FILE."""

    def __init__(self, experiment_dir: Path) -> None:
        self.path = experiment_dir / WALL_TIME_FILE
        self.used_before = json.loads(self.path.read_text())["used_s"] \
            if self.path.is_file() else 0.0
        self.started = time.monotonic()
        self.written = self.started

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.written >= WALL_TIME_PERIOD_S:
            self._record()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._record()

    def _record(self) -> None:
        self.written = time.monotonic()
        used = self.used_before + self.written - self.started
        staged = self.path.with_suffix(".tmp")
        staged.write_text(json.dumps({"used_s": used}))
        os.replace(staged, self.path)  # whole or not at all, even under SIGKILL
