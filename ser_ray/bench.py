"""`ser-ray bench ...`: speed figures as ratios against a baseline measured in the same run."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from ser_ray.corpus.scan import scan_corpus, walk_files
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


def _seconds(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def bench_scan(files: int) -> dict[str, float]:
    """Our scan vs a loader that decodes every file (what header-only probing saves)."""
    if not 1 <= files <= 35_000:
        raise UserError(f"--files must be within 1..35000 (ESD names), got {files}")
    with tempfile.TemporaryDirectory(prefix="ser-ray-bench-") as tmp:
        root = Path(tmp)
        _esd_tree(root, files)
        corpus_root = root / "esd"
        scan_s = _seconds(lambda: scan_corpus("esd", corpus_root))
        decode_s = _seconds(
            lambda: [soundfile.read(str(path)) for path in walk_files(corpus_root)]
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


BENCH_BATCH = 32
BASELINE_PRESET = "eca_cnn-k4"


def _train_steps_per_s(preset_name: str, device: str, min_seconds: float) -> float:
    """Forward + backward samples/s at batch 32 (one warm-up step, then at least min_seconds)."""
    import torch

    from ser_ray import models

    chosen = models.get_preset(preset_name)
    model = models.build_preset(chosen).to(device)
    inputs = torch.randn(BENCH_BATCH, *models.input_shape(chosen.model, **chosen.options),
                         device=device)
    targets = torch.randint(0, chosen.num_classes, (BENCH_BATCH,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()

    step()
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < min_seconds:
        step()
        steps += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * BENCH_BATCH / (time.perf_counter() - start)


def bench_models(min_seconds: float = 2.0) -> dict[str, dict[str, float]]:
    """Training throughput of every preset, as a ratio to eca_cnn-k4 measured in the same run."""
    import torch

    from ser_ray import models

    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    figures: dict[str, dict[str, float]] = {}
    for device in devices:
        baseline = _train_steps_per_s(BASELINE_PRESET, device, min_seconds)
        for preset_name in models.preset_names():
            rate = (baseline if preset_name == BASELINE_PRESET
                    else _train_steps_per_s(preset_name, device, min_seconds))
            figures[f"{device}:{preset_name}"] = {
                "samples_per_s": round(rate, 1), "vs_baseline": round(rate / baseline, 3)}
            print(f"{device:4s} {preset_name:28s} {rate:10.1f} samples/s "
                  f"({rate / baseline:.2f}x {BASELINE_PRESET})", flush=True)
    print(json.dumps({"batch": BENCH_BATCH, "baseline": BASELINE_PRESET, "figures": figures}))
    return figures
