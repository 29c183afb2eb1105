"""`ser-ray bench scale`: what a trial pays to get its features, the former way and from the
cache's shared arrays, measured in one run on a cache of the size asked for.

The cache is synthetic but laid out exactly as the feature stage writes one (Parquet parts of
64 utterances with every STFT version and augmentation of each, byte-stream-split + LZ4
features, then the arrays), so that only the feature values are made up. It is built once per
size under `--cache-root` and reused.

Two trials are measured, each holding every row of its STFT versions (originals and augmented
copies: training; originals: test):
- one STFT version (a scale × version or ECA trial), the former way and from the arrays;
- every version of the cache (an STFT-augmentation trial), from the arrays only: the former
  way would hold the whole cache privately in each of the T processes, more than this
  benchmark may assume a machine has.
Each way runs in fresh processes that import what a training process imports, then hold the
rows:
- parquet: what the loader did before the arrays, and what a pyarrow script would do: read
  the cache filtered to the versions, sort, and convert the feature column to one array;
- arrays: select the rows (`load_features`) and make the standardizer's pass over them
  (`feature_moments`), which reads each row once (the pages are then resident and shared).
Figures: load time, with the cache's files in the page cache (as for every trial after the
first on a node) and read from disk; the process's peak memory growth while loading (peak
RSS less the RSS before; it counts the shared pages of the arrays it touched, so it bounds
its private memory from above, which is reported apart as the anonymous memory it keeps) over
the bytes of the rows it uses; the memory of T processes holding their rows over that of one
(`concurrent_memory_ratio`), as whole processes: memory is every page a group of processes
maps, counted once (`_memory_of`), so each process's own interpreter and libraries (about
0.3 GiB, some of it shared between them) are in it; the same for what holding the rows adds
(`concurrent_feature_memory_ratio`); and what the ratio would be if the rows were held once
and added nothing else (`concurrent_memory_ratio_rows_once`): how far the measured ratio is
from what any layout of the rows could reach beside T interpreters.

`--memory-limit` also runs, each in a memory cgroup with the cache's pages dropped first:
both ways of loading, in a cgroup of that size; and one epoch of a real trial (the training
loop, fold 0 of five session folds, the papers' smallest ECA-CNN) in a cgroup of the memory
Ray reserves for that trial, which is less than its features at IEMOCAP size: the arrays
page in and out on demand.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

# These imports are also what every measured process holds before it says it is idle: what a
# training process imports (the loader, the training loop and its data).
from ser_ray.corpus.manifest import write_manifest
from ser_ray.errors import UserError
from ser_ray.experiment import TrainConfig
from ser_ray.features import cache
from ser_ray.features.arrays import with_complete_arrays, write_arrays
from ser_ray.features.featurize import feature_schema, parquet_options
from ser_ray.features.leakage import ORIGINAL, derived_utterance_id
from ser_ray.features.loader import ROW_ORDER, load_features
from ser_ray.folds import FoldProtocol, check_folds, make_folds, write_folds
from ser_ray.train.config import ModelChoice, TrainJob
from ser_ray.train.data import feature_moments
from ser_ray.train.loop import LockstepRun

FEATURE_SHAPE = (64, 601)  # log-Mel at the papers' settings: 64 bands × 601 frames
WAYS = ("parquet", "arrays")
# The trial trained under --memory-limit: the papers' smallest ECA-CNN, scoring in batches of
# 64, on the last two STFT versions of the cache (an STFT-augmentation trial of the
# descending study) with every augmented copy, fold 0 of five session folds, one epoch.
CONFINED_MODEL = "eca_cnn-k1"
CONFINED_TRAIN_VERSIONS = 2
CONFINED_EVAL_BATCH = 64
SYNTHETIC_LABELS = ("angry", "happy", "neutral", "sad")
SYNTHETIC_SESSIONS = 5
CONFINED_TIMEOUT_S = 3600
PAGES_MAPPED = "pages mapped"
PAGEMAP_CHUNK = 2**20


@dataclass(frozen=True)
class Trial:
    """What a measured trial holds: every row of these STFT versions."""

    name: str
    versions: tuple[int, ...]
    ways: tuple[str, ...]


def bench_scale(utterances: int, versions: Sequence[int], augmentations: Sequence[str],
                trials: int, cache_root: Path, memory_limit: float | None = None
                ) -> dict[str, Any]:
    """`memory_limit` (bytes): also load each way in a memory cgroup of that size, and train
    one epoch of a trial in a cgroup of the memory Ray reserves for it."""
    if utterances < 1 or trials < 1:
        raise UserError(f"--utterances and --trials must be at least 1, got {utterances} "
                        f"and {trials}")
    started = time.perf_counter()
    feature_cache, built = synthetic_cache(cache_root, utterances, versions, augmentations)
    build_s = time.perf_counter() - started
    print(f"cache {feature_cache.path} ({'built' if built else 'reused'} in {build_s:.0f} s): "
          f"{utterances} utterances × {len(versions)} STFT versions × "
          f"{1 + len(augmentations)} copies, features {FEATURE_SHAPE}")
    one_version = Trial("one STFT version", (versions[-1],), WAYS)
    figures: dict[str, Any] = {
        "utterances": utterances, "versions": list(versions),
        "augmentations": list(augmentations), "trials": trials,
        "memory_measure": memory_measure(),
        "cache_bytes": {"parquet": _size(feature_cache.data_dir),
                        "arrays": _size(feature_cache.path / "arrays")},
        **_measure(one_version, feature_cache.path, trials),
        "stft_augmentation": _measure(Trial("every STFT version", tuple(versions), ("arrays",)),
                                      feature_cache.path, trials)
        if len(versions) > 1 else None,
    }
    if memory_limit is not None:
        figures["memory_limit_bytes"] = int(memory_limit)
        figures["within_memory_limit"] = {
            way: _confined(_holder_command(way, feature_cache.path, one_version.versions),
                           feature_cache.path, int(memory_limit)) for way in WAYS}
        figures["training_within_request"] = _train_confined(feature_cache.path, versions,
                                                             augmentations)
    _print(figures)
    print(json.dumps(figures))
    return figures


def _measure(trial: Trial, cache_path: Path, trials: int) -> dict[str, Any]:
    """The figures of one trial's rows held by one process and by `trials` at once, each way
    (and, where the former way is measured, each loaded from disk too)."""
    for way in trial.ways:  # each way's files into the page cache, as for a node's later trials
        _hold(way, cache_path, trial.versions, 1)
    single = {way: _hold(way, cache_path, trial.versions, 1) for way in trial.ways}
    together = {way: _hold(way, cache_path, trial.versions, trials) for way in trial.ways}
    one = {way: group.holdings[0] for way, group in single.items()}
    used = one["arrays"].used_bytes

    def each_way(figure: Callable[[str], Any]) -> dict[str, Any]:
        return {way: figure(way) for way in trial.ways}

    figures: dict[str, Any] = {
        "trial": trial.name, "stft_versions_read": list(trial.versions),
        "rows_used": one["arrays"].rows, "used_bytes": used,
        "load_s": each_way(lambda way: round(one[way].seconds, 3)),
        "peak_growth_bytes": each_way(lambda way: one[way].peak_growth),
        "peak_over_used": round(one["arrays"].peak_growth / used, 3),
        "private_growth_bytes": each_way(lambda way: one[way].private_growth),
        "memory_bytes_idle": each_way(lambda way: single[way].memory_idle),
        "memory_bytes_idle_together": each_way(lambda way: together[way].memory_idle),
        "memory_bytes_one": each_way(lambda way: single[way].memory),
        "memory_bytes_together": each_way(lambda way: together[way].memory),
        "concurrent_memory_ratio": _ratio(together["arrays"], single["arrays"], "memory"),
        "concurrent_memory_ratio_rows_once": round(
            (together["arrays"].memory_idle + used) / (single["arrays"].memory_idle + used), 3),
        "feature_memory_bytes_one": each_way(lambda way: single[way].feature_memory),
        "feature_memory_bytes_together": each_way(lambda way: together[way].feature_memory),
        "concurrent_feature_memory_ratio": _ratio(together["arrays"], single["arrays"],
                                                  "feature_memory"),
        "load_s_together_median": each_way(lambda way: round(statistics.median(
            h.seconds for h in together[way].holdings), 3)),
    }
    if "parquet" in trial.ways:
        figures.update({
            "load_speedup": round(one["parquet"].seconds / one["arrays"].seconds, 2),
            "peak_over_used_parquet": round(one["parquet"].peak_growth / used, 3),
            "concurrent_memory_ratio_parquet": _ratio(together["parquet"], single["parquet"],
                                                      "memory"),
            "concurrent_feature_memory_ratio_parquet": _ratio(
                together["parquet"], single["parquet"], "feature_memory"),
        })
        cold_s = {way: _hold(way, cache_path, trial.versions, 1, cold=True)
                  .holdings[0].seconds for way in trial.ways}
        figures["load_s_cold"] = {way: round(seconds, 3) for way, seconds in cold_s.items()}
        figures["load_speedup_cold"] = round(cold_s["parquet"] / cold_s["arrays"], 2)
    return figures


def _ratio(together: Group, one: Group, figure: str) -> float:
    return round(getattr(together, figure) / getattr(one, figure), 3)


def _print(figures: dict[str, Any]) -> None:
    gib = 2**30
    print(f"cache: Parquet {figures['cache_bytes']['parquet'] / gib:.2f} GiB, arrays "
          f"{figures['cache_bytes']['arrays'] / gib:.2f} GiB; memory counted as "
          f"{figures['memory_measure']}")
    trials = figures["trials"]
    for trial in (figures, figures["stft_augmentation"]):
        if trial is None:
            continue
        print(f"a trial of {trial['trial']} ({trial['stft_versions_read']}) uses "
              f"{trial['rows_used']} rows: {trial['used_bytes'] / gib:.2f} GiB")
        for way in trial["load_s"]:
            print(f"  {way:8s} load {trial['load_s'][way]:6.2f} s, peak growth "
                  f"{trial['peak_growth_bytes'][way] / gib:5.2f} GiB (private once loaded "
                  f"{trial['private_growth_bytes'][way] / gib:5.2f}); memory of 1 / {trials} "
                  f"processes: {trial['memory_bytes_one'][way] / gib:5.2f} / "
                  f"{trial['memory_bytes_together'][way] / gib:5.2f} GiB, of which the rows "
                  f"add {trial['feature_memory_bytes_one'][way] / gib:5.2f} / "
                  f"{trial['feature_memory_bytes_together'][way] / gib:5.2f} GiB")
        parquet = f" (parquet {trial['concurrent_memory_ratio_parquet']})" \
            if "load_speedup" in trial else ""
        print(f"  peak_over_used {trial['peak_over_used']}, concurrent_memory_ratio "
              f"{trial['concurrent_memory_ratio']}{parquet}, of the rows alone "
              f"{trial['concurrent_feature_memory_ratio']}; before loading, 1 / {trials} "
              f"processes hold {trial['memory_bytes_idle']['arrays'] / gib:.2f} / "
              f"{trial['memory_bytes_idle_together']['arrays'] / gib:.2f} GiB (interpreter, "
              f"libraries), so rows held once and adding nothing else would give "
              f"{trial['concurrent_memory_ratio_rows_once']}")
    print(f"load_speedup {figures['load_speedup']}× (page cache), "
          f"{figures['load_speedup_cold']}× from disk (parquet "
          f"{figures['load_s_cold']['parquet']:.2f} s, arrays "
          f"{figures['load_s_cold']['arrays']:.2f} s)")
    for way, outcome in figures.get("within_memory_limit", {}).items():
        print(f"  in {figures['memory_limit_bytes'] / gib:.2f} GiB of memory, {way}: "
              + (f"held its rows after {outcome['seconds']:.2f} s" if outcome["completed"]
                 else _ended(outcome)))
    trained = figures.get("training_within_request")
    if trained is not None:
        print(f"  in {trained['memory_request_bytes'] / gib:.2f} GiB of memory (what Ray "
              f"reserves for the trial), {trained['model']} trained on STFT versions "
              f"{trained['train_versions']}: " + (
                  f"one epoch of {trained['train_rows']} rows, its data, standardizer and "
                  f"scoring in {trained['seconds']:.0f} s, reading "
                  f"{trained['features_read_bytes'] / gib:.2f} GiB of features; the most "
                  f"the cgroup held: {_gib(trained['cgroup_peak_bytes'])}"
                  if trained["completed"] else _ended(trained)))


def _ended(outcome: dict[str, Any]) -> str:
    code = outcome["exit_code"]
    return f"killed by signal {-code}" if code is not None and code < 0 \
        else f"failed (exit code {code})"


def _gib(value: int | None) -> str:
    return "not reported by this kernel" if value is None else f"{value / 2**30:.2f} GiB"


# --- the synthetic cache -----------------------------------------------------------------------

def synthetic_cache(cache_root: Path, utterances: int, versions: Sequence[int],
                    augmentations: Sequence[str]) -> tuple[cache.FeatureCache, bool]:
    """The cache of this size under `cache_root`, written unless it exists: (cache, built)."""
    from ser_ray.features.pipeline import MAX_UTTERANCES_PER_TASK

    request = {"synthetic": "bench-scale", "utterances": utterances,
               "versions": list(versions), "augmentations": list(augmentations),
               "feature_shape": list(FEATURE_SHAPE)}
    key = "bench-" + cache.cache_key(request)
    cache_root.mkdir(parents=True, exist_ok=True)
    found = with_complete_arrays(cache.find_complete(cache_root, key))
    if found is not None:
        return found, False
    staging = cache.staging_dir(cache_root, key)
    copies = [ORIGINAL, *augmentations]
    rng = np.random.default_rng(0)
    ids = [f"synthetic_{number:06d}" for number in range(utterances)]
    for start in range(0, utterances, MAX_UTTERANCES_PER_TASK):
        table = _part(ids[start:start + MAX_UTTERANCES_PER_TASK], versions, copies, rng)
        pq.write_table(table, staging / cache.DATA_DIR / f"part-{start:08d}.parquet",
                       **parquet_options())
    (staging / cache.SKIPPED_FILE).write_text("utterance_id,path,reason_code,reason\n")
    write_arrays(staging, FEATURE_SHAPE)
    metadata = {**request, "key": key, "recipe": {"kind": "synthetic log-Mel"},
                "feature_shape": list(FEATURE_SHAPE), "variants": list(versions),
                "rows": utterances * len(versions) * len(copies), "utterances": utterances,
                "skipped": 0}
    return cache.publish(staging, cache_root, key, metadata), True


def _part(ids: Sequence[str], versions: Sequence[int], copies: Sequence[str],
          rng: np.random.Generator) -> pa.Table:
    """Rows of some utterances in the feature stage's order: utterance, copy, version. The
    values are log-Mel-like dB levels (so they compress as real ones do), not real features."""
    rows = [(utterance, copy, version) for utterance in ids for copy in copies
            for version in versions]
    size = int(np.prod(FEATURE_SHAPE))
    values = (rng.standard_normal((len(rows), size), np.float32) * 12 - 45).reshape(-1)
    offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int64) * size)
    columns = {
        "utterance_id": [utterance if copy == ORIGINAL else derived_utterance_id(utterance, copy)
                         for utterance, copy, _ in rows],
        "source_utterance_id": [utterance for utterance, _, _ in rows],
        "augmentation": [copy for _, copy, _ in rows],
        "augmentation_params": ["{}"] * len(rows),
        "stft_version": [version for _, _, version in rows],
        "segment_index": [0] * len(rows),
        "label": ["neutral"] * len(rows),
    }
    return pa.table({**columns, "features": pa.LargeListArray.from_arrays(
        offsets, pa.array(values))}, schema=feature_schema())


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


# --- the measured processes --------------------------------------------------------------------

@dataclass(frozen=True)
class Holding:
    """One process's figures after it loaded the rows."""

    seconds: float
    rows: int
    used_bytes: int
    peak_growth: int
    private_growth: int


