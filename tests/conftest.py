"""Shared test helpers: real WAV files written to disk at any rate and channel count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile


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
