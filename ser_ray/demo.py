"""`ser-ray demo`: every stage on the embedded offline corpus, ending in a report and a model.

Two studies from `search_spaces/` run on one local Ray cluster: the ablation `demo.yaml`
(synthesize → scan → 4 classes → leave-one-session-out folds → Ray Data features at all 8
STFT versions plus a noise copy → eca_cnn with/without ECA × two STFT versions × STFT
augmentation) and the TPE + ASHA search `demo_search.yaml` on the same features. Each gets
its report; the search's best configuration, chosen on validation speakers without the
test folds, becomes a predictor that then labels a new recording.
`--quick` shrinks corpus, epochs and trials so the whole path runs in a few minutes (the CI
end-to-end test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile

from ser_ray.errors import UserError
from ser_ray.monitor import DEFAULT_PORT
from ser_ray.study.schema import StudyConfig, load_study

if TYPE_CHECKING:
    from ser_ray.experiment import Experiment, RankedConfiguration

SEARCH_SPACES = Path(__file__).resolve().parent.parent / "search_spaces"
STUDIES = {"ablation": "demo.yaml", "search": "demo_search.yaml"}
QUICK = {"corpus.synthetic.utterances_per_speaker": 16, "budget.epochs": 2}
QUICK_TRIALS = 4
NEW_RECORDING_SEED = 2024


@dataclass(frozen=True)
class DemoOutputs:
    out_dir: Path
    reports: dict[str, Path]
    predictor: Path | None
    recording: Path
    seconds: float


def demo_study(name: str, quick: bool) -> tuple[Path, StudyConfig]:
    path = SEARCH_SPACES / STUDIES[name]
    if not path.is_file():
        raise UserError(f"the demo studies live in the repository's search_spaces/ ({path} "
                        f"is missing); run the demo from a clone of ser-ray")
    if not quick:
        return path, load_study(path)
    overrides = {**QUICK, "name": f"{path.stem.replace('_', '-')}-quick"}
    if name == "search":
        overrides["budget.trials"] = QUICK_TRIALS
    return path, load_study(path, overrides)


def run_demo(out_dir: Path, quick: bool = False, cache_root: Path | None = None) -> DemoOutputs:
    from ser_ray.experiment import best, load_experiment
    from ser_ray.predict import Predictor, format_predictions
    from ser_ray.ray_session import ensure_ray
    from ser_ray.report import write_progress, write_report
    from ser_ray.study.run import run_study

    started = time.perf_counter()
    out_dir = out_dir.expanduser().resolve()
    dashboard = ensure_ray()
    if dashboard:
        _say(f"Ray is up; while the demo runs its dashboard is at {dashboard}")
    reports: dict[str, Path] = {}
    best_models: dict[str, Path | None] = {}
    for name in STUDIES:
        path, study = demo_study(name, quick)
        _say(f"study {study.name} ({path.name}) → {out_dir / name}; watch it live in "
             f"another terminal: {monitor_command(out_dir, name)}")
        result = run_study(path, out_dir / name, cache_root, study=study,
                           on_progress=write_progress, on_finish=write_report)
        reports[name], best_models[name] = result.report, result.best_model
        _say(f"report: {result.report}")
    experiments = {name: load_experiment(report.parent) for name, report in reports.items()}
    bests = {name: best(experiment) for name, experiment in experiments.items()}
    predictor = best_of(experiments, bests, best_models)
    recording = write_new_recording(out_dir / "new_recording.wav")
    labelled = None
    if predictor is not None:
        model = Predictor(predictor)
        labelled = format_predictions([model.predict(Path(_shown(recording)))],
                                      model.label_names)
        _say(f"best model: {predictor}\n{labelled}")
    seconds = time.perf_counter() - started
    index = write_index(out_dir, experiments, predictor, recording, labelled, seconds,
                        quick)
    _say(closing_words(out_dir, index, predictor, recording, seconds))
    return DemoOutputs(out_dir, reports, predictor, recording, seconds)


def best_of(experiments: dict[str, Experiment],
            bests: dict[str, RankedConfiguration | None],
            best_models: dict[str, Path | None]) -> Path | None:
    """The predictor of a study that chose its configuration without the test folds (the
    search, on validation speakers), else of the first study with one. Comparing the two
    studies' test scores would pick a model on the test set."""
    candidates = [(not (experiments[name].selects_on_test
                        or experiments[name].selects_epochs_on_test), name, predictor)
                  for name, predictor in best_models.items()
                  if predictor is not None and bests[name] is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda entry: entry[0])[2]


