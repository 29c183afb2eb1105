"""Shared test helpers: real WAV files on disk at any rate and channel count, a tiny study's
data made without Ray, and one local Ray session for every test that needs Ray (starting Ray
costs seconds; it is started once).

Every test that uses the Ray session is marked `ray` (`make test-fast` skips them); a test
that starts Ray without it fails, naming the fixture to use."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

# Set before any Ray process starts: quiet, no auth token file, fast Train polling,
# one BLAS thread per worker on this 2-core box.
RAY_TEST_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "60",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "OMP_NUM_THREADS": "1",
}
for _name, _value in RAY_TEST_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)


def write_wav(path: Path, sample_rate: int = 16000, channels: int = 1, seconds: float = 0.3,
              seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = (0.1 * rng.standard_normal((int(sample_rate * seconds), channels))).astype("float32")
    soundfile.write(path, samples if channels > 1 else samples[:, 0], sample_rate)
    return path


@pytest.fixture
def wav_writer():
    return write_wav


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for the whole test session: 2 CPUs and no GPUs on any machine
    (the suite checks the CPU paths; a GPU-less cluster is what it asserts against), with the
    dashboard that serves the State API, as `ensure_ray` starts it."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=True,
                 object_store_memory=512 * 1024**2, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_only_where_marked(request: pytest.FixtureRequest):
    """A test outside the `ray` and `cluster` marks must not start Ray: `make test-fast` would
    pay for it, and its result would depend on a cluster it does not declare."""
    started_before = _ray_started()
    yield
    marked = {mark.name for mark in request.node.iter_markers()} & {"ray", "cluster"}
    if not marked and not started_before and _ray_started():
        pytest.fail("this test started Ray without the `ray` mark: use the ray_session fixture "
                    "(which marks it) or build its data without Ray (tiny_study)")


def _ray_started() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and hasattr(ray, "is_initialized") and ray.is_initialized()


@dataclass(frozen=True)
class TinyStudy:
    """A small synthetic IEMOCAP corpus taken through scan, 4-class selection, leave-one-
    session-out folds and a log-Mel cache (STFT versions 2 and 8, one noise copy), all made in
    this process, without Ray."""

    root: Path
    manifest: Path
    selected_manifest: Path
    folds: Path
    cache_root: Path
    cache: Path


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    from ser_ray.corpus import Selection
    from ser_ray.features import parse_augmentation, parse_recipe
    from ser_ray.features.featurize import build_features_here
    from ser_ray.folds import FoldProtocol
    from ser_ray.study.prepare import manifest_and_folds
    from ser_ray.synth import SynthConfig, write_synthetic_iemocap

    base = tmp_path_factory.mktemp("tiny_study")
    write_synthetic_iemocap(base / "corpus", SynthConfig(sessions=3, utterances_per_speaker=20))
    four_classes = Selection(labels=("angry", "happy", "neutral", "sad"),
                             merge={"excited": "happy"})
    manifest_and_folds("iemocap", base / "corpus", four_classes, FoldProtocol(kind="session"),
                       base, log=lambda _: None)
    recipe = parse_recipe({"kind": "logmel", "versions": [2, 8], "duration_s": 2.0})
    feature_cache, _ = build_features_here(base / "manifest_selected.parquet", recipe,
                                           base / "cache", [parse_augmentation("noise:snr=20")])
    return TinyStudy(root=base / "corpus", manifest=base / "manifest.parquet",
                     selected_manifest=base / "manifest_selected.parquet",
                     folds=base / "folds.parquet", cache_root=base / "cache",
                     cache=feature_cache.path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the Ray session are marked `ray`; tests that start their own Ray head run last
    (`ray stop` ends every Ray process here)."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
    items.sort(key=lambda item: item.get_closest_marker("cluster") is not None)