@dataclass(frozen=True)
class Group:
    """Processes that loaded their rows at once, and the memory they held together
    (`_memory_of`) before loading and while holding the rows."""

    holdings: list[Holding]
    memory_idle: int
    memory: int

    @property
    def feature_memory(self) -> int:
        """What holding the rows adds to the processes' memory."""
        return self.memory - self.memory_idle


def _hold(way: str, cache_path: Path, versions: Sequence[int], processes: int,
          cold: bool = False) -> Group:
    """`processes` processes start, then load the rows at once the `way` asked and hold
    them; their figures, and their memory when all are idle and when all hold.
    `cold`: the cache's files are dropped from the page cache first (read from disk)."""
    started = [subprocess.Popen(_holder_command(way, cache_path, versions),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    try:
        for process in started:
            process.stdout.readline()  # imports done, nothing loaded
        idle = _memory_of([process.pid for process in started])
        if cold:
            _drop_page_cache(cache_path)
        for process in started:
            process.stdin.write("load\n")
            process.stdin.flush()
        reports = [Holding(**json.loads(process.stdout.readline())) for process in started]
        return Group(reports, idle, _memory_of([process.pid for process in started]))
    finally:
        for process in started:
            process.communicate("\n", timeout=120)


def _memory_of(pids: Sequence[int]) -> int:
    """Bytes of physical memory the processes map: every resident page once, however many of
    them map it. This is the sum of their PSS on a node where nothing else maps those pages
    (PSS itself would hand part of each shared library page to this benchmark's own process,
    which imports the same libraries). Where the kernel hides page frames (`memory_measure`),
    the sum of PSS."""
    if memory_measure() != PAGES_MAPPED:
        return sum(_proc_bytes(Path(f"/proc/{pid}/smaps_rollup"), "Pss") for pid in pids)
    return len(np.unique(np.concatenate([_resident_frames(pid) for pid in pids]))) \
        * os.sysconf("SC_PAGE_SIZE")


@functools.cache
def memory_measure() -> str:
    """PAGES_MAPPED where this process may read page frames (root), else "sum of PSS"."""
    try:
        return PAGES_MAPPED if _resident_frames(os.getpid()).any() else "sum of PSS"
    except PermissionError:
        return "sum of PSS"


def _resident_frames(pid: int) -> np.ndarray:
    """The page frame numbers of a process's resident pages (/proc/PID/pagemap: one 8-byte
    entry per page of each mapped area, bit 63 present, bits 0-54 the frame; frames read as
    0 without CAP_SYS_ADMIN). Areas are read PAGEMAP_CHUNK entries at a time; an area the
    kernel does not describe ([vsyscall]) reads as nothing."""
    page = os.sysconf("SC_PAGE_SIZE")
    frames = []
    descriptor = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            start, end = (int(bound, 16) // page for bound in line.split()[0].split("-"))
            for first in range(start, end, PAGEMAP_CHUNK):
                wanted = min(PAGEMAP_CHUNK, end - first)
                entries = np.frombuffer(os.pread(descriptor, wanted * 8, first * 8), np.uint64)
                frames.append(entries[entries >> np.uint64(63) == 1] & np.uint64(2**55 - 1))
                if len(entries) < wanted:
                    break
    finally:
        os.close(descriptor)
    if not frames:
        raise RuntimeError(f"process {pid} maps no pages (has it ended?)")
    return np.concatenate(frames)


def _confined(command: list[str], cache_path: Path, limit: int) -> dict[str, Any]:
    """One measured process (`hold` or `train_one_epoch`) inside a memory cgroup of `limit`
    bytes, the cache's pages dropped from the page cache first (pages count against the group
    that reads them in): whether it did its work or was killed, the seconds it took, and the
    group's peak memory. A process still at work after CONFINED_TIMEOUT_S is killed."""
    procs = _memory_cgroup(f"ser-ray-bench-scale-{os.getpid()}-{uuid.uuid4().hex[:8]}", limit)
    process: subprocess.Popen[str] | None = None
    report, peak = "", None
    try:
        _drop_page_cache(cache_path)
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True,
                                   preexec_fn=lambda: procs.write_text(str(os.getpid())))
        watchdog = threading.Timer(CONFINED_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            process.stdout.readline()
            process.stdin.write("load\n")
            process.stdin.flush()
            report = process.stdout.readline()
            process.communicate("\n")
        except (BrokenPipeError, ValueError):
            pass  # killed before it was told to start or to stop
        finally:
            watchdog.cancel()
    finally:
        if process is not None:
            process.kill()
            process.wait()
        try:
            peak = _cgroup_peak(procs.parent)
        finally:
            procs.parent.rmdir()
    return {"completed": bool(report), "exit_code": process.returncode if process else None,
            "cgroup_peak_bytes": peak,
            **(json.loads(report) if report else {"seconds": None})}


def _cgroup_peak(group: Path) -> int | None:
    """The most memory the cgroup held (v1, or v2 from Linux 5.19)."""
    for name in ("memory.peak", "memory.max_usage_in_bytes"):
        if (group / name).is_file():
            return int((group / name).read_text())
    return None


def _train_confined(cache_path: Path, versions: Sequence[int], augmentations: Sequence[str]
                    ) -> dict[str, Any]:
    """One epoch of a real trial on the cache inside a memory cgroup of the memory Ray
    reserves for it (`estimate_memory`)."""
    from ser_ray.train.memory import estimate_memory

    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-scale-") as directory:
        job = _confined_job(cache_path, versions, augmentations, Path(directory))
        job_file = Path(directory) / "job.json"
        job_file.write_text(job.model_dump_json())
        request = estimate_memory(job, folds=1).total
        outcome = _confined([sys.executable, "-c", f"from ser_ray.bench.scale import "
                             f"train_one_epoch; train_one_epoch({str(job_file)!r})"],
                            cache_path, request)
    return {"model": CONFINED_MODEL, "train_versions": list(job.train.train_versions or ()),
            "test_version": job.train.test_version, "memory_request_bytes": request,
            **outcome}


def _confined_job(cache_path: Path, versions: Sequence[int], augmentations: Sequence[str],
                  directory: Path) -> TrainJob:
    """A training job on the synthetic cache: a manifest of its utterances (four classes in
    turn, five sessions of two speakers), session folds, and the trial CONFINED_* names."""
    ids = load_features(cache_path, stft_versions=[versions[-1]],
                        augmentations=[ORIGINAL]).utterance_ids.astype(str)
    number = np.arange(len(ids))
    speaker = number % (2 * SYNTHETIC_SESSIONS)
    manifest = pd.DataFrame({
        "utterance_id": ids, "path": [f"/synthetic/{name}.wav" for name in ids],
        "corpus": "synthetic", "speaker": [f"speaker{value:02d}" for value in speaker],
        "gender": np.where(speaker % 2, "F", "M"),
        "session": [f"session{value // 2}" for value in speaker],
        "raw_label": [SYNTHETIC_LABELS[value % len(SYNTHETIC_LABELS)] for value in number],
        "duration_s": 6.0, "sample_rate": 16000, "channels": 1, "improvised": False})
    manifest["label"] = manifest["raw_label"]
    write_manifest(manifest, directory / "manifest.parquet", {"synthetic": "bench-scale"})
    protocol = FoldProtocol("session")
    folds = make_folds(manifest, protocol)
    write_folds(folds, protocol, check_folds(manifest, folds, protocol),
                directory / "folds.parquet")
    return TrainJob(
        manifest=directory / "manifest.parquet", folds=directory / "folds.parquet",
        cache=cache_path, model=ModelChoice(name=CONFINED_MODEL), fold_indices=(0,),
        train=TrainConfig(epochs=1, device="cpu", test_version=versions[-1],
                          train_versions=tuple(versions[-CONFINED_TRAIN_VERSIONS:]),
                          augmentations=tuple(augmentations),
                          eval_batch_size=CONFINED_EVAL_BATCH))


def _memory_cgroup(name: str, limit: int) -> Path:
    """A new memory cgroup (v2, or v1's memory hierarchy) limited to `limit` bytes; returns
    its cgroup.procs file."""
    unified = Path("/sys/fs/cgroup/cgroup.controllers").is_file()
    root = Path("/sys/fs/cgroup") if unified else Path("/sys/fs/cgroup/memory")
    group = root / name
    try:
        group.mkdir()
        (group / ("memory.max" if unified else "memory.limit_in_bytes")).write_text(str(limit))
        # Where swap exists, no swapping out either: the limit is on memory, all of it.
        swap = group / ("memory.swap.max" if unified else "memory.memsw.limit_in_bytes")
        if swap.exists():
            swap.write_text("0" if unified else str(limit))
    except OSError as error:
        if group.is_dir():
            group.rmdir()
        raise UserError(f"--memory-limit needs a memory cgroup this user may create under "
                        f"{root} (root on Linux): {error}") from error
    return group / "cgroup.procs"


def _drop_page_cache(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def _holder_command(way: str, cache_path: Path, versions: Sequence[int]) -> list[str]:
    return [sys.executable, "-c", f"from ser_ray.bench.scale import hold; "
            f"hold({way!r}, {str(cache_path)!r}, {list(versions)!r})"]


def hold(way: str, cache_path: str, versions: list[int]) -> None:
    """Run in the measured process: load the rows the `way` asked when told, and report."""
    def load() -> tuple[dict[str, Any], Any]:
        before, anonymous_before = _status_bytes("VmRSS"), _status_bytes("RssAnon")
        start = time.perf_counter()
        rows = _parquet_rows(Path(cache_path), versions) if way == "parquet" \
            else _array_rows(Path(cache_path), versions)
        report = Holding(seconds=time.perf_counter() - start, rows=len(rows),
                         used_bytes=len(rows) * int(np.prod(FEATURE_SHAPE)) * 4,
                         peak_growth=_status_bytes("VmHWM") - before,
                         private_growth=_status_bytes("RssAnon") - anonymous_before)
        return asdict(report), rows

    _when_told(load)


def train_one_epoch(job_file: str) -> None:
    """Run in the measured process: when told, build the job's data and model and train one
    epoch (its scoring included); report the seconds, training rows and feature bytes read."""
    job = TrainJob.model_validate_json(Path(job_file).read_text())

    def train() -> tuple[dict[str, Any], Any]:
        start = time.perf_counter()
        run = LockstepRun(job)
        (record,) = run.run_epoch()
        splits = run.trainers[0].splits
        read = sum(len(split.rows) for split in (splits.train, splits.test, splits.validation)
                   if split is not None)
        return {"seconds": time.perf_counter() - start, "train_rows": record["train_rows"],
                "features_read_bytes": read * int(np.prod(run.data.feature_shape)) * 4}, run

    _when_told(train)


def _when_told(work: Callable[[], tuple[dict[str, Any], Any]]) -> None:
    """The measured process's side of `_hold` and `_confined`: say when idle, do the work
    when told, print its figures as JSON, and keep what it returned alive until told again
    (so that the memory read meanwhile is the memory holding it)."""
    print("idle", flush=True)
    sys.stdin.readline()
    figures, held = work()
    print(json.dumps(figures), flush=True)
    sys.stdin.readline()
    del held


def _parquet_rows(cache_path: Path, versions: Sequence[int]) -> np.ndarray:
    dataset = pads.dataset(cache_path / cache.DATA_DIR, format="parquet")
    table = dataset.to_table(filter=pc.field("stft_version").isin(list(versions))) \
        .sort_by(list(ROW_ORDER))
    flat = pa.concat_arrays(table.column("features").chunks).flatten()
    return flat.to_numpy(zero_copy_only=False).reshape(-1, *FEATURE_SHAPE)


def _array_rows(cache_path: Path, versions: Sequence[int]) -> Any:
    features = load_features(cache_path, stft_versions=list(versions)).features
    feature_moments(features, np.arange(len(features)))
    return features


def _status_bytes(field: str) -> int:
    return _proc_bytes(Path("/proc/self/status"), field)


def _proc_bytes(path: Path, field: str) -> int:
    """A `field:  N kB` line of a /proc file, in bytes."""
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{path} has no {field}")


def default_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ser-ray" / \
        "bench-scale"
