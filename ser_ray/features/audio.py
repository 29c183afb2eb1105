"""Decode one file to a mono float32 waveform at the recipe's rate, or say why it is unusable.

Stereo and other sample rates are normal input: channels are averaged and the signal is
resampled with soxr. A file that decodes but holds nothing usable (NaN/inf samples, all
zeros, too few samples to leave one at the recipe's rate) is refused here, before any feature
is computed from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from ser_ray.errors import unreadable_reason


class BadAudio(Exception):
    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


def load_waveform(path: str | Path, sample_rate: int) -> np.ndarray:
    """(samples,) float32 mono at `sample_rate`, or BadAudio naming what is wrong."""
    try:
        samples, native_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise _decode_failure(Path(path), error) from error
    if samples.shape[0] == 0:
        raise BadAudio("empty", "no audio samples")
    if not np.isfinite(samples).all():
        raise BadAudio("not_finite", "NaN or infinite samples")
    mono = samples.mean(axis=1)
    if not np.any(mono):
        raise BadAudio("all_zero", "every sample is zero (silent file)")
    if native_rate != sample_rate:
        mono = soxr.resample(mono, native_rate, sample_rate, quality="HQ")
    if mono.size == 0:
        raise BadAudio("too_short", f"{samples.shape[0]} sample(s) at {native_rate} Hz leave "
                                    f"none after resampling to {sample_rate} Hz")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _decode_failure(path: Path, error: Exception) -> BadAudio:
    """libsndfile reports a missing or unreadable file as undecodable audio; opening the file
    says what is really wrong."""
    try:
        path.open("rb").close()
    except OSError as open_error:
        return BadAudio("unreadable", unreadable_reason(path, open_error))
    return BadAudio("decode_error", f"could not decode audio ({error})")
