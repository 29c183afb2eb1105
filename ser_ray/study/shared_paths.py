"""Shared storage checked, not assumed: every node sees the paths a study shares.

A study on several nodes writes its feature cache, experiment folder and local trial storage
from tasks and trials that run anywhere, and reads the corpus there too. A path that is
node-local somewhere fails late and quietly: features land on that node's own disk, trials
there find no complete feature cache, an unmounted corpus reads as unreadable utterances. So,
before any work, the driver writes a marker holding a random token into each shared directory
and one tiny task pinned to every alive node reads it back (and sizes a few corpus files, which
are never written); every node that sees something else is named in the refusal. Nodes that
join later (the autoscaler) are checked where the study's code runs on them, by
`require_visible`.

Looking (`look_here`) and wording the refusal (`refusal`) need no Ray; `check_shared_paths`
runs the looking on every node.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ser_ray.errors import UserError, unreadable_reason

MARKER_PREFIX = ".ser-ray-shared-"
# How long every alive node gets to run the check (start a worker, read a few files).
NODE_CHECK_TIMEOUT_S = 60.0
ADVICE = ("every node must see them at the same path: mount the same shared file system "
          "(NFS, EFS, Filestore, ...) at the same path on every node and pass absolute paths "
          "on it with --out and --cache (see the README's cluster section)")


@dataclass(frozen=True)
class Marker:
    """The file the driver wrote into a shared directory, and the token it holds."""

    role: str
    directory: str
    name: str
    token: str


@dataclass(frozen=True)
class Sighting:
    """What one node saw: its hostname and each path it does not see as the driver does."""

    hostname: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class NodeReport:
    """One alive node and its problems (none: it sees every shared path); `hostname` is None
    when the check could not run there."""

    node_id: str
    ip: str
    hostname: str | None
    problems: tuple[str, ...]


def look_here(markers: Sequence[Marker], corpus_sizes: Mapping[str, int]) -> Sighting:
    """Read each marker and size each corpus file on this node (the task every node runs)."""
    problems = []
    for marker in markers:
        where = f"{marker.role} {marker.directory}"
        try:
            content = (Path(marker.directory) / marker.name).read_text()
        except FileNotFoundError:
            seen = "a different folder (the driver's marker is not in it)" \
                if Path(marker.directory).is_dir() else "not there"
            problems.append(f"{where}: {seen}")
            continue
        except OSError as error:
            marker_path = Path(marker.directory) / marker.name
            problems.append(f"{where}: {unreadable_reason(marker_path, error, 'marker')}")
            continue
        if content != marker.token:
            problems.append(f"{where}: a different folder (the marker holds another token)")
    for name, expected in corpus_sizes.items():
        try:
            size = os.stat(name).st_size
        except OSError as error:
            seen = "not there" if isinstance(error, FileNotFoundError) \
                else unreadable_reason(Path(name), error)
            problems.append(f"corpus file {name}: {seen}")
            continue
        if size != expected:
            problems.append(f"corpus file {name}: {size} bytes, the driver sees {expected}")
    return Sighting(socket.gethostname(), tuple(problems))


def refusal(reports: Sequence[NodeReport]) -> str | None:
    """The message that names every node with a problem and each of its paths; None when
    every node sees every shared path."""
    failing = [report for report in reports if report.problems]
    if not failing:
        return None
    lines = [f"{len(failing)} of {len(reports)} Ray nodes do not see the paths this study "
             "shares:"]
    for report in failing:
        lines.append(f"  {node_name(report.node_id, report.ip, report.hostname)}:")
        lines += [f"    {problem}" for problem in report.problems]
    return "\n".join([*lines, ADVICE[0].upper() + ADVICE[1:] + "."])


def node_name(node_id: str, ip: str, hostname: str | None) -> str:
    """A node as a person finds it: IP, node id (its first 8 characters; `ray list nodes`
    shows the whole) and hostname when known."""
    host = f", host {hostname}" if hostname else ""
    return f"node {ip} (id {node_id[:8]}{host})"


def check_shared_paths(paths: Mapping[str, Path], corpus_files: Sequence[Path] = (), *,
                       timeout_s: float = NODE_CHECK_TIMEOUT_S) -> None:
    """Refuse (UserError) unless every alive Ray node sees each directory of `paths` (role →
    a writable directory the driver sees) as the driver does, and each of `corpus_files` with
    the driver's size. The markers written for it are removed again, whatever happens.

    Every alive node runs one task (no CPU asked, so a busy node runs it too), the driver's
    own included: on one node the check costs a fraction of a second and still catches a
    driver on another machine (Ray Client). A node that has not answered within
    `timeout_s` is named as such, not waited for."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    sizes = {os.path.abspath(path): _driver_size(Path(os.path.abspath(path)))
             for path in corpus_files}
    markers = [Marker(role, os.path.abspath(directory), MARKER_PREFIX + secrets.token_hex(8),
                      secrets.token_hex(16)) for role, directory in paths.items()]
    if not markers and not sizes:
        return
    written: list[Path] = []
    try:
        for marker in markers:
            written.append(Path(marker.directory) / marker.name)
            _write(marker)
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
        import ray.util

        return f"node {ray.util.get_node_ip_address()} (host {hostname})"
    except Exception:  # no route to find an IP with: the hostname still names the node
        return f"host {hostname}"


def _report(node: Mapping, hostname: str | None, problems: tuple[str, ...]) -> NodeReport:
    return NodeReport(node["NodeID"], node["NodeManagerAddress"],
                      hostname or node.get("NodeManagerHostname"), problems)


def _write(marker: Marker) -> None:
    try:
        (Path(marker.directory) / marker.name).write_text(marker.token)
    except OSError as error:
        cause = (error.strerror or str(error)).lower()
        raise UserError(f"cannot check that every node sees the {marker.role} "
                        f"{marker.directory}: writing a marker into it failed ({cause})") \
            from error


def _driver_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise UserError(f"corpus file {path}: {unreadable_reason(path, error)}") from error
