"""`ser-ray bench features`: the Ray Data log-Mel pipeline vs a single-process librosa loop
computing the same 8 versions, and a warm cache hit, with memory peaks."""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ser_ray.bench import seconds
from ser_ray.corpus.manifest import read_manifest
from ser_ray.corpus.scan import scan_corpus
from ser_ray.errors import UserError

if TYPE_CHECKING:
    import psutil

    from ser_ray.features.logmel import LogMelRecipe

MIB = 1024**2
MEMORY_SAMPLE_S = 0.1
SYNTH_SESSIONS = 5
UTTERANCES_PER_SESSION = 100


@dataclass(frozen=True)
class _Phase:
    """Wall time of one benchmark phase and the memory peaks sampled while it ran."""

    seconds: float
    driver_rss_mib: float
    tree_rss_mib: float


def _tree_rss(process: psutil.Process) -> int:
    """Summed RSS of a process and all its descendants (Ray's GCS, raylet and workers descend
    from the driver that started them). Pages shared between processes, such as the object
    store and the libraries, count once per process, so the sum overstates the total; PSS
    would not, but reading it costs ~20 ms of CPU per sample on this 2-core machine."""
    import psutil

    total = 0
    for member in (process, *process.children(recursive=True)):
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue  # a worker that ended between the listing and the read
    return total


def _run_phase(action: Callable[[], object]) -> _Phase:
    """Runs `action` once, timed. The disk's dirty pages are flushed first, outside the time,
    so that one phase's writing (a request writes ~100 MB of Parquet) is not charged to the
    next; a request's time thus covers its writes to the page cache, not to the disk."""
    import psutil

    os.sync()

    driver = psutil.Process()
    peaks = [0, 0]
    finished = threading.Event()

    def sample() -> None:
        while True:
            peaks[:] = map(max, peaks, (driver.memory_info().rss, _tree_rss(driver)))
            if finished.wait(MEMORY_SAMPLE_S):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    elapsed = seconds(action)
    finished.set()
    sampler.join()
    return _Phase(elapsed, *(round(peak / MIB, 1) for peak in peaks))


def _synthetic_manifest(root: Path, utterances: int) -> Path:
    """A manifest of `utterances` synthetic IEMOCAP turns (2–7 s at 16 kHz)."""
    from ser_ray.corpus import write_scan
    from ser_ray.synth import SynthConfig, write_synthetic_iemocap

    sessions = min(SYNTH_SESSIONS, math.ceil(utterances / UTTERANCES_PER_SESSION))
    per_speaker = max(2, math.ceil(utterances / (2 * sessions)))
    write_synthetic_iemocap(root / "corpus", SynthConfig(
        sessions=sessions, speakers_per_session=2, utterances_per_speaker=per_speaker))
    scan = scan_corpus("iemocap", root / "corpus")
    scan.manifest = scan.manifest.head(utterances)
    manifest_path = root / "manifest.parquet"
    write_scan(scan, manifest_path)
    return manifest_path


def _librosa_loop(manifest_path: Path, recipe: LogMelRecipe) -> None:
    """Decode each file and compute every version with librosa, one after another, on one
    core. Left alone, numpy's OpenBLAS runs a thread per core that mostly spins: the loop is
    no faster for it (3.9 s either way for 300 utterances here) but then holds both cores,
    and anything else running, such as the idle Ray cluster, would slow it down."""
    from threadpoolctl import threadpool_limits

    from ser_ray.features.audio import load_waveform
    from ser_ray.features.logmel import librosa_log_mel

    with threadpool_limits(limits=1):
        for path in read_manifest(manifest_path)["path"]:
            waveform = load_waveform(path, recipe.sample_rate)
            for version in recipe.versions:
                librosa_log_mel(waveform, recipe, version)


def _max_difference_to_librosa(manifest_path: Path, recipe: LogMelRecipe,
                               cache_path: Path) -> float:
    """Largest |cached − librosa| over every version of the corpus's first utterance."""
    from ser_ray.features import load_features
    from ser_ray.features.audio import load_waveform
    from ser_ray.features.leakage import ORIGINAL
    from ser_ray.features.logmel import librosa_log_mel

    first = read_manifest(manifest_path).iloc[0]
    cached = load_features(cache_path, augmentations=[ORIGINAL],
                           source_utterance_ids=[first["utterance_id"]])
    waveform = load_waveform(first["path"], recipe.sample_rate)
    return max(float(np.abs(librosa_log_mel(waveform, recipe, version) - features).max())
               for version, features in zip(cached.stft_versions, cached.features))


