"""`ser-ray monitor`: refusals that say what to do, both viewers started and stopped for real,
and optuna-dashboard as headless Chromium renders it, for a search while it runs and after."""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import psutil
import pytest

from ser_ray.cli import main
from ser_ray.experiment import read_study_record
from ser_ray.monitor import chromium_command, optuna_storage, tune_logs
from tests.experiment.builders import study_record, write_experiment
from tests.study.builders import write_study

HOST = "127.0.0.1"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed: apt-get install chromium "
    "(.ci/run installs it where it can)")
# How optuna-dashboard labels trial states in its trial list.
STATE_LABELS = {"COMPLETE": "Complete", "PRUNED": "Pruned", "RUNNING": "Running"}
# No proxy from the environment stands between a test and the local servers.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port_pair() -> int:
    """A port P with P and P + 1 free on 127.0.0.1 (the monitor takes both)."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind((HOST, 0))
            port = first.getsockname()[1]
            try:
                second.bind((HOST, port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two consecutive free ports on 127.0.0.1")


def optuna_experiment(directory: Path) -> Path:
    """A search's folder with an Optuna study of three trials: COMPLETE, PRUNED, RUNNING."""
    record = study_record("watched", "search", [], folds=[0, 1], seeds=[0], trials=3)
    search = record.search.model_copy(  # type: ignore[union-attr]
        update={"optuna_storage": f"sqlite:///{directory / 'optuna.db'}"})
    write_experiment(directory, record.model_copy(
        update={"search": search, "trial_storage": str(directory)}), [])
    study = optuna.create_study(study_name="watched", storage=search.optuna_storage,
                                direction="maximize")
    complete = study.ask()
    complete.report(0.40, 1)
    complete.report(0.55, 2)
    study.tell(complete, 0.55)
    pruned = study.ask()
    pruned.report(0.30, 1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.ask().report(0.35, 1)
    return directory


def get(url: str) -> tuple[int, str]:
    with LOCAL.open(url, timeout=10) as response:
        return response.status, response.read().decode()


@contextlib.contextmanager
def running_monitor(directory: Path, port: int, output: Path
                    ) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """`ser-ray monitor DIR --port P` in a subprocess, and the URLs it printed."""
    with output.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "ser_ray", "monitor", str(directory),
                                    "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield process, printed_urls(process, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


def printed_urls(process: subprocess.Popen, output: Path) -> dict[str, str]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        urls = dict(re.findall(r"^(optuna-dashboard|TensorBoard|Ray dashboard): +(\S+)$",
                               output.read_text(), re.MULTILINE))
        if {"optuna-dashboard", "TensorBoard"} <= urls.keys():
            return urls
        assert process.poll() is None, f"the monitor exited:\n{output.read_text()}"
        time.sleep(0.25)
    raise AssertionError(f"the monitor printed no URLs in 180 s:\n{output.read_text()}")


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def rendered_text(url: str, screenshot: Path) -> str:
    """The page's visible text once headless Chromium has run its scripts; a screenshot of it
    is kept as a test artefact."""
    completed = subprocess.run(
        chromium_command(CHROMIUM, url, screenshot, screenshot.parent,  # type: ignore[arg-type]
                         dump_dom=True), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert screenshot.stat().st_size > 0
    print(f"screenshot of {url}: {screenshot}")
    visible = re.sub(r"<(style|script)\b.*?</\1>", " ", completed.stdout, flags=re.DOTALL)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", visible)))


def lists_trial(text: str, number: int, state: str) -> bool:
    return re.search(rf"\bTrial {number} {STATE_LABELS[state]}\b", text) is not None


def test_a_folder_without_a_study_is_refused_with_what_to_do(tmp_path: Path, capsys) -> None:
    assert main(["monitor", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "not an experiment folder yet (no study.json" in error
    assert "ser-ray search STUDY.yaml --out DIR" in error


def test_a_study_without_an_optuna_study_is_refused_with_what_to_do(tmp_path: Path,
                                                                     capsys) -> None:
    directory = write_experiment(tmp_path / "ablation", study_record(
        "ablation", "one-factor", ["baseline"], folds=[0], seeds=[0]), [])
    assert main(["monitor", str(directory)]) == 2
    error = capsys.readouterr().err
    assert "has no Optuna study yet (no study in optuna.db)" in error
    assert f"ser-ray search STUDY.yaml --out {directory.resolve()})" in error
    assert not (directory / "monitor").exists()
    # The file alone is not enough: the driver may not have created its tables yet, and a
    # dashboard started now would race it doing the same.
    (directory / "optuna.db").touch()
    assert main(["monitor", str(directory)]) == 2
    assert "has no Optuna study yet" in capsys.readouterr().err


@pytest.mark.parametrize(("offset", "viewer"), [(0, "optuna-dashboard"), (1, "TensorBoard")])
def test_a_port_in_use_is_named_and_another_suggested(tmp_path: Path, capsys, offset: int,
                                                      viewer: str) -> None:
    directory = optuna_experiment(tmp_path / "study")
    port = free_port_pair()
    with socket.socket() as taken:
        taken.bind((HOST, port + offset))
        taken.listen()
        assert main(["monitor", str(directory), "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert f"port {port + offset} on 127.0.0.1 (for {viewer}) is in use" in error
    assert "choose other ports with --port P" in error
    assert not (directory / "monitor").exists()  # refused before anything started


def test_a_moved_folder_is_watched_from_where_it_is_now(tmp_path: Path) -> None:
    """study.json records absolute paths; a folder moved, or a shared mount seen at another
    path on this node, still shows its own Optuna study and Tune logs."""
    original = optuna_experiment(tmp_path / "original")
    moved = Path(shutil.move(original, tmp_path / "moved"))
    study = read_study_record(moved)
    assert str(original) in study.search.optuna_storage  # type: ignore[union-attr]
    assert optuna_storage(moved, study) == f"sqlite:///{moved / 'optuna.db'}"
    assert tune_logs(moved, study) == str(moved / "tune")


def test_monitor_serves_both_viewers_and_stops_them_on_ctrl_c(tmp_path: Path) -> None:
    directory = optuna_experiment(tmp_path / "study")
    port = free_port_pair()
    output = tmp_path / "monitor.out"
    with running_monitor(directory, port, output) as (process, urls):
        assert urls["optuna-dashboard"] == f"http://{HOST}:{port}/dashboard/studies/1"
        assert urls["TensorBoard"] == f"http://{HOST}:{port + 1}/"
        status, page = get(urls["optuna-dashboard"])
        assert status == 200 and "<title>Optuna Dashboard</title>" in page
        detail = json.loads(get(f"http://{HOST}:{port}/api/studies/1")[1])
        assert [trial["state"] for trial in detail["trials"]] == ["Complete", "Pruned",
                                                                   "Running"]
        status, page = get(urls["TensorBoard"])
        assert status == 200 and "TensorBoard" in page
        environment = json.loads(get(f"http://{HOST}:{port + 1}/data/environment")[1])
        assert environment["data_location"] == str(directory.resolve() / "tune")
        monitor = psutil.Process(process.pid)
        commands = [" ".join(child.cmdline()) for child in monitor.children()]
        assert len(commands) == 2 and all(f"--host {HOST}" in command for command in commands)
        assert any("optuna-dashboard" in command for command in commands)
        assert any("tensorboard" in command for command in commands)
        # TensorBoard's data server included.
        descendants = monitor.children(recursive=True)

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    assert not [child for child in descendants if alive(child)]
    # The console keeps the URLs; the viewers' own output went to their logs.
    console = output.read_text()
    assert "Listening on" not in console and "stopping optuna-dashboard and TensorBoard" in console
    logs = directory / "monitor"
    assert "Listening on" in (logs / "optuna-dashboard.log").read_text()
    assert (logs / "tensorboard.log").is_file()


@pytest.mark.parametrize("ending", [signal.SIGHUP, signal.SIGKILL])
def test_viewers_end_with_the_monitor_however_it_ends(tmp_path: Path, ending: int) -> None:
    """A closed terminal or dropped ssh session (SIGHUP) stops the viewers as Ctrl-C does;
    a monitor killed outright (SIGKILL) takes its viewers with it (their parent-death
    signal): neither leaves a server holding the ports."""
    directory = optuna_experiment(tmp_path / "study")
    with running_monitor(directory, free_port_pair(), tmp_path / "monitor.out") as (process, _):
        monitor = psutil.Process(process.pid)
        viewers = monitor.children()
        assert len(viewers) == 2
        process.send_signal(ending)
        process.wait(timeout=60)
        gone, left = psutil.wait_procs(viewers, timeout=30)
    assert not [viewer for viewer in left if alive(viewer)]


def tensorboard_runs(port: int) -> list[str]:
    """The Tune trials TensorBoard lists (it looks for new event files every 5 s)."""
    deadline = time.monotonic() + 30
    while True:
        runs = json.loads(get(f"http://{HOST}:{port}/data/runs")[1])
        if len(runs) >= 3 or time.monotonic() > deadline:
            return runs
        time.sleep(1)


@pytest.mark.slow
@needs_chromium
def test_the_dashboard_renders_every_trial_state_in_a_browser(tmp_path: Path) -> None:
    directory = optuna_experiment(tmp_path / "study")
    with running_monitor(directory, free_port_pair(), tmp_path / "monitor.out") as (_, urls):
        text = rendered_text(urls["optuna-dashboard"] + "/trials", tmp_path / "trials.png")
    assert "watched (id=1)" in text and "3 Trials" in text
    for number, state in enumerate(("COMPLETE", "PRUNED", "RUNNING")):
        assert lists_trial(text, number, state)


def optuna_study_exists(database: Path, name: str) -> bool:
    """Read-only, so that polling never races the driver creating the storage's tables."""
    if not database.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return bool(db.execute("SELECT 1 FROM studies WHERE study_name = ?",
                                   (name,)).fetchall())
    except sqlite3.OperationalError:  # the tables are not there yet
        return False


def optuna_trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as the driver has written them so far."""
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.mark.slow
@pytest.mark.ray  # the search subprocess starts its own local Ray cluster
@needs_chromium
def test_the_dashboard_renders_a_running_search_and_its_finished_trials(tmp_path: Path) -> None:
    study = write_study(tmp_path / "search.yaml", "watched-search",
                        budget={"epochs": 3, "trials": 3},
                        search={"parameters": {"train.lr": {"type": "float", "low": 1e-4,
                                                            "high": 1e-2, "log": True}},
                                "scheduler": {"kind": "asha", "grace_period": 1}})
    directory = tmp_path / "experiment"
    storage = f"sqlite:///{directory / 'optuna.db'}"
    with (tmp_path / "search.out").open("w") as sink:
        search = subprocess.Popen(
            [sys.executable, "-m", "ser_ray", "search", str(study), "--out", str(directory),
             "--cache", str(tmp_path / "cache")], stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not optuna_study_exists(directory / "optuna.db", "watched-search"):
            assert search.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "search.out").read_text()[-3000:]
            time.sleep(0.5)
        port = free_port_pair()
        with running_monitor(directory, port, tmp_path / "monitor.out") as (_, urls):
            # The search's local Ray cluster serves its dashboard.
            assert urls.get("Ray dashboard") == f"http://{HOST}:8265"
            trial_list = urls["optuna-dashboard"] + "/trials"
            assert "watched-search" in rendered_text(urls["optuna-dashboard"],
                                                     tmp_path / "study.png")
            # While it runs: the trial list shows a trial the driver holds RUNNING.
            seen_running = None
            shot = 0
            while seen_running is None and search.poll() is None:
                running = [trial.number for trial in optuna_trials(storage, "watched-search")
                           if trial.state.name == "RUNNING"]
                if not running:
                    time.sleep(0.5)
                    continue
                shot += 1
                text = rendered_text(trial_list, tmp_path / f"running-{shot}.png")
                seen_running = next((number for number in running
                                     if lists_trial(text, number, "RUNNING")), None)
            assert seen_running is not None, "no RUNNING trial was rendered while it ran"
            assert search.wait(timeout=600) == 0, (tmp_path / "search.out").read_text()[-3000:]

            # After it ends: every trial with its final state.
            trials = optuna_trials(storage, "watched-search")
            assert len(trials) == 3
            assert {trial.state.name for trial in trials} <= {"COMPLETE", "PRUNED"}
            text = rendered_text(trial_list, tmp_path / "finished.png")
            assert "watched-search" in text and "3 Trials" in text
            for trial in trials:
                assert lists_trial(text, trial.number, trial.state.name), trial
            assert len(tensorboard_runs(port + 1)) >= 3
    finally:
        if search.poll() is None:
            for process in psutil.Process(search.pid).children(recursive=True):
                process.kill()
            search.kill()
            search.wait()


@pytest.mark.slow
@needs_chromium
def test_a_screenshot_of_the_trial_list_is_taken_and_the_viewers_stopped(tmp_path: Path,
                                                                         capsys) -> None:
    """`--screenshot PNG` (how the README's picture is made): the viewers start, Chromium
    pictures the study's rendered trial list, and the viewers stop again."""
    directory = optuna_experiment(tmp_path / "study")
    picture = tmp_path / "shots" / "monitor.png"
    assert main(["monitor", str(directory), "--port", str(free_port_pair()),
                 "--screenshot", str(picture)]) == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert "/dashboard/studies/1/trials" in capsys.readouterr().out
    assert not [child for child in psutil.Process().children(recursive=True)
                if "optuna-dashboard" in " ".join(child.cmdline())]
