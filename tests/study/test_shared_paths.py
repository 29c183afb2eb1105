"""Shared storage checked, not assumed: what a node sees, the refusal that names it, the check
on the shared Ray session, and for real a second `ray start` node (in its own mount namespace)
that does not see the experiment folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from ser_ray.errors import UserError
from ser_ray.study.cluster import check_shared_paths, require_visible
from ser_ray.study.shared_paths import MARKER_PREFIX, Marker, NodeReport, look_here, refusal

RAY = Path(sys.executable).parent / "ray"
HEAD_ID, OTHER_ID = "a1b2c3d4" + "0" * 48, "e5f6a7b8" + "1" * 48


def markers_in(*directories: Path) -> list[Path]:
    return [path for directory in directories for path in directory.glob(MARKER_PREFIX + "*")]


def test_a_node_that_sees_the_driver_s_markers_and_corpus_sizes_has_no_problem(
        tmp_path: Path) -> None:
    (tmp_path / ".m").write_text("token")
    (tmp_path / "a.wav").write_bytes(b"12345")
    seen = look_here([Marker("feature cache", str(tmp_path), ".m", "token")],
                     {str(tmp_path / "a.wav"): 5})
    assert seen.problems == () and seen.hostname == socket.gethostname()


def test_a_node_names_each_path_it_does_not_see_as_the_driver_does(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / ".m").write_text("someone else's")
    (tmp_path / "a.wav").write_bytes(b"123")
    seen = look_here([Marker("experiment folder", str(tmp_path / "gone"), ".m", "t"),
                      Marker("feature cache", str(tmp_path), ".m", "t"),
                      Marker("trial storage", str(other), ".m", "t")],
                     {str(tmp_path / "a.wav"): 5, str(tmp_path / "b.wav"): 1})
    assert seen.problems == (
        f"experiment folder {tmp_path / 'gone'}: not there",
        f"feature cache {tmp_path}: a different folder (the driver's marker is not in it)",
        f"trial storage {other}: a different folder (the marker holds another token)",
        f"corpus file {tmp_path / 'a.wav'}: 3 bytes, the driver sees 5",
        f"corpus file {tmp_path / 'b.wav'}: not there",
    )


def test_the_refusal_names_every_node_with_a_problem_its_paths_and_what_to_do() -> None:
    message = refusal([
        NodeReport(HEAD_ID, "10.0.0.1", "head", ()),
        NodeReport(OTHER_ID, "10.0.0.2", "gpu-7", ("experiment folder /runs/x: not there",)),
        NodeReport("c" * 56, "10.0.0.3", None, ("did not run the check within 60 s",)),
    ])
    assert message is not None
    lines = message.splitlines()
    assert lines[0] == "2 of 3 Ray nodes do not see the paths this study shares:"
    assert lines[1:5] == ["  node 10.0.0.2 (id e5f6a7b8, host gpu-7):",
                          "    experiment folder /runs/x: not there",
                          "  node 10.0.0.3 (id cccccccc):",
                          "    did not run the check within 60 s"]
    assert "a1b2c3d4" not in message and "10.0.0.1" not in message
    for advice in ("same shared file system", "same path on every node", "--out", "--cache",
                   "README's cluster section"):
        assert advice in lines[-1]
    assert refusal([NodeReport(HEAD_ID, "10.0.0.1", "head", ())]) is None


def test_a_path_a_later_node_does_not_see_is_refused_naming_this_node(tmp_path: Path) -> None:
    require_visible(tmp_path, "feature cache")
    with pytest.raises(UserError) as caught:
        require_visible(tmp_path / "gone", "feature cache")
    message = str(caught.value)
    assert f"feature cache {tmp_path / 'gone'} is not there on node " in message
    assert f"host {socket.gethostname()}" in message and "--cache" in message


def test_a_directory_the_driver_cannot_write_is_refused_before_any_node_is_asked(
        tmp_path: Path) -> None:
    with pytest.raises(UserError, match="experiment folder .*missing: writing a marker into"):
        check_shared_paths({"feature cache": tmp_path, "experiment folder": tmp_path / "missing"})
    assert markers_in(tmp_path) == []  # the marker written before is removed
    with pytest.raises(UserError, match="corpus file .*gone.wav: cannot read the file"):
        check_shared_paths({"feature cache": tmp_path}, [tmp_path / "gone.wav"])


@pytest.mark.ray
def test_every_node_of_the_session_sees_its_paths_and_the_markers_are_removed(
        ray_session, tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"12345")
    (tmp_path / "cache").mkdir()
    check_shared_paths({"experiment folder": tmp_path, "feature cache": tmp_path / "cache"},
                       [tmp_path / "a.wav"])
    assert markers_in(tmp_path, tmp_path / "cache") == []


@pytest.mark.ray
def test_a_node_that_does_not_answer_in_time_is_named_not_waited_for(
        ray_session, tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        check_shared_paths({"experiment folder": tmp_path}, timeout_s=0)
    node_id = ray_session.get_runtime_context().get_node_id()
    assert f"(id {node_id[:8]}, host " in str(caught.value)
    assert "did not run the check within 0 s" in str(caught.value)
    assert markers_in(tmp_path) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def can_hide_a_folder(folder: Path) -> bool:
    """Whether a process here can mount a tmpfs over `folder` in a private mount namespace
    (`unshare --mount`: root or CAP_SYS_ADMIN)."""
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private",
                               "mount", "-t", "tmpfs", "tmpfs", str(folder)],
                              capture_output=True).returncode == 0
    except OSError:
        return False


@dataclass
class Cluster:
    head: str = ""  # node ids
    other: str = ""
    sessions: set[int] = field(default_factory=set)  # every process of the cluster is in one


@contextlib.contextmanager
def two_node_cluster(hidden: Path) -> Iterator[Cluster]:
    """A `ray start --head` node and a second node whose processes see an empty tmpfs over
    `hidden` (their own mount namespace), the driver connected. Both nodes are stopped
    afterwards."""
    import ray
    import ray.util

    ray.shutdown()  # the shared test session's cluster; this test runs last
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                       PATH=f"{RAY.parent}:{environment['PATH']}")
    # Short temp dirs: Ray's socket paths live under them (108 characters at most).
    temp = Path(tempfile.mkdtemp(prefix="ser-ray-", dir="/tmp"))
    ip, port = ray.util.get_node_ip_address(), free_port()
    common = ["--num-cpus=1", "--disable-usage-stats", "--block",
              f"--dashboard-agent-listen-port={free_port()}"]
    nodes: list[subprocess.Popen] = []
    cluster = Cluster()
    try:
        with open(temp / "head.log", "w") as log:
            nodes.append(subprocess.Popen(
                [str(RAY), "start", "--head", f"--port={port}", "--include-dashboard=false",
                 f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
                 f"--temp-dir={temp / 'head'}", *common],
                env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        cluster.sessions.add(nodes[-1].pid)
        wait_for(lambda: port_open(ip, port), nodes, temp, "the head's GCS port")
        mount_and_join = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
        with open(temp / "node.log", "w") as log:
            nodes.append(subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount_and_join,
                 "sh", str(hidden), str(RAY), "start", f"--address={ip}:{port}",
                 f"--temp-dir={temp / 'node'}",
                 *(option for option in common if "listen-port" not in option),
                 f"--dashboard-agent-listen-port={free_port()}"],
                env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        cluster.sessions.add(nodes[-1].pid)  # unshare and sh exec: the same process
        ray.init(address=f"{ip}:{port}", logging_level="ERROR")
        wait_for(lambda: len(alive_nodes()) == 2, nodes, temp, "2 alive nodes")
        for node in alive_nodes():
            if "node:__internal_head__" in node["Resources"]:
                cluster.head = node["NodeID"]
            else:
                cluster.other = node["NodeID"]
        yield cluster
    finally:
        ray.shutdown()
        stop(nodes)
        shutil.rmtree(temp, ignore_errors=True)


def alive_nodes() -> list[dict]:
    import ray

    return [node for node in ray.nodes() if node["Alive"]]


def port_open(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((ip, port)) == 0


def wait_for(condition, nodes: list[subprocess.Popen], temp: Path, what: str,
             timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        exited = [node for node in nodes if node.poll() is not None]
        if exited or time.monotonic() > deadline:
            logs = "\n".join(log.read_text()[-2000:] for log in sorted(temp.glob("*.log")))
            pytest.fail(f"no {what} within {timeout_s} s (a `ray start` exited: "
                        f"{bool(exited)}):\n{logs}")
        time.sleep(0.5)


def stop(nodes: list[subprocess.Popen]) -> None:
    """`ray start --block` stops its node's processes on SIGTERM; whatever is left of a node's
    session (it leads one) is killed. Not `ray stop`: that ends every Ray on this machine."""
    for node in nodes:
        node.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            node.wait(timeout=45)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    for process in session_members({node.pid for node in nodes}):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(session_members({node.pid for node in nodes}), timeout=10)


def session_members(sessions: set[int]) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(process.pid) in sessions and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


@pytest.mark.slow
@pytest.mark.cluster
def test_a_node_that_does_not_see_the_experiment_folder_is_refused_and_named(
        tmp_path: Path) -> None:
    hidden, visible = tmp_path / "hidden", tmp_path / "visible"
    (hidden / "exp").mkdir(parents=True)
    if not can_hide_a_folder(hidden):
        pytest.skip("hiding a folder from one Ray node needs a private mount namespace "
                    "(`unshare --mount` and `mount -t tmpfs`: root or CAP_SYS_ADMIN)")
    visible.mkdir()
    (hidden / "a.wav").write_bytes(b"12345")
    (visible / "b.wav").write_bytes(b"123")
    started = time.monotonic()
    with two_node_cluster(hidden) as cluster:
        with pytest.raises(UserError) as caught:
            check_shared_paths({"experiment folder": hidden / "exp", "feature cache": visible},
                               [hidden / "a.wav", visible / "b.wav"])
        check_shared_paths({"feature cache": visible}, [visible / "b.wav"])
    message = str(caught.value)
    print(f"two-node cluster test: {time.monotonic() - started:.1f} s\n{message}")
    assert message.startswith("1 of 2 Ray nodes do not see the paths this study shares:")
    assert f"(id {cluster.other[:8]}, host {socket.gethostname()}):" in message
    assert f"    experiment folder {hidden / 'exp'}: not there" in message
    assert f"    corpus file {hidden / 'a.wav'}: not there" in message
    assert cluster.head[:8] not in message and str(visible) not in message
    assert markers_in(hidden / "exp", visible) == []
    assert len(cluster.sessions) == 2 and session_members(cluster.sessions) == []