def break_even_utterances(fixed_s: float, per_utterance_s: float,
                          baseline_fixed_s: float, baseline_per_utterance_s: float) -> int | None:
    """Corpus size from which on a path (one-time cost + cost per utterance) finishes no
    later than the baseline, for that size and every larger one; None when it is no faster
    per utterance, so that the baseline is ahead on large corpora whatever the one-time costs.

    >>> break_even_utterances(5.0, 0.005, 0.5, 0.012)
    643
    >>> break_even_utterances(0.1, 0.005, 0.5, 0.012)
    1
    >>> break_even_utterances(5.0, 0.02, 0.5, 0.012) is None
    True
    """
    if per_utterance_s >= baseline_per_utterance_s:
        return None
    return max(1, math.ceil((fixed_s - baseline_fixed_s)
                            / (baseline_per_utterance_s - per_utterance_s)))


def bench_features(utterances: int = 300, versions: Sequence[int] | None = None,
                   rounds: int = 3) -> dict[str, object]:
    """Ray Data log-Mels into the Parquet cache vs a single-process librosa loop, and a hit.

    Each path has a one-time cost and a rate. The loop's one-time cost is librosa's first
    Mel matrix (scipy.signal and numba load then); Ray's is `ray.init` plus what the first
    request takes beyond a later one (torch, Ray Data and the feature code imported in each
    worker, Ray Data's first run in the driver). The throughput ratio compares the rates: the
    loop after its first matrix against requests on started workers. The two run in turn for
    `rounds` rounds, the loop first in even rounds and second in odd ones, and the median of
    the rounds' ratios is reported: on a small shared machine the speed drifts by up to
    ±30 % over tens of seconds, which a fixed order would hand to one side. The rates and the
    other figures come from each path's median time. The idle cluster beside the
    single-threaded loop takes 5–7 % of the other core. The first request, the whole run from
    nothing, and the corpus size from which Ray is ahead are reported beside the ratio; that
    size is linear in the rates and counts a request's own fixed overhead (planning, task
    start) as cost per utterance, so it leans high. `versions=None` takes the recipe's
    default, all eight.
    """
    from ser_ray.features import parse_recipe
    from ser_ray.features.pipeline import build_features
    from ser_ray.ray_session import ensure_ray

    if utterances < 1:
        raise UserError(f"--utterances must be at least 1, got {utterances}")
    if rounds < 1:
        raise UserError(f"--rounds must be at least 1, got {rounds}")
    chosen = {"versions": list(versions)} if versions else {}
    recipe = parse_recipe({"kind": "logmel", **chosen})
    work = utterances * len(recipe.versions)
    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-") as tmp:
        root = Path(tmp)
        manifest_path = _synthetic_manifest(root, utterances)
        print(f"{utterances} utterances × {len(recipe.versions)} versions = {work} log-Mels",
              flush=True)

        def request(cache_root: Path) -> Callable[[], object]:
            return lambda: build_features(manifest_path, recipe, cache_root)

        librosa_first = _run_phase(lambda: _first_librosa_matrix(recipe))
        ray_start = _run_phase(ensure_ray)
        first = _run_phase(request(root / "cache"))
        hit = _run_phase(request(root / "cache"))
        feature_cache, _ = build_features(manifest_path, recipe, root / "cache")
        difference = _max_difference_to_librosa(manifest_path, recipe, feature_cache.path)
        loops: list[_Phase] = []
        started: list[_Phase] = []
        for number in range(rounds):
            cache_root = root / f"round-{number}"
            phases = [(loops, lambda: _librosa_loop(manifest_path, recipe)),
                      (started, request(cache_root))]
            for measured, action in phases if number % 2 == 0 else phases[::-1]:
                measured.append(_run_phase(action))
            shutil.rmtree(cache_root)  # 100 MB a round; the disk stays calm
    figures = _feature_figures(utterances, recipe.versions, librosa_first, loops, ray_start,
                               first, started, hit)
    figures["max_abs_diff_vs_librosa"] = float(f"{difference:.2g}")
    _print_feature_figures(figures)
    print(json.dumps(figures))
    return figures


def _first_librosa_matrix(recipe: LogMelRecipe) -> None:
    from ser_ray.features.logmel import librosa_log_mel

    librosa_log_mel(np.zeros(recipe.n_samples, np.float32), recipe, recipe.versions[0])


