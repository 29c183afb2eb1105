"""The `ser-ray` command line: each command parses, validates and calls one stage.

Exit status: 0 ok, 2 user error (bad flag, file or value; the message says what to fix).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ser_ray.errors import UserError

if TYPE_CHECKING:
    from ser_ray.study.run import StudyResult


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

    chosen = {
        "seed": args.seed,
        "sessions": args.sessions,
        "speakers_per_session": args.speakers_per_session,
        "utterances_per_speaker": args.utterances_per_speaker,
        "strength": args.strength,
    }
    config = SynthConfig(**{name: value for name, value in chosen.items() if value is not None})
    summary = write_synthetic_iemocap(args.out, config, progress=True)
    print(f"wrote {len(summary.records)} utterances to {args.out}")


def _folds(args: argparse.Namespace) -> None:
    from ser_ray.corpus import read_manifest
    from ser_ray.folds import FoldProtocol, check_folds, make_folds, write_folds

    manifest = read_manifest(args.manifest)
    protocol = FoldProtocol(kind=args.protocol, k=args.k, seed=args.seed,
                            repeats=args.repeats)
    folds = make_folds(manifest, protocol)
    check = check_folds(manifest, folds, protocol)
    write_folds(folds, protocol, check, args.out)
    print(check.describe())
    print(f"folds: {args.out}")


def _features(args: argparse.Namespace) -> None:
    from ser_ray.features import describe_cache, parse_augmentation, parse_recipe
    from ser_ray.features.pipeline import build_features

    options = {"versions": parse_versions(args.versions)} if args.versions else {}
    recipe = parse_recipe({"kind": args.recipe, **options})
    augmentations = [parse_augmentation(text) for text in args.augment]
    feature_cache, hit = build_features(
        args.manifest, recipe, args.cache, augmentations, seed=args.seed,
        batch_size=args.batch_size, concurrency=args.concurrency, device=args.device,
    )
    print(("cache hit: " if hit else "computed: ") + str(feature_cache.path))
    print(describe_cache(feature_cache))


def _train(args: argparse.Namespace) -> None:
    import yaml

    from ser_ray import models
    from ser_ray.experiment import paper_training
    from ser_ray.features import parse_augmentation, parse_recipe
    from ser_ray.features.pipeline import build_features
    from ser_ray.schema import validate
    from ser_ray.train import ModelChoice, TrainJob, train_folds
    from ser_ray.train.outputs import write_outputs
    from ser_ray.train.results import epoch_summary, format_epoch

    if args.workers < 0 or args.gpus < 0:
        raise UserError(f"--workers and --gpus must be 0 or more, got --workers {args.workers} "
                        f"--gpus {args.gpus}")
    settings = parse_settings(args.set)
    train_settings = settings_under(settings, "train.")
    recipe_settings = settings_under(settings, "recipe.")
    model_options = {key: value for key, value in settings.items()
                     if not key.startswith(("train.", "recipe."))}
    chosen = {"epochs": args.epochs, "test_version": args.version,
              "train_versions": parse_versions(args.train_versions) if args.train_versions
              else None, "augmentations": "all" if args.augment else None}
    train_settings.update({key: value for key, value in chosen.items() if value is not None})
    # A run's seed is not a training setting: `--seed` and `--set train.seed=` both give it.
    seed = train_settings.pop("seed", 0)
    if args.seed is not None:
        seed = args.seed
    config = paper_training(models.family(args.model), train_settings)
    if args.versions:
        recipe_settings["versions"] = parse_versions(args.versions)
    recipe = parse_recipe({"kind": args.recipe, **recipe_settings})
    feature_cache, _ = build_features(args.manifest, recipe, args.cache,
                                      [parse_augmentation(text) for text in args.augment])
    job = validate(TrainJob, {"manifest": args.manifest, "folds": args.folds,
                              "cache": feature_cache.path, "train": config, "seed": seed,
                              "model": ModelChoice(name=args.model, options=model_options)},
                   "ser-ray train")
    print(f"training {args.model} on {feature_cache.path}:\n"
          + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=True).rstrip())
    if args.workers == 0:
        outcome = train_folds(job, checkpoint_dir=args.out / "checkpoint", on_epoch=lambda
                              records, run: print(format_epoch(epoch_summary(records),
                                                               config.epochs), flush=True))
    else:
        from ser_ray.train.ray_train import train_folds_on_ray

        outcome = train_folds_on_ray(job, storage_path=args.out / "ray", name="train",
                                     workers=args.workers, gpus=args.gpus, verbose=True)
    summary = write_outputs(outcome, args.out)
    mean = summary["fold_mean"]
    print(f"selected epochs ({summary['selection']}"
          f"{', OPTIMISTIC' if summary['optimistic'] else ''}): fold-mean UA "
          f"{mean['unweighted_accuracy']:.4f}, WA {mean['weighted_accuracy']:.4f}, macro-F1 "
          f"{mean['macro_f1']:.4f}; pooled UA {summary['pooled']['unweighted_accuracy']:.4f}")
    print(f"outputs: {args.out}")


def parse_settings(items: Sequence[str]) -> dict[str, object]:
    """`key=value` pairs; values read as YAML (`1e-3` → float, `[5, 6]` → list)."""
    import yaml

    settings: dict[str, object] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise UserError(f"--set {item!r}: write it as key=value, e.g. scale=2 or "
                            f"train.lr=0.0005")
        try:
            settings[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise UserError(f"--set {item!r}: the value is not valid YAML ({error})") from error
    return settings


def _search(args: argparse.Namespace) -> None:
    from ser_ray.study.schema import load_study

    study = load_study(args.study, parse_settings(args.set), args.paths_relative_to)
    if args.dry_run:
        from ser_ray.study.plan import describe_plan

        print(describe_plan(study))
        return
    if args.out is None:
        raise UserError("--out DIR is required to run a study (or use --dry-run)")
    from ser_ray.report import write_progress, write_report
    from ser_ray.study.run import run_study

    _finish_study(run_study(args.study, args.out, args.cache, study=study,
                            on_progress=write_progress, on_finish=write_report))


def _resume(args: argparse.Namespace) -> None:
    from ser_ray.report import write_progress, write_report
    from ser_ray.study.run import resume_study

    _finish_study(resume_study(args.experiment_dir, args.cache, on_progress=write_progress,
                               on_finish=write_report))


def _finish_study(result: StudyResult) -> None:
    print(f"units: {result.units_recorded} of {result.units_planned} recorded "
          f"({result.units_run} this run)")
    print(f"report: {result.report}")
    if result.best_model is not None:
        print(f"best model: {result.best_model} (ser-ray predict --checkpoint "
              f"{result.best_model} FILE.wav)")


def _report(args: argparse.Namespace) -> None:
    from ser_ray.report import write_report

    print(f"report: {write_report(args.experiment_dir)}")


def _monitor(args: argparse.Namespace) -> None:
    from ser_ray.monitor import run_monitor

    run_monitor(args.experiment_dir, args.port, args.screenshot)


def settings_under(settings: dict[str, object], prefix: str) -> dict[str, object]:
    """The settings whose keys start with `prefix`, nested by their remaining dots
    (`train.loss.gamma=1` → {"loss": {"gamma": 1}})."""
    from ser_ray.schema import set_dotted

    nested: dict[str, object] = {}
    for key, value in settings.items():
        if key.startswith(prefix):
            set_dotted(nested, key.removeprefix(prefix), value)
    return nested


def parse_versions(text: str) -> list[int]:
    """`1-8` or `1,3,5` → a list of STFT versions."""
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            return list(range(first, last + 1))
        return [int(part) for part in text.split(",")]
    except ValueError as error:
        raise UserError(f"--versions {text!r}: write a range like 1-8 or a list like 1,3,5") \
            from error


def _demo(args: argparse.Namespace) -> None:
    from ser_ray.demo import run_demo

    run_demo(args.out, quick=args.quick, cache_root=args.cache)


def _predict(args: argparse.Namespace) -> None:
    from ser_ray.predict import Predictor, format_predictions

    predictor = Predictor(args.checkpoint)
    predictions = [predictor.predict(path) for path in args.files]
    if args.json:
        print(json.dumps([{"path": p.path, "label": p.label, "probabilities": p.probabilities,
                           "error": p.error} for p in predictions], indent=2))
    else:
        print(format_predictions(predictions, predictor.label_names))
    failed = [p for p in predictions if p.error]
    if failed:
        raise UserError(f"{len(failed)} of {len(predictions)} files could not be labelled: "
                        + "; ".join(f"{p.path}: {p.error}" for p in failed))


def _export(args: argparse.Namespace) -> None:
    from ser_ray.predict import Predictor

    out = Predictor(args.checkpoint).export(args.out)
    loader = ("onnxruntime.InferenceSession(path)" if out.suffix == ".onnx"
              else "torch.export.load(path).module()")
    print(f"exported: {out} (load with {loader}; recipe and labels in "
          f"{out.with_suffix('.json')})")


def _bench_scan(args: argparse.Namespace) -> None:
    from ser_ray.bench.scan import bench_scan

    bench_scan(args.files)


def _bench_models(args: argparse.Namespace) -> None:
    from ser_ray.bench.models import bench_models

    bench_models(args.seconds)


def _bench_features(args: argparse.Namespace) -> None:
    from ser_ray.bench.features import bench_features

    bench_features(args.utterances, parse_versions(args.versions), args.rounds)


def _bench_scale(args: argparse.Namespace) -> None:
    from ser_ray.bench.scale import bench_scale, default_cache_root
    from ser_ray.features import parse_augmentation

    augmentations = [parse_augmentation(text).name for text in args.augmentations]
    bench_scale(args.utterances, parse_versions(args.versions), augmentations, args.trials,
                args.cache_root or default_cache_root(),
                memory_limit=None if args.memory_limit is None else args.memory_limit * 2**30)


def _bench_train(args: argparse.Namespace) -> None:
    from ser_ray.bench.train import bench_train

    bench_train(args.epochs, args.utterances_per_speaker, cpus=args.cpus, rounds=args.rounds)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive integer")
    return int(text)


def _trial_budgets(text: str) -> tuple[int, ...]:
    try:
        budgets = tuple(int(part) for part in text.split(","))
    except ValueError:
        budgets = ()
    if not budgets or min(budgets) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: trial budgets are positive integers, "
                                         f"e.g. 12 or 8,12,24")
    return budgets


# The options each mode of `ser-ray bench search` takes; its functions hold the defaults.
BENCH_SEARCH_OPTIONS = {"record": ("out", "cache"),
                        "live": ("strategy", "seed", "trials", "out", "cache"),
                        "replay": ("trials", "seeds")}


def _bench_search(args: argparse.Namespace) -> None:
    from ser_ray.bench import search

    mode = "record" if args.record else "live" if args.live else "replay"
    given = {name: getattr(args, name) for name in ("strategy", "seed", "trials", "seeds", "out",
                                                   "cache") if getattr(args, name) is not None}
    stray = sorted(set(given) - set(BENCH_SEARCH_OPTIONS[mode]))
    if stray:
        what = "the replay" if mode == "replay" else f"--{mode}"
        raise UserError(f"{what} takes "
                        f"{', '.join('--' + name for name in sorted(BENCH_SEARCH_OPTIONS[mode]))}"
                        f", not {', '.join('--' + name for name in stray)}")
    if mode == "live" and "trials" in given:
        if len(given["trials"]) > 1:
            raise UserError(f"--live runs one trial budget, not {len(given['trials'])}")
        given["trials"] = given["trials"][0]
    {"record": search.record, "live": search.live_check,
     "replay": search.bench_search}[mode](**given)


def _models(args: argparse.Namespace) -> None:
    from tabulate import tabulate

    from ser_ray import models

    rows = [
        (name, "model", "-", models.input_shape(name), models.count_parameters(
            models.build(name, num_classes=4)), "default options, 4 classes")
        for name in models.names()
    ]
    for preset_name in models.preset_names():
        chosen = models.get_preset(preset_name)
        rows.append((
            preset_name, chosen.model, chosen.num_classes,
            models.input_shape(chosen.model, **chosen.options),
            models.count_parameters(models.build_preset(chosen)), chosen.description,
        ))
    print(tabulate(rows, headers=["name", "model", "classes", "input", "parameters", "what"],
                   intfmt=","))


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
    synth.add_argument("--seed", type=int, help="default 0")
    synth.add_argument("--sessions", type=int, help="1..5 (default 5)")
    synth.add_argument("--speakers-per-session", type=int, help="1 or 2 (default 2)")
    synth.add_argument("--utterances-per-speaker", type=int, help="default 50")
    synth.add_argument("--strength", type=float,
                       help="0..1: how strongly emotions shape the voice (default 1)")
    synth.set_defaults(handler=_synth)

    folds = commands.add_parser("folds", help="speaker/session-aware folds with a leak check")
    folds.add_argument("--manifest", required=True, type=Path)
    folds.add_argument("--protocol", required=True, choices=["stratified", "session", "speaker"])
    folds.add_argument("--k", type=int, default=None,
                       help="folds (stratified: required; session/speaker: default one per group)")
    folds.add_argument("--seed", type=int, default=0)
    folds.add_argument("--repeats", type=int, default=1,
                       help="stratified: repeat the k-fold split with seeds seed, seed+1, ...")
    folds.add_argument("--out", required=True, type=Path)
    folds.set_defaults(handler=_folds)

    features = commands.add_parser("features", help="Ray Data features into a content cache")
    features.add_argument("--manifest", required=True, type=Path)
    features.add_argument("--recipe", required=True,
                          help="logmel, mfcc_segments, zcr_mfcc_vector or spectral_stats")
    features.add_argument("--versions", help="logmel STFT versions, e.g. 1-8 or 2,4")
    features.add_argument("--augment", action="append", default=[], metavar="SPEC",
                          help="extra training copies, e.g. noise:snr=20 (repeatable)")
    features.add_argument("--cache", required=True, type=Path, help="cache root folder")
    features.add_argument("--seed", type=int, default=0, help="augmentation seed")
    features.add_argument("--batch-size", type=int, default=8)
    features.add_argument("--concurrency", type=int, default=None,
                          help="parallel featurizers (default: the cluster's CPUs)")
    features.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                          help="where features are computed (cuda: one GPU per task)")
    features.set_defaults(handler=_features)

    train = commands.add_parser("train", help="k-fold training with SER metrics")
    train.add_argument("--manifest", required=True, type=Path)
    train.add_argument("--folds", required=True, type=Path)
    train.add_argument("--cache", required=True, type=Path, help="feature cache root folder")
    train.add_argument("--recipe", required=True, help="feature recipe, e.g. logmel")
    train.add_argument("--versions", help="logmel STFT versions in the cache, e.g. 1-8")
    train.add_argument("--augment", action="append", default=[], metavar="SPEC",
                       help="augmented training copies, e.g. noise:snr=20 (repeatable)")
    train.add_argument("--version", type=int, help="STFT version the test set is scored at")
    train.add_argument("--train-versions", help="STFT versions that train (STFT augmentation)")
    train.add_argument("--model", required=True, help="model or preset name (ser-ray models)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="model option (scale=2), training setting (train.lr=0.0005) or "
                       "feature recipe field (recipe.duration_s=3); repeatable")
    train.add_argument("--epochs", type=int, help="default: the paper's")
    train.add_argument("--seed", type=int)
    train.add_argument("--workers", type=int, default=1,
                       help="Ray Train workers (default 1); 0 trains in this process")
    train.add_argument("--gpus", type=float, default=0, help="GPUs in all (default 0)")
    train.add_argument("--out", required=True, type=Path)
    train.set_defaults(handler=_train)

    search = commands.add_parser("search", help="run a study YAML (search or ablation)")
    search.add_argument("study", type=Path, help="study YAML, e.g. search_spaces/demo.yaml")
    search.add_argument("--out", type=Path, help="experiment directory")
    search.add_argument("--cache", type=Path, help="feature cache root (default: the study's "
                        "cache_dir, $SER_RAY_CACHE or ~/.cache/ser-ray/features)")
    search.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a study field, e.g. budget.epochs=2 (repeatable)")
    search.add_argument("--paths-relative-to", type=Path, metavar="DIR",
                        help="resolve the study's relative paths (corpus root, cache_dir, "
                        "storage_path) against DIR instead of the YAML's folder "
                        "(cluster/submit.sh passes the folder the YAML was named in)")
    search.add_argument("--dry-run", action="store_true",
                        help="validate and print the units, resources and budget; run nothing")
    search.set_defaults(handler=_search)

    resume = commands.add_parser("resume", help="continue a study: run only missing units")
    resume.add_argument("experiment_dir", type=Path)
    resume.add_argument("--cache", type=Path, help="feature cache root")
    resume.set_defaults(handler=_resume)

    report = commands.add_parser("report", help="rebuild a study's report from its ledger")
    report.add_argument("experiment_dir", type=Path)
    report.set_defaults(handler=_report)

    monitor = commands.add_parser(
        "monitor", help="optuna-dashboard and TensorBoard on a study (127.0.0.1), until Ctrl-C")
    monitor.add_argument("experiment_dir", type=Path)
    monitor.add_argument("--port", type=int, default=8080,
                         help="optuna-dashboard's port; TensorBoard gets the next (default 8080)")
    monitor.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                         help="save headless Chromium's picture of the study's trial list "
                              "there, then stop (needs Debian's chromium)")
    monitor.set_defaults(handler=_monitor)

    demo = commands.add_parser("demo", help="every stage on the offline corpus, to a report")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--quick", action="store_true",
                      help="a small corpus, 2 epochs, 4 search trials (a few minutes)")
    demo.add_argument("--cache", type=Path, help="feature cache root")
    demo.set_defaults(handler=_demo)

    predict = commands.add_parser("predict", help="emotion probabilities of WAV files")
    predict.add_argument("--checkpoint", required=True, type=Path,
                         help="predictor.pt (ser-ray train OUT/model/, or a study's best_model/)")
    predict.add_argument("files", nargs="+", type=Path)
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(handler=_predict)

    export = commands.add_parser("export", help="a predictor as ONNX or a torch.export program")
    export.add_argument("--checkpoint", required=True, type=Path)
    export.add_argument("--out", required=True, type=Path,
                        help="model.onnx (ONNX) or model.pt2 (torch.export)")
    export.set_defaults(handler=_export)

    listing = commands.add_parser("models", help="every model and preset, shape and size")
    listing.set_defaults(handler=_models)

    bench = commands.add_parser("bench", help="benchmarks that print ratios to a baseline")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    bench_scan = bench_commands.add_parser("scan", help="header-only scan vs decoding")
    bench_scan.add_argument("--files", type=int, default=10_000)
    bench_scan.set_defaults(handler=_bench_scan)
    bench_models = bench_commands.add_parser("models", help="train-step throughput per preset")
    bench_models.add_argument("--seconds", type=float, default=2.0,
                              help="time per preset and device (default 2)")
    bench_models.set_defaults(handler=_bench_models)
    bench_features = bench_commands.add_parser(
        "features", help="Ray Data log-Mels vs a librosa loop, and a cache hit")
    bench_features.add_argument("--utterances", type=int, default=300,
                                help="synthetic utterances (default 300)")
    bench_features.add_argument("--versions", default="1-8",
                                help="logmel STFT versions, e.g. 1-8 or 2,4 (default 1-8)")
    bench_features.add_argument("--rounds", type=int, default=3,
                                help="alternating librosa / Ray rounds, median reported "
                                     "(default 3)")
    bench_features.set_defaults(handler=_bench_features)
    bench_scale = bench_commands.add_parser(
        "scale", help="a trial's feature loading and memory: Parquet vs the shared arrays")
    bench_scale.add_argument("--utterances", type=int, default=400,
                             help="synthetic utterances (default 400; IEMOCAP 4-class: 2943)")
    bench_scale.add_argument("--versions", default="1-8",
                             help="STFT versions in the cache, e.g. 1-8 (default 1-8)")
    bench_scale.add_argument("--augmentations", nargs="*", default=["noise:snr=20"],
                             help="augmented copies in the cache (default noise:snr=20; "
                                  "none when given no value)")
    bench_scale.add_argument("--trials", type=int, default=4,
                             help="concurrent trial processes (default 4)")
    bench_scale.add_argument("--cache-root", type=Path, default=None,
                             help="where the synthetic cache is built once and reused "
                                  "(default ~/.cache/ser-ray/bench-scale)")
    bench_scale.add_argument("--memory-limit", type=float, default=None, metavar="GIB",
                             help="also load each way once in a memory cgroup of GIB GiB, "
                                  "and train one epoch of a trial on the last two STFT "
                                  "versions (or the only one) in one of the memory Ray "
                                  "reserves for it (Linux, root): the arrays page in on "
                                  "demand")
    bench_scale.set_defaults(handler=_bench_scale)
    bench_train = bench_commands.add_parser(
        "train", help="per-epoch time: plain k-fold loop vs Ray Train (1 worker)")
    bench_train.add_argument("--epochs", type=int, default=5, help="at least 3 (default 5)")
    bench_train.add_argument("--utterances-per-speaker", type=int, default=50,
                             help="synthetic corpus size (10 speakers; default 50)")
    bench_train.add_argument("--cpus", type=int, default=2,
                             help="threads of both paths (default 2)")
    bench_train.add_argument("--rounds", type=int, default=3,
                             help="alternating runs of each path (default 3)")
    bench_train.set_defaults(handler=_bench_train)
    bench_search = bench_commands.add_parser(
        "search", help="search strategies replayed on a recorded 64-configuration grid, over "
                       "seeds: gap to the grid's best UA and fraction of its fold-epochs")
    mode = bench_search.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true",
                      help="train the grid whole (about an hour here) and write its table "
                           "search_spaces/bench/grid64.parquet")
    mode.add_argument("--live", action="store_true",
                      help="run one strategy through real Ray Tune and compare its "
                           "decisions with the replay's")
    bench_search.add_argument("--trials", type=_trial_budgets, default=None,
                              help="trials per search; a comma list replays each budget, the "
                                   "first is the headline (default 12; --live: one budget)")
    bench_search.add_argument("--seeds", type=_positive_int, default=None,
                              help="replays per strategy (default 10)")
    bench_search.add_argument("--strategy", default=None,
                              help="--live: one of ser-ray's strategies the replay compares "
                                   "(default tpe+racing)")
    bench_search.add_argument("--seed", type=int, default=None,
                              help="--live: its sampler seed (default 0)")
    bench_search.add_argument("--out", type=Path, default=None,
                              help="--record/--live: the experiment directory (default: a "
                                   "temporary one; --record continues one it finds)")
    bench_search.add_argument("--cache", type=Path, default=None,
                              help="--record/--live: feature cache root")
    bench_search.set_defaults(handler=_bench_search)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as error:
        print(f"ser-ray: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0
