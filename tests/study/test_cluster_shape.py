"""Where a trial can ever run: the nodes up now and those the autoscaler's node types add."""

from __future__ import annotations

import math

from ser_ray.study.cluster_shape import ClusterShape, NodeType, node_types_from_config
from ser_ray.study.schema import ResourceAmounts, Resources, TrialMemory
from ser_ray.study.tune_run import trial_concurrency


def test_a_trial_may_wait_for_node_types_the_autoscaler_can_add() -> None:
    gib = 2**30
    head = ResourceAmounts(cpus=1, memory=8 * gib)
    gpu = NodeType(name="gpu", offers=ResourceAmounts(cpus=4, gpus=1, memory=16 * gib),
                   more=3, declares_memory=True)
    blind = NodeType(name="fake", offers=ResourceAmounts(cpus=4, gpus=1), more=math.inf,
                     declares_memory=False)
    trial, need = Resources(cpus=2, gpus=1), TrialMemory(trial=4 * gib)
    assert trial.unplaceable([head], need) is not None  # not on the nodes up now
    assert trial.unplaceable(ClusterShape([head], [gpu]).candidates(1), need) is None
    assert trial.unplaceable(ClusterShape([head], [gpu]).candidates(1),
                             TrialMemory(trial=20 * gib)) is not None
    # Undeclared memory is whatever the node will have: not a reason to refuse.
    assert trial.unplaceable(ClusterShape([head], [blind]).candidates(1),
                             TrialMemory(trial=20 * gib)) is None
    assert ClusterShape([head], [gpu, blind]).memory_blind_types == ["fake"]
    # A trial's Train workers may spread over several nodes of a type, up to its maximum.
    assert len(ClusterShape([head], [gpu]).candidates(5)) == 1 + 3


def test_node_types_come_from_the_launcher_config() -> None:
    config = {"max_workers": 10, "head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 8}, "max_workers": 0},
        "gpu": {"resources": {"CPU": 8, "GPU": 1, "memory": 2**35}, "min_workers": 1,
                "max_workers": 4},
        "cpu": {"resources": {"CPU": 16}}}}
    assert node_types_from_config(config) == [
        NodeType(name="gpu", offers=ResourceAmounts(cpus=8, gpus=1, memory=2**35), more=4,
                 declares_memory=True),
        NodeType(name="cpu", offers=ResourceAmounts(cpus=16), more=10,
                 declares_memory=False)]


def test_trials_run_at_once_as_the_largest_cluster_holds_them_or_as_the_study_caps() -> None:
    gib = 2**30
    head = ResourceAmounts(cpus=1, memory=8 * gib)
    gpu = NodeType(name="gpu", offers=ResourceAmounts(cpus=4, gpus=1, memory=16 * gib),
                   more=3, declares_memory=True)
    trial, need = Resources(cpus=2, gpus=1), TrialMemory(trial=gib)
    assert trial_concurrency(trial, ClusterShape([head], [gpu]), need, trials=40) == 3
    assert trial_concurrency(trial, ClusterShape([head], [gpu]), need, trials=2) == 2
    capped = Resources(cpus=2, gpus=1, max_concurrent_trials=2)
    assert trial_concurrency(capped, ClusterShape([head], [gpu]), need, trials=40) == 2
    # Node types unknown (KubeRay): the study's cap, else every trial.
    assert trial_concurrency(trial, ClusterShape([head], None), need, trials=40) == 40
    assert trial_concurrency(capped, ClusterShape([head], None), need, trials=40) == 2
    # Train workers may each take a GPU node: two trials of two workers on four GPU nodes.
    workers = Resources(cpus=2, gpus=2, workers=2)
    four = NodeType(name="gpu", offers=gpu.offers, more=4, declares_memory=True)
    assert trial_concurrency(workers, ClusterShape([head], [four]),
                             TrialMemory(trial=gib, worker=gib), trials=40) == 2