def _feature_figures(utterances: int, versions: Sequence[int], librosa_first: _Phase,
                     loops: list[_Phase], ray_start: _Phase, first: _Phase,
                     started: list[_Phase], hit: _Phase) -> dict[str, Any]:
    work = utterances * len(versions)
    loop_s = statistics.median(phase.seconds for phase in loops)
    started_s = statistics.median(phase.seconds for phase in started)
    ratios = [loop.seconds / request.seconds for loop, request in zip(loops, started)]
    first_overhead_s = max(0.0, first.seconds - started_s)

    def break_even(ray_fixed_s: float) -> int | None:
        return break_even_utterances(ray_fixed_s, started_s / utterances,
                                     librosa_first.seconds, loop_s / utterances)

    return {
        "utterances": utterances,
        "versions": list(versions),
        "rounds": len(loops),
        "librosa_first_matrix_s": round(librosa_first.seconds, 3),
        "librosa_s": round(loop_s, 3),
        "ray_start_s": round(ray_start.seconds, 3),
        "ray_first_request_s": round(first.seconds, 3),
        "ray_first_request_overhead_s": round(first_overhead_s, 3),
        "ray_s": round(started_s, 3),
        "cache_hit_s": round(hit.seconds, 4),
        "librosa_per_s": round(work / loop_s, 1),
        "ray_per_s": round(work / started_s, 1),
        "ray_first_request_per_s": round(work / first.seconds, 1),
        "ratio_vs_librosa": round(statistics.median(ratios), 2),
        "round_ratios": [round(ratio, 2) for ratio in ratios],
        "librosa_rounds_s": [round(phase.seconds, 3) for phase in loops],
        "ray_rounds_s": [round(phase.seconds, 3) for phase in started],
        "ratio_vs_librosa_first_request": round(loop_s / first.seconds, 2),
        "ratio_vs_librosa_from_nothing": round(
            (librosa_first.seconds + loop_s) / (ray_start.seconds + first.seconds), 2),
        "break_even_utterances_running_cluster": break_even(first_overhead_s),
        "break_even_utterances_from_nothing": break_even(ray_start.seconds + first_overhead_s),
        "cache_speedup": round(first.seconds / hit.seconds, 1),
        "librosa_driver_rss_mib": max(phase.driver_rss_mib for phase in loops),
        "ray_driver_rss_mib": max(phase.driver_rss_mib for phase in (first, *started)),
        "ray_tree_rss_mib": max(phase.tree_rss_mib for phase in (first, *started)),
    }


def _print_feature_figures(figures: dict[str, Any]) -> None:
    rounds = f"median of {figures['rounds']} rounds"
    rows = [
        ("librosa: first Mel matrix (once)", figures["librosa_first_matrix_s"], None, ""),
        (f"librosa loop, one process ({rounds})", figures["librosa_s"],
         figures["librosa_per_s"], f"{_spread(figures['librosa_rounds_s'])}; driver RSS "
                                   f"{figures['librosa_driver_rss_mib']:.0f} MiB"),
        ("Ray start: ray.init (once)", figures["ray_start_s"], None, ""),
        ("Ray Data: first request", figures["ray_first_request_s"],
         figures["ray_first_request_per_s"],
         f"{figures['ratio_vs_librosa_first_request']:.2f}x librosa; ≈"
         f"{figures['ray_first_request_overhead_s']:.1f} s more than later ones (worker start)"),
        (f"Ray Data: started workers ({rounds})", figures["ray_s"], figures["ray_per_s"],
         f"{_spread(figures['ray_rounds_s'])}; {figures['ratio_vs_librosa']:.2f}x librosa "
         f"(rounds {', '.join(f'{ratio:.2f}' for ratio in figures['round_ratios'])})"),
        ("cache hit", figures["cache_hit_s"], None,
         f"{figures['cache_speedup']:.0f}x faster than the first request"),
    ]
    for label, phase_seconds, rate, note in rows:
        throughput = f"{rate:8.1f} utterance·versions/s" if rate else " " * 29
        print(f"{label:48s} {phase_seconds:8.3f} s {throughput}  {note}")
    print(f"from nothing (both one-time costs counted): "
          f"{figures['ratio_vs_librosa_from_nothing']:.2f}x librosa at "
          f"{figures['utterances']} utterances")
    print(f"Ray is ahead from about "
          f"{_utterance_count(figures['break_even_utterances_running_cluster'])} on a running "
          f"cluster, {_utterance_count(figures['break_even_utterances_from_nothing'])} "
          f"counting ray.init (linear in the rates above; leans high)")
    print(f"peak memory while Ray ran: driver RSS {figures['ray_driver_rss_mib']:.0f} MiB, "
          f"summed RSS of the driver and all Ray processes "
          f"{figures['ray_tree_rss_mib']:.0f} MiB")
    print(f"max |Ray − librosa| over the first utterance's log-Mels: "
          f"{figures['max_abs_diff_vs_librosa']:g}")


def _spread(rounds_s: list[float]) -> str:
    return f"runs {min(rounds_s):.2f}–{max(rounds_s):.2f} s"


def _utterance_count(count: int | None) -> str:
    return "never (Ray is not faster per utterance)" if count is None else f"{count} utterances"
