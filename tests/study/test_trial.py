"""The trial process's handling of exceptions Python cannot raise, and the resources and
memory a trial asks Ray for."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import pytest

from ser_ray.errors import UserError
from ser_ray.experiment import Configuration, TrainConfig
from ser_ray.study.cluster import alive_nodes, autoscaler_node_types
from ser_ray.study.schema import Resources, TrialMemory
from ser_ray.study.trial import (
    TrialContext,
    build_job,
    hide_gpus_without_request,
    ignore_exit_while_collecting,
    trial_memory,
)
from ser_ray.study.tune_run import (
    PlaceablePlans,
    TrialMemoryRequests,
    trial_trainable,
)
from ser_ray.study.units import PLAN_KEY, TrialPlan
from ser_ray.train.memory import PROCESS_BYTES, estimate_memory


class _RaisesWhenCollected:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.cycle = self  # freed by the garbage collector, not by reference counting

    def __del__(self) -> None:
        raise self.error


def test_exit_raised_while_collecting_is_dropped_others_reach_the_earlier_hook(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(unraisable))
    ignore_exit_while_collecting()
    installed = sys.unraisablehook
    ignore_exit_while_collecting()  # a reused trial process installs it again
    assert sys.unraisablehook is installed

    _RaisesWhenCollected(SystemExit(1))
    gc.collect()
    assert reported == []
    _RaisesWhenCollected(ValueError("a real fault"))
    gc.collect()
    assert [str(unraisable.exc_value) for unraisable in reported] == ["a real fault"]


def _context(tiny_study, tmp_path, resources: Resources) -> TrialContext:
    return TrialContext(manifest=str(tiny_study.selected_manifest), folds=str(tiny_study.folds),
                        caches={"logmel": str(tiny_study.cache)},
                        experiment_dir=str(tmp_path), storage=str(tmp_path),
                        resources=resources, replay_recorded=False)


def _plan(folds: tuple[int, ...]) -> TrialPlan:
    configuration = Configuration(
        changes={}, model="eca_cnn", family="eca_cnn",
        model_options={"scale": 1, "base_width": 4}, feature_set="logmel",
        train=TrainConfig(test_version=8, batch_size=16))
    return TrialPlan(variant="baseline", configuration=configuration, config_hash="c1",
                     seed=0, folds=folds)


def test_a_trial_asks_ray_for_the_memory_its_process_needs(ray_session, tiny_study,
                                                           tmp_path) -> None:
    context = _context(tiny_study, tmp_path, Resources(cpus=1))
    plan = _plan((0, 1, 2))
    trainable = trial_trainable(context.resources, context, TrialMemoryRequests(context))
    factory = trainable._resources({PLAN_KEY: plan.model_dump_json()})
    expected = estimate_memory(build_job(context, plan)).total
    assert factory.bundles == [{"CPU": 1.0, "memory": float(expected)}]
    # With Train workers the trial's own process asks for a bare process; each worker for
    # what the worker with most folds (two of three, on two workers) holds.
    on_workers = trial_memory(_context(tiny_study, tmp_path, Resources(cpus=1, workers=2)),
                              plan)
    assert on_workers == TrialMemory(trial=PROCESS_BYTES, worker=estimate_memory(
        build_job(context, plan), folds=2).total)


def test_a_trial_no_node_can_hold_is_refused_with_the_numbers(ray_session) -> None:
    nodes = alive_nodes()
    assert autoscaler_node_types() == []  # a local cluster: fixed, its monitor has no config
    assert len(nodes) == 1 and nodes[0].cpus == 2 and nodes[0].memory > 0
    assert Resources(cpus=1).concurrent_trials(nodes, TrialMemory(trial=2**20)) == 2
    assert Resources(cpus=1).concurrent_trials(
        nodes, TrialMemory(trial=nodes[0].memory * 0.6)) == 1
    with pytest.raises(UserError, match=r"needs 1 CPUs, 0 GPUs and 4096\.00 GiB on one node "
                                        r".* the cluster's 1 node\(s\) offer at most 2 CPUs, "
                                        r"0 GPUs and \d+\.\d\d GiB each"):
        Resources(cpus=1).concurrent_trials(nodes, TrialMemory(trial=4096 * 2**30))


def test_a_sampled_configuration_no_node_can_hold_fails_as_its_trial_with_the_numbers(
        ray_session, tiny_study, tmp_path) -> None:
    context = _context(tiny_study, tmp_path, Resources(cpus=1))
    fitting = _plan((0,))
    assert PlaceablePlans(lambda sampled: fitting, context, [])({}) == fitting
    # Scoring batches of ten million rows of 64×201 floats: about 1.5 TB.
    huge = fitting.model_copy(update={"configuration": fitting.configuration.model_copy(
        update={"train": TrainConfig(test_version=8, eval_batch_size=10**7)})})
    failing = PlaceablePlans(lambda sampled: huge, context, [])({})
    assert failing.configuration is None and failing.config_hash == huge.config_hash
    assert failing.unresolved_changes == huge.changes
    assert "fits on no node the cluster can have: one trial needs 1 CPUs, 0 GPUs and" in \
        failing.error
    # Where the autoscaler's node types are not known, nothing is refused: it waits.
    assert PlaceablePlans(lambda sampled: huge, context, None)({}) == huge
    with pytest.raises(UserError, match="fits on no node the cluster can have"):
        build_job(context, failing)


def test_a_trial_that_asks_for_no_gpu_sees_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    hide_gpus_without_request(1, "auto")  # a GPU trial keeps what Ray gave it
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    hide_gpus_without_request(0, "auto")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(UserError, match="train.device is 'cuda' but resources.gpus is 0"):
        hide_gpus_without_request(0, "cuda")
