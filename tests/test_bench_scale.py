"""`ser-ray bench scale` on a tiny cache: the figures it prints are consistent with the cache
it builds (its speed and memory targets are for the benchmark to show, not for a test)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ser_ray.bench.scale import _memory_cgroup
from ser_ray.cli import main
from ser_ray.errors import UserError
from ser_ray.features import load_features


@pytest.mark.slow
def test_bench_scale_builds_a_pipeline_shaped_cache_once_and_reports_every_figure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["bench", "scale", "--utterances", "70", "--versions", "2-3",
                 "--augmentations", "noise:snr=20", "--trials", "2",
                 "--cache-root", str(tmp_path)]
    assert main(arguments) == 0
    first = capsys.readouterr().out
    figures = json.loads(first.strip().splitlines()[-1])
    assert "built" in first.splitlines()[0]
    assert figures["rows_used"] == 70 * 2  # version 3: originals and noisy copies
    assert figures["used_bytes"] == figures["rows_used"] * 64 * 601 * 4
    for name in ("load_speedup", "load_speedup_cold", "peak_over_used",
                 "concurrent_memory_ratio", "concurrent_feature_memory_ratio",
                 "concurrent_memory_ratio_parquet"):
        assert figures[name] > 0, name
    for name in ("load_s", "load_s_cold", "peak_growth_bytes", "memory_bytes_idle",
                 "memory_bytes_one", "memory_bytes_together", "feature_memory_bytes_together",
                 "cache_bytes"):
        assert set(figures[name]) == {"parquet", "arrays"}, name
    # Every row's pages are mapped once the standardizer's pass has read them, and only the
    # Parquet way holds a copy per process.
    assert figures["feature_memory_bytes_one"]["arrays"] >= 0.9 * figures["used_bytes"]
    assert figures["concurrent_feature_memory_ratio_parquet"] > \
        figures["concurrent_feature_memory_ratio"]
    # Two idle processes share their libraries' pages: less than twice one, more than one.
    idle = figures["memory_bytes_idle"]["arrays"]
    assert idle < figures["memory_bytes_idle_together"]["arrays"] < 2 * idle
    every_version = figures["stft_augmentation"]
    assert every_version["stft_versions_read"] == [2, 3]
    assert every_version["rows_used"] == 2 * figures["rows_used"]
    assert set(every_version["load_s"]) == {"arrays"}  # the former way is not run for it
    assert every_version["concurrent_memory_ratio"] > 0
    (cache_path,) = [path for path in tmp_path.iterdir() if not path.name.startswith(".")]
    # Laid out as the feature stage lays out a cache: 64 utterances per Parquet part.
    parts = sorted((cache_path / "data").glob("*.parquet"))
    assert [pq.read_metadata(part).num_rows for part in parts] == [64 * 4, 6 * 4]
    loaded = load_features(cache_path, stft_versions=[3])
    assert len(loaded) == 140 and np.asarray(loaded.features).std() > 1

    assert main(arguments) == 0
    assert "reused" in capsys.readouterr().out.splitlines()[0]



@pytest.mark.slow
def test_under_a_memory_limit_the_arrays_load_and_a_trial_trains_within_its_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["bench", "scale", "--utterances", "40", "--versions", "1-2", "--trials", "1",
                 "--cache-root", str(tmp_path), "--memory-limit", "0.6"]
    try:
        _memory_cgroup(f"ser-ray-test-{os.getpid()}", 2**30).parent.rmdir()
    except UserError as error:
        pytest.skip(str(error))
    assert main(arguments) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["within_memory_limit"]["arrays"]["completed"]
    trained = figures["training_within_request"]
    assert trained["completed"], trained
    assert trained["train_versions"] == [1, 2] and trained["test_version"] == 2
    # Fold 0 of five session folds: four sessions' utterances, two versions, two copies each.
    assert trained["train_rows"] == 32 * 2 * 2
