"""The cluster a study runs on, as Ray sees it: joining it, its nodes and the autoscaler's
node types (`ClusterShape`), and the check that every node shares what it must
(`ser_ray.study.shared_paths` holds the looking and the wording, without Ray).

The autoscaler's node types come from its own configuration: the one it reported to the GCS
(Ray releases after 2.60 do; the source Ray Data reads) or, failing that, the file its
monitor process on this node was started with (`ray up`'s `~/ray_bootstrap_config.yaml`,
`ray start --autoscaling-config`). A monitor started without one runs a cluster of fixed
size. Where no monitor is visible (a KubeRay head runs its autoscaler in a sidecar container)
or its file cannot be read, the node types are unknown: nothing is refused, and trials wait
for nodes.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
import ray
import yaml
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ser_ray.errors import UserError
from ser_ray.ray_session import ensure_ray
from ser_ray.study.cluster_shape import ClusterShape, NodeType, node_types_from_config
from ser_ray.study.schema import ResourceAmounts
from ser_ray.study.shared_paths import (
    ADVICE,
    MARKER_PREFIX,
    NODE_CHECK_TIMEOUT_S,
    Marker,
    NodeReport,
    driver_size,
    look_here,
    refusal,
    write_marker,
)

AUTOSCALING_CONFIG_FLAG = "--autoscaling-config"
MONITOR_SCRIPTS = ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")


def join_cluster() -> ClusterShape:
    """The cluster the study runs on (a local one is started when none is attached)."""
    ensure_ray()
    return cluster_shape()


def cluster_shape() -> ClusterShape:
    return ClusterShape(alive_nodes(), autoscaler_node_types())


def alive_nodes() -> list[ResourceAmounts]:
    """CPUs, GPUs and memory of every alive node of the cluster."""
    return [ResourceAmounts(cpus=node["Resources"].get("CPU", 0),
                            gpus=node["Resources"].get("GPU", 0),
                            memory=node["Resources"].get("memory", 0))
            for node in ray.nodes() if node["Alive"]]


def autoscaler_node_types() -> list[NodeType] | None:
    """The worker node types of the cluster's autoscaler; [] for a cluster of fixed size,
    None when its configuration cannot be read from here."""
    reported = _reported_node_types()
    if reported is not None:
        return reported
    monitor = _monitor_process()
    if monitor is None:
        return None
    try:
        command, directory = monitor.cmdline(), monitor.cwd()
        config = next((argument.split("=", 1)[1] for argument in command
                       if argument.startswith(AUTOSCALING_CONFIG_FLAG + "=")), None)
        if config is None:
            return []
        path = Path(directory, Path(config).expanduser())  # as the monitor reads it
        return node_types_from_config(yaml.safe_load(path.read_text()))
    except (OSError, psutil.Error, yaml.YAMLError, AttributeError, TypeError) as error:
        print(f"the autoscaler's node types could not be read ({error!r}): nothing is "
              f"refused for want of a node type", flush=True)
        return None


def _reported_node_types() -> list[NodeType] | None:
    """The node groups the autoscaler reported to the GCS (the source Ray Data reads too)."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001  (a private API: absent or changed means not reported)
        return None
    if config is None or not config.node_group_configs:
        return None
    return [NodeType(name=group.name,
                     offers=ResourceAmounts(cpus=group.resources.get("CPU", 0),
                                            gpus=group.resources.get("GPU", 0),
                                            memory=group.resources.get("memory", 0)),
                     more=math.inf if group.max_count == -1 else group.max_count,
                     declares_memory="memory" in group.resources)
            for group in config.node_group_configs]


def _monitor_process() -> psutil.Process | None:
    """This cluster's autoscaler monitor, when it runs on this node: the one whose GCS port
    is this cluster's (the host part may be spelt another way)."""
    port = ray.get_runtime_context().gcs_address.rsplit(":", 1)[-1]
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if any(argument.endswith(MONITOR_SCRIPTS) for argument in command) and any(
                argument.startswith("--gcs-address=") and argument.endswith(f":{port}")
                for argument in command):
            return process
    return None


