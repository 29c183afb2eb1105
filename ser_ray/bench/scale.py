"""`ser-ray bench scale`: what a trial pays to get its features, the former way and from the
cache's shared arrays, measured in one run on a cache of the size asked for.

The cache is synthetic but laid out exactly as the feature stage writes one (Parquet parts of
64 utterances with every STFT version and augmentation of each, byte-stream-split + LZ4
features, then the arrays), so that only the feature values are made up. It is built once per
size under `--cache-root` and reused.

A trial wants one STFT version, originals and augmented copies (training) and originals (test):
every row of that version. Each way runs in a fresh process that holds the rows afterwards:
- parquet: what the loader did before the arrays, and what a pyarrow script would do: read
  the cache filtered to the version, sort, and convert the feature column to one array;
- arrays: select the rows (`load_features`) and read each one once, in the chunks of the
  standardizer pass a trial makes (the pages are then resident and shared).
Figures: load time, with the cache's files in the page cache (as for every trial after the
first on a node) and read from disk; the process's peak memory growth while loading (peak
RSS less the RSS before; it counts the shared pages of the arrays it touched, so it bounds
its private memory from above, which is reported apart as the anonymous memory it keeps) over
the bytes of the rows it uses; and what holding the rows adds to the total memory (sum of PSS) of T
processes, over what it adds for one (`concurrent_memory_ratio`). The processes' whole PSS,
interpreter and torch included (about 0.3 GiB each, which no data layout shares), is
reported beside it. `--memory-limit` also loads each way once in a memory cgroup.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ser_ray.errors import UserError
from ser_ray.features import cache
from ser_ray.features.arrays import write_arrays
from ser_ray.features.featurize import feature_schema, parquet_options
from ser_ray.features.leakage import ORIGINAL, derived_utterance_id
from ser_ray.features.loader import ROW_ORDER

FEATURE_SHAPE = (64, 601)  # log-Mel at the papers' settings: 64 bands × 601 frames
WAYS = ("parquet", "arrays")


def bench_scale(utterances: int, versions: Sequence[int], augmentations: Sequence[str],
                trials: int, cache_root: Path, memory_limit: float | None = None
                ) -> dict[str, Any]:
    """`memory_limit` (bytes): also load each way once in a memory cgroup of that size."""
    if utterances < 1 or trials < 1:
        raise UserError(f"--utterances and --trials must be at least 1, got {utterances} "
                        f"and {trials}")
    started = time.perf_counter()
    feature_cache, built = synthetic_cache(cache_root, utterances, versions, augmentations)
    build_s = time.perf_counter() - started
    version = versions[-1]
    print(f"cache {feature_cache.path} ({'built' if built else 'reused'} in {build_s:.0f} s): "
          f"{utterances} utterances × {len(versions)} STFT versions × "
          f"{1 + len(augmentations)} copies, features {FEATURE_SHAPE}")
    for way in WAYS:  # each way's files into the page cache, as for a node's later trials
        _hold(way, feature_cache.path, version, 1)
    single = {way: _hold(way, feature_cache.path, version, 1)[0] for way in WAYS}
    cold = {way: _hold(way, feature_cache.path, version, 1, cold=True)[0] for way in WAYS}
    together = {way: _hold(way, feature_cache.path, version, trials) for way in WAYS}
    used = single["arrays"].used_bytes
    figures = {
        "utterances": utterances, "versions": list(versions),
        "augmentations": list(augmentations), "trials": trials, "stft_version_read": version,
        "rows_used": single["arrays"].rows, "used_bytes": used,
        "cache_bytes": {"parquet": _size(feature_cache.data_dir),
                        "arrays": _size(feature_cache.path / "arrays")},
        "load_s": {way: round(single[way].seconds, 3) for way in WAYS},
        "load_speedup": round(single["parquet"].seconds / single["arrays"].seconds, 2),
        "load_s_cold": {way: round(cold[way].seconds, 3) for way in WAYS},
        "load_speedup_cold": round(cold["parquet"].seconds / cold["arrays"].seconds, 2),
        "peak_growth_bytes": {way: single[way].peak_growth for way in WAYS},
        "peak_over_used": round(single["arrays"].peak_growth / used, 3),
        "peak_over_used_parquet": round(single["parquet"].peak_growth / used, 3),
        "private_growth_bytes": {way: single[way].private_growth for way in WAYS},
        "feature_pss_bytes_one": {way: single[way].pss_growth for way in WAYS},
        "feature_pss_bytes_together": {way: sum(h.pss_growth for h in together[way])
                                       for way in WAYS},
        "concurrent_memory_ratio": _ratio(together["arrays"], single["arrays"], "pss_growth"),
        "concurrent_memory_ratio_parquet": _ratio(together["parquet"], single["parquet"],
                                                  "pss_growth"),
        "process_pss_bytes_one": {way: single[way].pss for way in WAYS},
        "process_pss_bytes_together": {way: sum(h.pss for h in together[way])
                                       for way in WAYS},
        "concurrent_process_memory_ratio": _ratio(together["arrays"], single["arrays"], "pss"),
        "concurrent_process_memory_ratio_parquet": _ratio(together["parquet"],
                                                          single["parquet"], "pss"),
        "load_s_together_median": {way: round(statistics.median(
            h.seconds for h in together[way]), 3) for way in WAYS},
    }
    if memory_limit is not None:
        figures["memory_limit_bytes"] = int(memory_limit)
        figures["within_memory_limit"] = {
            way: _confined(way, feature_cache.path, version, int(memory_limit)) for way in WAYS}
    _print(figures)
    print(json.dumps(figures))
    return figures


def _ratio(together: list[Holding], one: Holding, figure: str) -> float:
    return round(sum(getattr(h, figure) for h in together) / getattr(one, figure), 3)


def _print(figures: dict[str, Any]) -> None:
    gib = 2**30
    print(f"a trial uses {figures['rows_used']} rows of STFT version "
          f"{figures['stft_version_read']}: {figures['used_bytes'] / gib:.2f} GiB "
          f"(cache: Parquet {figures['cache_bytes']['parquet'] / gib:.2f} GiB, arrays "
          f"{figures['cache_bytes']['arrays'] / gib:.2f} GiB)")
    trials = figures["trials"]
    for way in WAYS:
        print(f"  {way:8s} load {figures['load_s'][way]:6.2f} s, peak growth "
              f"{figures['peak_growth_bytes'][way] / gib:5.2f} GiB (private once loaded "
              f"{figures['private_growth_bytes'][way] / gib:5.2f}); memory of the rows held "
              f"(PSS growth) by one trial {figures['feature_pss_bytes_one'][way] / gib:5.2f} "
              f"GiB, by {trials} {figures['feature_pss_bytes_together'][way] / gib:5.2f} GiB; "
              f"whole processes {figures['process_pss_bytes_one'][way] / gib:5.2f} / "
              f"{figures['process_pss_bytes_together'][way] / gib:5.2f} GiB")
    print(f"read from disk (page cache dropped first): parquet "
          f"{figures['load_s_cold']['parquet']:.2f} s, arrays "
          f"{figures['load_s_cold']['arrays']:.2f} s, {figures['load_speedup_cold']}×")
    print(f"load_speedup {figures['load_speedup']}×, peak_over_used "
          f"{figures['peak_over_used']} (parquet {figures['peak_over_used_parquet']}), "
          f"concurrent_memory_ratio {figures['concurrent_memory_ratio']} (parquet "
          f"{figures['concurrent_memory_ratio_parquet']}); whole processes, each with its "
          f"own interpreter and torch: {figures['concurrent_process_memory_ratio']} (parquet "
          f"{figures['concurrent_process_memory_ratio_parquet']})")
    for way, outcome in figures.get("within_memory_limit", {}).items():
        print(f"  in {figures['memory_limit_bytes'] / gib:.2f} GiB of memory, {way}: "
              + (f"held its rows after {outcome['seconds']:.2f} s" if outcome["completed"]
                 else f"killed (exit code {outcome['exit_code']})"))


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
    found = cache.find_complete(cache_root, key)
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
    """One process's figures after it loaded the rows, and its PSS before and while holding
    them (read while every process of its group was at the same stage)."""

    seconds: float
    rows: int
    used_bytes: int
    peak_growth: int
    private_growth: int
    pss_idle: int = 0
    pss: int = 0

    @property
    def pss_growth(self) -> int:
        """What holding the rows adds to the process's share of memory."""
        return self.pss - self.pss_idle


