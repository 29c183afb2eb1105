"""`ser-ray bench scan`: the header-only corpus scan vs decoding every file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from ser_ray.bench import seconds
from ser_ray.corpus.scan import scan_corpus, walk_tree
from ser_ray.errors import UserError

ESD_SPEAKERS = tuple(f"{n:04d}" for n in range(1, 21))
BENCH_AUDIO_S = 3.0


def _esd_tree(root: Path, files: int) -> None:
    """`files` ESD-named hard links to one 3 s WAV: a realistic tree without gigabytes."""
    template = root / "template.wav"
    rng = np.random.default_rng(0)
    soundfile.write(template, rng.normal(0, 0.1, int(16000 * BENCH_AUDIO_S)), 16000)
    for index in range(files):
        speaker = ESD_SPEAKERS[index % len(ESD_SPEAKERS)]
        folder = root / "esd" / speaker
        folder.mkdir(parents=True, exist_ok=True)
        os.link(template, folder / f"{speaker}_{index // len(ESD_SPEAKERS) + 1:06d}.wav")


def bench_scan(files: int) -> dict[str, float]:
    """Our scan vs a loader that decodes every file (what header-only probing saves)."""
    if not 1 <= files <= 35_000:
        raise UserError(f"--files must be within 1..35000 (ESD names), got {files}")
    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-") as tmp:
        root = Path(tmp)
        _esd_tree(root, files)
        corpus_root = root / "esd"
        scan_s = seconds(lambda: scan_corpus("esd", corpus_root))
        decode_s = seconds(
            lambda: [soundfile.read(str(path)) for path in walk_tree(corpus_root).files]
        )
    figures = {
        "files": files,
        "scan_s": round(scan_s, 3),
        "scan_files_per_s": round(files / scan_s, 1),
        "decode_all_s": round(decode_s, 3),
        "decode_over_scan": round(decode_s / scan_s, 2),
    }
    print(f"scan of {files} files: {scan_s:.2f} s ({files / scan_s:,.0f} files/s)")
    print(f"baseline, decoding every file: {decode_s:.2f} s → scan is "
          f"{decode_s / scan_s:.1f}x faster")
    print(json.dumps(figures))
    return figures
