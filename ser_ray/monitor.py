"""`ser-ray monitor DIR`: the viewers of one study, started together and stopped together.

optuna-dashboard shows the study's Optuna storage (every trial, its state, its per-epoch
intermediate values) and TensorBoard the Tune logs in its trial storage. Both run as child
processes bound to 127.0.0.1 (on a cluster node the user forwards the ports over ssh), each in
a process group of its own: the terminal's Ctrl-C reaches only this process, which then ends
each group whole, TensorBoard's data server included. Their output goes to DIR/monitor/ so
the console keeps the URLs. Neither Ray nor torch is imported: the Ray dashboard is looked
for with a plain HTTP GET.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ser_ray.errors import UserError
from ser_ray.experiment import OPTUNA_FILE, STUDY_FILE, StudyRecord, read_study_record
from ser_ray.study.storage import TUNE_DIR, storage_child

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
RAY_DASHBOARD = f"http://{HOST}:8265"
LOG_DIR = "monitor"
SQLITE_PREFIX = "sqlite:///"
# TensorBoard takes several seconds to start on a busy 2-core machine.
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
# Milliseconds of virtual time headless Chromium gives the dashboard's scripts to render.
RENDER_BUDGET_MS = 5000
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Local servers only: a proxy from the environment must not answer for them.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Viewer:
    """A viewer server to start: its name, command line, port and the URL it answers on."""

    name: str
    command: tuple[str, ...]
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def log_name(self) -> str:
        return f"{self.name.lower()}.log"


@dataclass(frozen=True)
class Running:
    viewer: Viewer
    process: subprocess.Popen
    log: Path


def run_monitor(experiment_dir: Path, port: int = DEFAULT_PORT,
                screenshot: Path | None = None) -> None:
    """Start optuna-dashboard on `port` and TensorBoard on `port` + 1 for the study in
    `experiment_dir`, print their URLs, and stop both on Ctrl-C or SIGTERM; with
    `screenshot`, save headless Chromium's picture of the study's trial list there and stop."""
    experiment_dir = Path(experiment_dir).expanduser().resolve()
    study = _read_study(experiment_dir)
    planned = viewers(experiment_dir, study, port)
    for viewer in planned:
        _check_port_free(viewer, port)
    log_dir = experiment_dir / LOG_DIR
    log_dir.mkdir(exist_ok=True)
    running: list[Running] = []
    # A closed terminal or a dropped ssh session (SIGHUP) stops the viewers like Ctrl-C.
    previous = {number: signal.signal(number, signal.default_int_handler)
                for number in STOP_SIGNALS}
    try:
        for viewer in planned:
            running.append(_start(viewer, log_dir))
        deadline = time.monotonic() + START_TIMEOUT_S
        for started in running:
            _wait_until_answering(started, deadline)
        _say(_urls(study, planned, log_dir))
        if screenshot is not None:
            _screenshot(_study_page(planned[0].url, _study_name(study)) + "/trials",
                        screenshot, log_dir)
            return
        _watch(running)
    except KeyboardInterrupt:
        _say("stopping optuna-dashboard and TensorBoard")
    finally:
        _stop(running)
        for number, handler in previous.items():
            signal.signal(number, handler)


def _say(text: str) -> None:
    """Printed at once: the URLs are wanted while the monitor runs, also through a pipe."""
    print(text, flush=True)


def viewers(experiment_dir: Path, study: StudyRecord, port: int) -> list[Viewer]:
    """optuna-dashboard on the study's Optuna storage, TensorBoard on its Tune logs."""
    if not 1 <= port <= 65534:
        raise UserError(f"--port {port}: give a port from 1 to 65534 (TensorBoard takes the "
                        f"next one)")
    storage = optuna_storage(experiment_dir, study)
    logs = tune_logs(experiment_dir, study)
    return [
        Viewer("optuna-dashboard", (_script("optuna-dashboard"), storage, "--host", HOST,
                                    "--port", str(port)), port),
        Viewer("TensorBoard", (_script("tensorboard"), "--logdir", logs, "--host", HOST,
                               "--port", str(port + 1)), port + 1),
    ]