def write_new_recording(path: Path) -> Path:
    """An angry utterance by a speaker the corpus never heard, as 44.1 kHz stereo — other
    rates and channel counts are normal input, resampled and downmixed on the way in."""
    from scipy.signal import resample_poly

    from ser_ray.synth import EMOTION_STYLES, SpeakerVoice, synthesize

    rng = np.random.default_rng(NEW_RECORDING_SEED)
    voice = SpeakerVoice.sample(rng, "F")
    mono = synthesize(EMOTION_STYLES["angry"], voice, 3.0, rng)
    wide = resample_poly(mono, 441, 160).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.stack([wide, 0.8 * wide], axis=1), 44100)
    return path


def write_index(out_dir: Path, experiments: dict[str, Experiment], predictor: Path | None,
                recording: Path, labelled: str | None, seconds: float, quick: bool) -> Path:
    """`report.md` at the top: what ran, links to each study's report, the headline tables."""
    lines = [f"# ser-ray demo{' (quick)' if quick else ''}", "",
             f"Everything below was produced by `ser-ray demo{' --quick' if quick else ''}` "
             f"in {seconds / 60:.1f} minutes on this machine, from nothing but the offline "
             f"synthetic corpus: synthesis, scan, class selection, leave-one-session-out folds, "
             f"Ray Data features, Ray Tune trials and these reports.", ""]
    for name, experiment in experiments.items():
        link = f"{experiment.directory.name}/report.md"
        lines += [f"## {name}: [{link}]({link})", "", *_headline(experiment), ""]
    if predictor is not None:
        lines += ["## The best model", "",
                  f"`{predictor.relative_to(out_dir)}` (in the run's directory, beside "
                  f"`{recording.name}`: an angry utterance of an unheard speaker, 44.1 kHz "
                  f"stereo) labels new recordings:", "", "```",
                  f"$ ser-ray predict --checkpoint {_shown(predictor)} {_shown(recording)}",
                  *(labelled or "").splitlines(), "```", ""]
    index = out_dir / "report.md"
    index.write_text("\n".join(lines))
    return index


def _headline(experiment: Experiment) -> list[str]:
    from ser_ray.report.markdown import chosen_how
    from ser_ray.report.markup import metric_label, score
    from ser_ray.report.units import best_so_far, completeness

    done = completeness(experiment)
    best = best_so_far(experiment)
    if best is None:
        return [f"No finished configuration ({done.recorded} of {done.planned} units)."]
    return [f"Best configuration: `{best.variant}`, {metric_label(experiment.objective)} "
            f"{score(best.mean, best.sd)} % over {best.units} units"
            f"{chosen_how(experiment, best)} ({done.recorded} of {done.planned} units "
            f"recorded)."]


def closing_words(out_dir: Path, index: Path, predictor: Path | None, recording: Path,
                  seconds: float) -> str:
    lines = [f"demo finished in {seconds / 60:.1f} min",
             f"report:         {index}",
             *(f"watch {name + ':':<9} {monitor_command(out_dir, name)}  "
               f"(optuna-dashboard and TensorBoard on 127.0.0.1; Ctrl-C stops them)"
               for name in STUDIES),
             "Ray dashboard:  http://127.0.0.1:8265 while a cluster runs (ray start --head "
             "keeps one up; cluster/submit.sh sends studies to it)"]
    if predictor is not None:
        lines.append(f"predict:        ser-ray predict --checkpoint {predictor} {recording}")
    return "\n".join(lines)


def monitor_command(out_dir: Path, name: str) -> str:
    """The command that watches one demo study, on ports of its own (P and P+1 each), so
    both studies can be watched at once."""
    port = DEFAULT_PORT + 2 * list(STUDIES).index(name)
    return f"ser-ray monitor {_shown(out_dir / name)} --port {port}"


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _say(text: Any) -> None:
    print(f"\n== {text}", flush=True)
