"""The offline demo: synthetic corpus → manifest → 4-class selection → leak-checked folds.

Every step is the same code a user runs on a real corpus (`ser-ray corpus scan`, `corpus
select`, `folds`); only the corpus is generated here, so the demo needs no download.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ser_ray.corpus import Selection, scan_corpus, select_manifest, summarize, write_scan
from ser_ray.corpus.scan import describe_manifest
from ser_ray.folds import FoldProtocol, check_folds, make_folds, write_folds
from ser_ray.synth import SynthConfig, write_synthetic_iemocap

FOUR_CLASSES = Selection(
    labels=("angry", "happy", "neutral", "sad"), merge={"excited": "happy"}
)
LEAVE_ONE_SESSION_OUT = FoldProtocol(kind="session", k=None, seed=0)


@dataclass(frozen=True)
class DemoOutputs:
    corpus_root: Path
    manifest: Path
    selected_manifest: Path
    folds: Path
    summary: Path


def run_demo(out_dir: Path, synth_config: SynthConfig | None = None) -> DemoOutputs:
    outputs = DemoOutputs(
        corpus_root=out_dir / "corpus",
        manifest=out_dir / "manifest.parquet",
        selected_manifest=out_dir / "manifest_4class.parquet",
        folds=out_dir / "folds.parquet",
        summary=out_dir / "summary.txt",
    )
    report: list[str] = []

    def step(title: str, started: float, lines: list[str]) -> None:
        block = [f"== {title} ({time.perf_counter() - started:.1f} s)", *lines]
        print("\n".join(block), flush=True)
        report.extend(block)

    started = time.perf_counter()
    shutil.rmtree(outputs.corpus_root, ignore_errors=True)
    synth = write_synthetic_iemocap(
        outputs.corpus_root, synth_config or SynthConfig(), progress=True
    )
    step("synthesize", started, [f"{len(synth.records)} utterances in {outputs.corpus_root}"])

    started = time.perf_counter()
    scan = scan_corpus("iemocap", outputs.corpus_root, progress=True)
    write_scan(scan, outputs.manifest)
    step("scan", started, [summarize(scan), f"manifest: {outputs.manifest}"])

    started = time.perf_counter()
    selected = select_manifest(outputs.manifest, FOUR_CLASSES, outputs.selected_manifest)
    step("select angry/happy(+excited)/neutral/sad", started,
         [f"{len(selected)} utterances", *describe_manifest(selected)])

    started = time.perf_counter()
    folds = make_folds(selected, LEAVE_ONE_SESSION_OUT)
    check = check_folds(selected, folds, LEAVE_ONE_SESSION_OUT)
    write_folds(folds, LEAVE_ONE_SESSION_OUT, check, outputs.folds)
    step("folds: leave one session out", started, [check.describe(), f"folds: {outputs.folds}"])

    outputs.summary.write_text("\n".join(report) + "\n")
    print(f"\nsummary: {outputs.summary}")
    return outputs