def optuna_storage(experiment_dir: Path, study: StudyRecord) -> str:
    """The study's Optuna storage URL: the one study.json records (searches), else the
    folder's optuna.db. A recorded SQLite file that is gone while the folder holds one means
    the folder was moved, or is a shared mount seen at another path on this node."""
    own = experiment_dir / OPTUNA_FILE
    recorded = study.search.optuna_storage if study.search is not None else None
    if recorded is not None and not recorded.startswith(SQLITE_PREFIX):
        return recorded  # a database server: this node reaches it or the dashboard says why
    database = Path(recorded.removeprefix(SQLITE_PREFIX)) if recorded else own
    if not database.is_file():
        database = own
    if not _holds_a_study(database):
        raise UserError(f"{experiment_dir} has no Optuna study yet (no study in "
                        f"{OPTUNA_FILE}): the study is still preparing its data (run this "
                        f"again in a minute), or it never ran (ser-ray search STUDY.yaml --out "
                        f"{experiment_dir})")
    return f"{SQLITE_PREFIX}{database}"


def _holds_a_study(database: Path) -> bool:
    """Whether the SQLite file holds a study already, read without writing: the driver
    creates the tables, and a dashboard started before it would race it doing the same."""
    if not database.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro",
                                                uri=True)) as connection:
            return connection.execute("SELECT COUNT(*) FROM studies").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def tune_logs(experiment_dir: Path, study: StudyRecord) -> str:
    """Where the study's Tune runs write their TensorBoard event files: a local directory, or
    the URI of a remote trial storage, which TensorBoard reads itself (s3:// through boto3,
    other schemes through fsspec, with this machine's packages and credentials)."""
    address = urllib.parse.urlsplit(study.trial_storage)
    if address.scheme not in ("", "file"):
        return storage_child(study.trial_storage, TUNE_DIR)
    local = Path(address.path if address.scheme else study.trial_storage)
    # A local storage that is not here: the folder was moved or is mounted at another path,
    # and by default a study keeps its trials in the folder itself.
    return str((local if local.is_dir() else experiment_dir) / TUNE_DIR)


def _read_study(experiment_dir: Path) -> StudyRecord:
    if not (experiment_dir / STUDY_FILE).is_file():
        raise UserError(f"{experiment_dir} is not an experiment folder yet (no {STUDY_FILE}, "
                        f"which a study writes once its data is prepared): give the --out "
                        f"folder of a study (ser-ray search STUDY.yaml --out DIR), or run this "
                        f"again when its data is ready")
    return read_study_record(experiment_dir)