def _hold(way: str, cache_path: Path, version: int, processes: int,
          cold: bool = False) -> list[Holding]:
    """`processes` processes start, then load the rows at once the `way` asked and hold
    them; their figures, with each one's PSS read when all are idle and when all hold.
    `cold`: the cache's files are dropped from the page cache first (read from disk)."""
    started = [subprocess.Popen(_holder_command(way, cache_path, version),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    try:
        for process in started:
            process.stdout.readline()  # imports done, nothing loaded
        idle = [_pss(process.pid) for process in started]
        if cold:
            _drop_page_cache(cache_path)
        for process in started:
            process.stdin.write("load\n")
            process.stdin.flush()
        reports = [json.loads(process.stdout.readline()) for process in started]
        return [Holding(**report, pss_idle=before, pss=_pss(process.pid))
                for report, before, process in zip(reports, idle, started)]
    finally:
        for process in started:
            process.communicate("\n", timeout=120)


def _confined(way: str, cache_path: Path, version: int, limit: int) -> dict[str, Any]:
    """One process loading the rows the `way` asked inside a memory cgroup of `limit` bytes,
    the cache's pages dropped from the page cache first (pages count against the group that
    reads them in): whether it came to hold its rows or was killed, and its load time."""
    procs = _memory_cgroup(f"ser-ray-bench-scale-{os.getpid()}-{way}", limit)
    _drop_page_cache(cache_path)
    process = subprocess.Popen(_holder_command(way, cache_path, version), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: procs.write_text(str(os.getpid())))
    report = ""
    try:
        process.stdout.readline()
        process.stdin.write("load\n")
        process.stdin.flush()
        report = process.stdout.readline()
    except BrokenPipeError:
        pass  # killed before it was told to load
    finally:
        try:
            process.communicate("\n", timeout=300)
        except (BrokenPipeError, ValueError):
            process.wait(timeout=300)
        procs.parent.rmdir()
    seconds = json.loads(report)["seconds"] if report else None
    return {"completed": bool(report), "seconds": seconds, "exit_code": process.returncode}


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


def _holder_command(way: str, cache_path: Path, version: int) -> list[str]:
    return [sys.executable, "-c", f"from ser_ray.bench.scale import hold; "
            f"hold({way!r}, {str(cache_path)!r}, {version})"]


def hold(way: str, cache_path: str, version: int) -> None:
    """Run in the measured process: say when idle, load when told, print the figures as
    JSON, hold until told again."""
    # What loading imports, imported before the baseline is read.
    import ser_ray.features.loader  # noqa: F401
    import ser_ray.train.data  # noqa: F401

    print("idle", flush=True)
    sys.stdin.readline()
    before, anonymous_before = _status_bytes("VmRSS"), _status_bytes("RssAnon")
    start = time.perf_counter()
    features = _parquet_rows(Path(cache_path), version) if way == "parquet" \
        else _array_rows(Path(cache_path), version)
    seconds = time.perf_counter() - start
    report = Holding(seconds=seconds, rows=len(features),
                     used_bytes=len(features) * int(np.prod(FEATURE_SHAPE)) * 4,
                     peak_growth=_status_bytes("VmHWM") - before,
                     private_growth=_status_bytes("RssAnon") - anonymous_before)
    print(json.dumps({name: value for name, value in asdict(report).items()
                      if not name.startswith("pss")}), flush=True)
    sys.stdin.readline()
    del features


def _parquet_rows(cache_path: Path, version: int) -> np.ndarray:
    dataset = pads.dataset(cache_path / cache.DATA_DIR, format="parquet")
    table = dataset.to_table(filter=pc.field("stft_version") == version).sort_by(list(ROW_ORDER))
    flat = pa.concat_arrays(table.column("features").chunks).flatten()
    return flat.to_numpy(zero_copy_only=False).reshape(-1, *FEATURE_SHAPE)


def _array_rows(cache_path: Path, version: int) -> Any:
    from ser_ray.features.loader import load_features
    from ser_ray.train.data import standardizer_chunk_rows

    features = load_features(cache_path, stft_versions=[version]).features
    chunk = standardizer_chunk_rows(FEATURE_SHAPE)
    for start in range(0, len(features), chunk):
        features[np.arange(start, min(start + chunk, len(features)))].astype(np.float64).sum()
    return features


def _status_bytes(field: str) -> int:
    return _proc_bytes(Path("/proc/self/status"), field)


def _pss(pid: int) -> int:
    return _proc_bytes(Path(f"/proc/{pid}/smaps_rollup"), "Pss")


def _proc_bytes(path: Path, field: str) -> int:
    """A `field:  N kB` line of a /proc file, in bytes."""
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{path} has no {field}")


def default_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ser-ray" / \
        "bench-scale"
