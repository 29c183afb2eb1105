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

Looking (`look_here`) and wording the refusal (`refusal`) need no Ray;
`ser_ray.study.cluster.check_shared_paths` runs the looking on every node.
"""

from __future__ import annotations

import os
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


def write_marker(marker: Marker) -> None:
    try:
        (Path(marker.directory) / marker.name).write_text(marker.token)
    except OSError as error:
        cause = (error.strerror or str(error)).lower()
        raise UserError(f"cannot check that every node sees the {marker.role} "
                        f"{marker.directory}: writing a marker into it failed ({cause})") \
            from error


def driver_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as error:
        raise UserError(f"corpus file {path}: {unreadable_reason(path, error)}") from error
