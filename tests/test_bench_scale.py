"""`ser-ray bench scale` on a tiny cache: the figures it prints are consistent with the cache
it builds (its speed and memory targets are for the benchmark to show, not for a test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ser_ray.cli import main
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
    for name in ("load_speedup", "peak_over_used", "concurrent_memory_ratio",
                 "concurrent_process_memory_ratio"):
        assert figures[name] > 0, name
    for name in ("load_s", "peak_growth_bytes", "feature_pss_bytes_one",
                 "process_pss_bytes_together", "cache_bytes"):
        assert set(figures[name]) >= {"parquet", "arrays"}, name
    (cache_path,) = [path for path in tmp_path.iterdir() if not path.name.startswith(".")]
    # Laid out as the feature stage lays out a cache: 64 utterances per Parquet part.
    parts = sorted((cache_path / "data").glob("*.parquet"))
    assert [pq.read_metadata(part).num_rows for part in parts] == [64 * 4, 6 * 4]
    loaded = load_features(cache_path, stft_versions=[3])
    assert len(loaded) == 140 and np.asarray(loaded.features).std() > 1

    assert main(arguments) == 0
    assert "reused" in capsys.readouterr().out.splitlines()[0]
