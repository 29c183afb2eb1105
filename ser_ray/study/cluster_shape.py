"""The nodes a study's cluster has now and the ones its autoscaler can still start (no Ray
here: `ser_ray.study.cluster` reads them from the cluster).

A study is refused up front only when one trial fits on no node the cluster can ever have;
a trial that fits only on a node type the autoscaler has not started yet waits for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ser_ray.study.schema import ResourceAmounts


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


def describe_node_types(kinds: list[NodeType]) -> str:
    return "; ".join(f"{kind.name}: {kind.more:g} more of {kind.offers.describe()}"
                     + ("" if kind.declares_memory else " (memory not declared)")
                     for kind in kinds) or "none"

