"""Studies on Ray's real autoscaler with fake nodes (`ray.cluster_utils.AutoscalingCluster`,
provider `fake_multinode`): a head without GPUs and a GPU worker type with `min_workers: 0`.
The cluster must grow for trials that ask for a GPU, a study no node type can hold is refused
up front, and a unit whose node dies mid-training finishes with the metrics of an
uninterrupted run. The fake GPUs have no CUDA behind them: training runs on CPU."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ser_ray.errors import UserError
from ser_ray.experiment import CheckpointRow, read_ledger
from ser_ray.experiment.ledger import CHECKPOINTS_FILE, read_lines
from ser_ray.study.run import run_study
from tests.study.builders import ECA, write_study

VENV_BIN = Path(sys.executable).parent
GPU_TYPE = "gpu_worker"
WORKER_TYPES = {GPU_TYPE: {"resources": {"CPU": 2, "GPU": 1}, "node_config": {},
                           "min_workers": 0, "max_workers": 2}}
GPU_TRIAL = {"cpus": 1, "gpus": 1}

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _harness() -> Any:
    from ray.cluster_utils import AutoscalingCluster

    class LocalAutoscalingCluster(AutoscalingCluster):
        """The harness with its config written here: the pip wheel lacks the example YAML
        its `_generate_config` loads."""

        def _generate_config(self, head_resources: dict, worker_node_types: dict,
                             autoscaler_v2: bool = False, **config_kwargs: Any) -> dict:
            return {
                "cluster_name": "ser-ray-test", "max_workers": 4, "upscaling_speed": 1.0,
                "idle_timeout_minutes": 5, "head_node_type": "ray.head.default",
                "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                             "disable_node_updaters": True,
                             "disable_launch_config_check": True},
                "available_node_types": {
                    **worker_node_types,
                    "ray.head.default": {"resources": head_resources, "node_config": {},
                                         "max_workers": 0}},
                "docker": {}, "auth": {}, "file_mounts": {}, "cluster_synced_files": [],
                "file_mounts_sync_continuously": False, "rsync_exclude": [],
                "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
                "head_setup_commands": [], "worker_setup_commands": [],
                "head_start_ray_commands": [], "worker_start_ray_commands": [],
                **config_kwargs}

    return LocalAutoscalingCluster(head_resources={"CPU": 1},
                                   worker_node_types=WORKER_TYPES)


@pytest.fixture(scope="module")
def autoscaling_cluster() -> Iterator[None]:
    import ray

    ray.shutdown()  # the shared test session's cluster; the cluster tests run last
    environment = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}",  # the harness calls `ray`
                   "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    cluster = _harness()
    try:
        cluster.start()
        ray.init(address="auto", logging_level="ERROR")
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _gpu_nodes() -> list[dict]:
    import ray

    return [node for node in ray.nodes() if node["Alive"] and node["Resources"].get("GPU")]


def test_a_trial_no_node_type_holds_is_refused_before_anything_runs(
        autoscaling_cluster, study_cache: Path, tmp_path: Path) -> None:
    study = write_study(tmp_path / "big.yaml", "big", budget={"epochs": 1},
                        resources={"cpus": 1, "gpus": 2},
                        ablation={"design": "one-factor", "factors": {"eca": ECA}})
    with pytest.raises(UserError, match=r"needs 1 CPUs, 2 GPUs .* the autoscaler's node "
                                        r"types: gpu_worker: 2 more of 2 CPUs, 1 GPUs"):
        run_study(study, tmp_path / "big", study_cache)
    assert read_ledger(tmp_path / "big") == []


def test_trials_that_ask_for_gpus_grow_the_cluster_and_finish(
        autoscaling_cluster, study_cache: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    assert _gpu_nodes() == []  # min_workers 0: the cluster starts without GPUs
    study = write_study(tmp_path / "grow.yaml", "grow", budget={"epochs": 2},
                        resources=GPU_TRIAL,
                        ablation={"design": "one-factor", "factors": {"eca": ECA}})
    result = run_study(study, tmp_path / "grow", study_cache)
    printed = capsys.readouterr().out
    assert "waiting for resources: no node up now holds one trial" in printed
    assert "declare none" in printed  # fake node types cannot declare memory
    rows = read_ledger(tmp_path / "grow")
    assert result.units_recorded == 4 and len(rows) == 4
    assert all(row.status == "finished" and row.epochs_run == 2 for row in rows)
    assert _gpu_nodes(), "the autoscaler started no GPU node"


def test_a_unit_whose_node_dies_finishes_with_the_metrics_of_an_uninterrupted_run(
        autoscaling_cluster, study_cache: Path, tmp_path: Path) -> None:
    def study(name: str) -> Path:
        return write_study(tmp_path / f"{name}.yaml", name, budget={"epochs": 4, "retries": 1},
                           resources=GPU_TRIAL,
                           ablation={"design": "one-factor", "factors": {"eca": ECA}})

    run_study(study("calm"), tmp_path / "calm", study_cache)
    killed: list[str] = []
    watcher = threading.Thread(target=_kill_node_after_a_checkpoint,
                               args=(tmp_path / "preempted", killed), daemon=True)
    watcher.start()
    run_study(study("preempted"), tmp_path / "preempted", study_cache)
    watcher.join(timeout=5)
    assert killed, "no node was killed: the unit ended before its first checkpoint"
    # Retried from its checkpoint, not from scratch: no trial saved a first epoch twice.
    saved = read_lines(tmp_path / "preempted" / CHECKPOINTS_FILE, CheckpointRow)
    for trial in {row.trial_id for row in saved}:
        assert [row.epoch for row in saved if row.trial_id == trial].count(1) == 1
    calm, preempted = read_ledger(tmp_path / "calm"), read_ledger(tmp_path / "preempted")
    assert [row.status for row in preempted] == ["finished"] * len(calm)
    for before, after in zip(sorted(calm, key=_unit), sorted(preempted, key=_unit)):
        assert _unit(before) == _unit(after)
        assert [_scores(record) for record in before.history] == \
            [_scores(record) for record in after.history]


def _unit(row: Any) -> tuple:
    return row.variant, row.seed, row.fold


def _scores(record: Any) -> dict:
    return record.model_dump(exclude={"seconds"})


def _kill_node_after_a_checkpoint(experiment: Path, killed: list[str]) -> None:
    """SIGKILL the raylet of the GPU node the trial runs on once it has saved a checkpoint:
    the node is gone, with the trial's process."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (experiment / CHECKPOINTS_FILE).is_file():
        time.sleep(0.1)
    for node in _gpu_nodes():
        for process in psutil.process_iter(["name", "cmdline"]):
            command = process.info["cmdline"] or []
            if process.info["name"] == "raylet" and f"--node_id={node['NodeID']}" in command:
                os.kill(process.pid, signal.SIGKILL)
                killed.append(node["NodeID"])
