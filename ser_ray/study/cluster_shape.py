"""The nodes a study's cluster has now and the ones its autoscaler can still start.

A study is refused up front only when one trial fits on no node the cluster can ever have;
a trial that fits only on a node type the autoscaler has not started yet waits for it. The
node types come from the autoscaler's own configuration: the one it reported to the GCS
(Ray releases after 2.60 do; the source Ray Data reads) or, failing that, the file its
monitor process on this node was started with (`ray up`'s `~/ray_bootstrap_config.yaml`,
`ray start --autoscaling-config`). A monitor started without one runs a cluster of fixed
size. Where no monitor is visible (a KubeRay head runs its autoscaler in a sidecar container)
or its file cannot be read, the node types are unknown: nothing is refused, and trials wait
for nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import psutil
import ray
import yaml

from ser_ray.study.schema import ResourceAmounts

AUTOSCALING_CONFIG_FLAG = "--autoscaling-config"
MONITOR_SCRIPTS = ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")


@dataclass(frozen=True)
class NodeType:
    """A worker node type the autoscaler may start up to `more` nodes of (its maximum: a
    node of its minimum may be starting, or preempted and started again). `declares_memory`
    is False when its config gives no memory: the autoscaler then never starts it for a
    request that asks for memory (Ray's node providers fill memory in for AWS and KubeRay but
    not for GCP or fake nodes)."""

    name: str
    offers: ResourceAmounts
    more: float
    declares_memory: bool


@dataclass(frozen=True)
class ClusterShape:
    """Alive nodes, and the node types the autoscaler can add (None: not known)."""

    alive: list[ResourceAmounts]
    node_types: list[NodeType] | None

    def candidates(self, bundles: int) -> list[ResourceAmounts]:
        """The nodes `bundles` placement-group bundles could ever be placed on: the alive
        ones and, per node type, as many as they could use, up to its maximum (at most: the
        alive nodes of that type count twice). A node type's undeclared memory counts as
        unbounded: whatever Ray finds on the node."""
        added = [ResourceAmounts(cpus=kind.offers.cpus, gpus=kind.offers.gpus,
                                 memory=kind.offers.memory if kind.declares_memory
                                 else math.inf)
                 for kind in self.node_types or () for _ in range(int(min(kind.more, bundles)))]
        return [*self.alive, *added]

    @property
    def memory_blind_types(self) -> list[str]:
        """Node types the autoscaler would never start for a request with memory."""
        return [kind.name for kind in self.node_types or ()
                if kind.more > 0 and not kind.declares_memory]


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


def node_types_from_config(config: dict) -> list[NodeType]:
    """Worker node types of an autoscaler (cluster launcher) config.

    >>> node_types_from_config({"max_workers": 3, "head_node_type": "head",
    ...     "available_node_types": {"head": {"resources": {"CPU": 8}},
    ...                              "gpu": {"resources": {"CPU": 4, "GPU": 1}}}})
    [NodeType(name='gpu', offers=ResourceAmounts(cpus=4.0, gpus=1.0, memory=0.0), \
more=3, declares_memory=False)]
    """
    cluster_cap = config.get("max_workers", math.inf)
    kinds = []
    for name, node_type in config.get("available_node_types", {}).items():
        if name == config.get("head_node_type"):
            continue
        resources = node_type.get("resources", {})
        kinds.append(NodeType(
            name=name, offers=ResourceAmounts(cpus=resources.get("CPU", 0),
                                              gpus=resources.get("GPU", 0),
                                              memory=resources.get("memory", 0)),
            # Not less its minimum: those nodes count once alive, and a preempted one is
            # started again.
            more=min(node_type.get("max_workers", cluster_cap), cluster_cap),
            declares_memory="memory" in resources))
    return kinds


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


def describe_node_types(kinds: list[NodeType]) -> str:
    return "; ".join(f"{kind.name}: {kind.more:g} more of {kind.offers.describe()}"
                     + ("" if kind.declares_memory else " (memory not declared)")
                     for kind in kinds) or "none"

