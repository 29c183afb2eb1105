"""The `ser-ray` command line: each command parses, validates and calls one stage.

Exit status: 0 ok, 2 user error (bad flag, file or value; the message says what to fix).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ser_ray.errors import UserError


def _scan(args: argparse.Namespace) -> None:
    from ser_ray.corpus import scan_corpus, summarize, write_scan

    result = scan_corpus(args.corpus, args.root, args.min_duration, progress=True)
    write_scan(result, args.out)
    print(summarize(result))
    print(f"manifest: {args.out}")


def _select(args: argparse.Namespace) -> None:
    from ser_ray.corpus import Selection, parse_merge, select_manifest
    from ser_ray.corpus.scan import describe_manifest

    selection = Selection(
        labels=tuple(label.strip() for label in args.labels.split(",") if label.strip()),
        merge=parse_merge(args.merge),
        improvised_only=args.improvised_only,
    )
    selected = select_manifest(args.manifest, selection, args.out)
    print(f"selected {len(selected)} utterances")
    print("\n".join(describe_manifest(selected)))
    print(f"manifest: {args.out}")


def _synth(args: argparse.Namespace) -> None:
    from ser_ray.synth import SynthConfig, write_synthetic_iemocap

    config = SynthConfig(
        seed=args.seed,
        sessions=args.sessions,
        speakers_per_session=args.speakers_per_session,
        utterances_per_speaker=args.utterances_per_speaker,
        strength=args.strength,
    )
    summary = write_synthetic_iemocap(args.out, config, progress=True)
    print(f"wrote {len(summary.records)} utterances to {args.out}")


def _folds(args: argparse.Namespace) -> None:
    from ser_ray.corpus import read_manifest
    from ser_ray.folds import FoldProtocol, check_folds, make_folds, write_folds

    manifest = read_manifest(args.manifest)
    protocol = FoldProtocol(kind=args.protocol, k=args.k, seed=args.seed)
    folds = make_folds(manifest, protocol)
    check = check_folds(manifest, folds, protocol)
    write_folds(folds, protocol, check, args.out)
    print(check.describe())
    print(f"folds: {args.out}")


def _demo(args: argparse.Namespace) -> None:
    from ser_ray.demo import run_demo

    run_demo(args.out)


def _bench_scan(args: argparse.Namespace) -> None:
    from ser_ray.bench import bench_scan

    bench_scan(args.files)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ser-ray", description="Speech-emotion-recognition studies on Ray."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="scan, select and synthesize corpora")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)

    scan = corpus_commands.add_parser("scan", help="corpus tree → manifest (headers only)")
    scan.add_argument("--corpus", required=True, help="corpus name, e.g. iemocap")
    scan.add_argument("--root", required=True, type=Path, help="the corpus's root folder")
    scan.add_argument("--out", required=True, type=Path, help="manifest .parquet to write")
    scan.add_argument("--min-duration", type=float, default=0.1, help="seconds (default 0.1)")
    scan.set_defaults(handler=_scan)

    select = corpus_commands.add_parser("select", help="keep and merge classes")
    select.add_argument("--manifest", required=True, type=Path)
    select.add_argument("--labels", required=True, help="comma-separated, e.g. angry,happy")
    select.add_argument("--merge", action="append", default=[], metavar="SOURCE=TARGET",
                        help="relabel SOURCE as TARGET before selecting (repeatable)")
    select.add_argument("--improvised-only", action="store_true",
                        help="IEMOCAP: keep improvised dialogs only")
    select.add_argument("--out", required=True, type=Path)
    select.set_defaults(handler=_select)

    synth = corpus_commands.add_parser("synth", help="write the offline IEMOCAP-shaped corpus")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--sessions", type=int, default=5)
    synth.add_argument("--speakers-per-session", type=int, default=2)
    synth.add_argument("--utterances-per-speaker", type=int, default=50)
    synth.add_argument("--strength", type=float, default=None,
                       help="0..1: how strongly emotions shape the voice")
    synth.set_defaults(handler=_synth)

    folds = commands.add_parser("folds", help="speaker/session-aware folds with a leak check")
    folds.add_argument("--manifest", required=True, type=Path)
    folds.add_argument("--protocol", required=True, choices=["stratified", "session", "speaker"])
    folds.add_argument("--k", type=int, default=None,
                       help="folds (stratified: required; session/speaker: default one per group)")
    folds.add_argument("--seed", type=int, default=0)
    folds.add_argument("--out", required=True, type=Path)
    folds.set_defaults(handler=_folds)

    demo = commands.add_parser("demo", help="the offline demo on the synthetic corpus")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser("bench", help="benchmarks that print ratios to a baseline")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    bench_scan = bench_commands.add_parser("scan", help="header-only scan vs decoding")
    bench_scan.add_argument("--files", type=int, default=10_000)
    bench_scan.set_defaults(handler=_bench_scan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as error:
        print(f"ser-ray: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0
