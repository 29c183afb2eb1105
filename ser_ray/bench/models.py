"""`ser-ray bench models`: forward + backward samples/s of every preset at batch 32, as a
ratio to eca_cnn-k4 measured in the same run (CPU, and CUDA when present)."""

from __future__ import annotations

import json
import time

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