def _script(name: str) -> str:
    """A console script of the environment ser-ray runs in, else the first on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    for directory in os.get_exec_path():
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise UserError(f"{name} is not installed: pip install 'ser-ray[monitor]' (TensorBoard "
                    f"and optuna-dashboard)")


def _check_port_free(viewer: Viewer, first_port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the viewers' servers do: a port left in TIME_WAIT by a closed server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, viewer.port))
        except OSError as error:
            raise UserError(
                f"port {viewer.port} on {HOST} (for {viewer.name}) is in use "
                f"({(error.strerror or str(error)).lower()}): choose other ports with --port P "
                f"(optuna-dashboard gets P, TensorBoard P+1; now --port {first_port})") from error


def _start(viewer: Viewer, log_dir: Path) -> Running:
    log = log_dir / viewer.log_name
    with log.open("w") as output:
        process = subprocess.Popen(viewer.command, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_end_with_parent)
    return Running(viewer, process, log)


def _end_with_parent() -> None:
    """In the child, before the viewer starts: Linux sends it SIGTERM when the monitor dies
    without stopping it (SIGKILL), so no server is left holding the ports."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_answering(started: Running, deadline: float) -> None:
    viewer = started.viewer
    while not answers(viewer.url):
        status = started.process.poll()
        if status is not None:
            raise UserError(f"{viewer.name} exited (status {status}) before answering on "
                            f"{viewer.url}: {_last_line(started.log)} (log: {started.log})")
        if time.monotonic() > deadline:
            raise UserError(f"{viewer.name} did not answer on {viewer.url} within "
                            f"{START_TIMEOUT_S:.0f} s (log: {started.log})")
        time.sleep(0.25)


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether a server answers `url` with 200 OK (after redirects)."""
    try:
        with _LOCAL.open(url, timeout=timeout_s) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # nothing there, or not an HTTP server
        return False


def _urls(study: StudyRecord, planned: list[Viewer], log_dir: Path) -> str:
    dashboard, tensorboard = planned
    lines = [f"optuna-dashboard: {_study_page(dashboard.url, _study_name(study))}",
             f"TensorBoard:      {tensorboard.url}"]
    if answers(RAY_DASHBOARD):
        lines.append(f"Ray dashboard:    {RAY_DASHBOARD}")
    lines.append(f"logs in {log_dir}; Ctrl-C stops both")
    return "\n".join(lines)


def _study_name(study: StudyRecord) -> str:
    return study.search.optuna_study if study.search is not None else study.name


def _screenshot(url: str, path: Path, log_dir: Path) -> None:
    """Headless Chromium's picture of `url` once the dashboard's scripts have rendered it."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise UserError("--screenshot needs headless Chromium: apt-get install chromium")
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(chromium_command(chromium, url, path, log_dir),
                               capture_output=True, text=True, timeout=120)
    if completed.returncode != 0 or not path.is_file():
        raise UserError(f"Chromium could not take the screenshot of {url}: "
                        f"{completed.stderr.strip()[-500:]}")
    _say(f"screenshot of {url}: {path}")


def chromium_command(chromium: str, url: str, screenshot: Path, profile_dir: Path,
                     dump_dom: bool = False) -> list[str]:
    """Headless Chromium picturing `url` (and printing its DOM) once the page's scripts have
    had RENDER_BUDGET_MS of virtual time: the dashboard is a JavaScript app."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={profile_dir / 'chromium-profile'}", "--window-size=1400,900",
            f"--virtual-time-budget={RENDER_BUDGET_MS}", f"--screenshot={screenshot}",
            *(["--dump-dom"] if dump_dom else []), url]


def _study_page(base: str, study_name: str) -> str:
    """The dashboard's page of the study (its history and intermediate values), else its
    list of studies when the storage names no such study."""
    try:
        with _LOCAL.open(base + "api/studies", timeout=5) as response:
            studies = json.load(response)["study_summaries"]
    except (OSError, ValueError, KeyError):
        return base + "dashboard"
    for summary in studies:
        if summary.get("study_name") == study_name:
            return f"{base}dashboard/studies/{summary['study_id']}"
    return base + "dashboard"


def _watch(running: list[Running]) -> None:
    """Wait for Ctrl-C; a viewer that stops on its own ends the monitor."""
    while True:
        for started in running:
            status = started.process.poll()
            if status is not None:
                raise UserError(f"{started.viewer.name} stopped (status {status}): "
                                f"{_last_line(started.log)} (log: {started.log})")
        time.sleep(1)


def _stop(running: list[Running]) -> None:
    """SIGTERM to each viewer's process group, then SIGKILL to whatever of a group is left
    once its leader has exited or the grace period is over (the viewers only read, so
    nothing is lost). A second Ctrl-C meanwhile must not leave a group behind."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        for started in running:
            _signal_group(started.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for started in running:
            try:
                started.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(started.process, signal.SIGKILL)
            started.process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _signal_group(process: subprocess.Popen, signal_number: int) -> None:
    try:
        os.killpg(process.pid, signal_number)  # start_new_session: its pid is its group's
    except ProcessLookupError:
        pass


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