def check_cluster_storage(shape: ClusterShape, paths: dict[str, Path],
                          corpus_root: Path | None) -> None:
    """Every node of the cluster must see the folders it shares, and a few corpus files, as
    the driver does (`ray.init` may have attached to a cluster `ray start` began on this
    machine). A cluster of one node that never grows has nothing to compare."""
    if len(shape.alive) == 1 and shape.node_types == []:
        return
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    check_shared_paths(paths, _sample_files(corpus_root))


def _sample_files(corpus_root: Path | None, count: int = 3) -> list[Path]:
    """The first few files of a corpus on disk, found without listing all of it."""
    if corpus_root is None or not corpus_root.is_dir():
        return []
    found: list[Path] = []
    for folder, _, files in os.walk(corpus_root):
        found += [Path(folder, name) for name in sorted(files)[:count - len(found)]]
        if len(found) >= count:
            break
    return found


def check_shared_paths(paths: Mapping[str, Path], corpus_files: Sequence[Path] = (), *,
                       timeout_s: float = NODE_CHECK_TIMEOUT_S) -> None:
    """Refuse (UserError) unless every alive Ray node sees each directory of `paths` (role →
    a writable directory the driver sees) as the driver does, and each of `corpus_files` with
    the driver's size. The markers written for it are removed again, whatever happens.

    Every alive node runs one task (no CPU asked, so a busy node runs it too), the driver's
    own included: on one node the check costs a fraction of a second and still catches a
    driver on another machine (Ray Client). A node that has not answered within
    `timeout_s` is named as such, not waited for."""
    sizes = {os.path.abspath(path): driver_size(Path(os.path.abspath(path)))
             for path in corpus_files}
    markers = [Marker(role, os.path.abspath(directory), MARKER_PREFIX + secrets.token_hex(8),
                      secrets.token_hex(16)) for role, directory in paths.items()]
    if not markers and not sizes:
        return
    written: list[Path] = []
    try:
        for marker in markers:
            written.append(Path(marker.directory) / marker.name)
            write_marker(marker)
        nodes = [node for node in ray.nodes() if node["Alive"]]
        look = ray.remote(look_here)
        pending = {
            look.options(num_cpus=0, max_retries=0, scheduling_strategy=(
                NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            ).remote(markers, sizes): node
            for node in nodes}
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        reports = []
        for ref in ready:
            node = pending[ref]
            try:
                sighting = ray.get(ref)
            except ray.exceptions.RayError as error:
                cause = (str(error).strip().splitlines() or [type(error).__name__])[-1]
                reports.append(_report(node, None, (f"the check failed there: {cause}",)))
            else:
                reports.append(_report(node, sighting.hostname, sighting.problems))
        for ref in late:
            ray.cancel(ref)  # a read stuck on a dead mount holds a worker, but no CPU
            reports.append(_report(pending[ref], None, (
                f"did not run the check within {timeout_s:g} s (is it busy, out of memory or "
                "unreachable? see `ray status`)",)))
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    # A node that died or was drained during the check (an idle one the autoscaler removes)
    # shares nothing any more: it is not a reason to refuse.
    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    reports = [report for report in reports if not report.problems or report.node_id in alive]
    message = refusal(sorted(reports, key=lambda report: (report.ip, report.node_id)))
    if message:
        raise UserError(message)


def require_visible(path: Path, role: str) -> None:
    """Refuse, naming this node, when a path the study prepared is not here (a node that
    joined after `check_shared_paths` ran, e.g. through the autoscaler). Needs no cluster."""
    if not Path(path).exists():
        raise UserError(f"the {role} {path} is not there on {_this_node()}: {ADVICE}")


def _this_node() -> str:
    hostname = socket.gethostname()
    try:
        return f"node {ray.util.get_node_ip_address()} (host {hostname})"
    except Exception:  # no route to find an IP with: the hostname still names the node
        return f"host {hostname}"


def _report(node: Mapping, hostname: str | None, problems: tuple[str, ...]) -> NodeReport:
    return NodeReport(node["NodeID"], node["NodeManagerAddress"],
                      hostname or node.get("NodeManagerHostname"), problems)


