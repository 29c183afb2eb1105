"""`ser-ray bench features`: the Ray Data log-Mel pipeline vs a single-process librosa loop
computing the same 8 versions, and a warm cache hit, with memory peaks."""

from __future__ import annotations

import json
import math
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

    from ser_ray.features.recipes import LogMelRecipe

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
    import psutil

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
    """Decode each file and compute every version with librosa, one after another."""
    from ser_ray.features.audio import load_waveform
    from ser_ray.features.logmel import librosa_log_mel

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


def bench_features(utterances: int = 300,
                   versions: Sequence[int] | None = None) -> dict[str, object]:
    """Ray Data log-Mels (cold cache) vs a single-process librosa loop, and a warm cache hit.

    `ray.init` is timed on its own. The first request then runs in the fresh cluster and
    pays for its workers' start (torch and librosa imports, Ray Data's helper actors); a
    second cold-cache request on the warm workers shows what later requests of a session
    get. `versions=None` takes the recipe's default, all eight.
    """
    from ser_ray.features import parse_recipe
    from ser_ray.features.logmel import librosa_log_mel
    from ser_ray.features.pipeline import build_features
    from ser_ray.ray_session import ensure_ray

    if utterances < 1:
        raise UserError(f"--utterances must be at least 1, got {utterances}")
    chosen = {"versions": list(versions)} if versions else {}
    recipe = parse_recipe({"kind": "logmel", **chosen})
    work = utterances * len(recipe.versions)
    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-") as tmp:
        root = Path(tmp)
        manifest_path = _synthetic_manifest(root, utterances)
        print(f"{utterances} utterances × {len(recipe.versions)} versions = {work} log-Mels",
              flush=True)
        # librosa loads scipy.signal and numba on its first Mel matrix (≈0.7 s); a loop over a
        # real corpus pays that once, so it stays out of the baseline's time.
        librosa_log_mel(np.zeros(recipe.n_samples, np.float32), recipe, recipe.versions[0])
        librosa_loop = _run_phase(lambda: _librosa_loop(manifest_path, recipe))
        ray_start = _run_phase(ensure_ray)
        cold = _run_phase(lambda: build_features(manifest_path, recipe, root / "cache"))
        hit = _run_phase(lambda: build_features(manifest_path, recipe, root / "cache"))
        warm_workers = _run_phase(lambda: build_features(manifest_path, recipe, root / "again"))
        feature_cache, _ = build_features(manifest_path, recipe, root / "cache")
        difference = _max_difference_to_librosa(manifest_path, recipe, feature_cache.path)
    with_start = ray_start.seconds + cold.seconds
    figures = {
        "utterances": utterances,
        "versions": list(recipe.versions),
        "librosa_s": round(librosa_loop.seconds, 3),
        "ray_start_s": round(ray_start.seconds, 3),
        "ray_cold_s": round(cold.seconds, 3),
        "ray_cold_warm_workers_s": round(warm_workers.seconds, 3),
        "cache_hit_s": round(hit.seconds, 4),
        "librosa_per_s": round(work / librosa_loop.seconds, 1),
        "ray_per_s": round(work / cold.seconds, 1),
        "ray_per_s_incl_start": round(work / with_start, 1),
        "ray_per_s_warm_workers": round(work / warm_workers.seconds, 1),
        "ratio_vs_librosa": round(librosa_loop.seconds / cold.seconds, 2),
        "ratio_vs_librosa_incl_start": round(librosa_loop.seconds / with_start, 2),
        "ratio_vs_librosa_warm_workers": round(librosa_loop.seconds / warm_workers.seconds, 2),
        "cache_speedup": round(cold.seconds / hit.seconds, 1),
        "librosa_driver_rss_mib": librosa_loop.driver_rss_mib,
        "ray_driver_rss_mib": max(cold.driver_rss_mib, warm_workers.driver_rss_mib),
        "ray_tree_rss_mib": max(cold.tree_rss_mib, warm_workers.tree_rss_mib),
        "max_abs_diff_vs_librosa": float(f"{difference:.2g}"),
    }
    _print_feature_figures(figures)
    print(json.dumps(figures))
    return figures


def _print_feature_figures(figures: dict[str, Any]) -> None:
    rows = [
        ("librosa loop, one process", figures["librosa_s"], figures["librosa_per_s"],
         f"driver RSS {figures['librosa_driver_rss_mib']:.0f} MiB"),
        ("Ray start (ray.init)", figures["ray_start_s"], None, ""),
        ("Ray Data, cold cache, fresh cluster", figures["ray_cold_s"], figures["ray_per_s"],
         (f"{figures['ratio_vs_librosa']:.2f}x librosa "
          f"({figures['ratio_vs_librosa_incl_start']:.2f}x counting Ray start)")),
        ("Ray Data, cold cache, warm workers", figures["ray_cold_warm_workers_s"],
         figures["ray_per_s_warm_workers"],
         f"{figures['ratio_vs_librosa_warm_workers']:.2f}x librosa"),
        ("cache hit", figures["cache_hit_s"], None,
         f"{figures['cache_speedup']:.0f}x faster than the cold request"),
    ]
    for label, phase_seconds, rate, note in rows:
        throughput = f"{rate:8.1f} utterance·versions/s" if rate else " " * 29
        print(f"{label:36s} {phase_seconds:8.3f} s {throughput}  {note}")
    print(f"peak memory while Ray ran: driver RSS {figures['ray_driver_rss_mib']:.0f} MiB, "
          f"summed RSS of the driver and all Ray processes "
          f"{figures['ray_tree_rss_mib']:.0f} MiB")
    print(f"max |Ray − librosa| over the first utterance's log-Mels: "
          f"{figures['max_abs_diff_vs_librosa']:g}")
