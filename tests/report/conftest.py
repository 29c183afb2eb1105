"""Four constructed experiment directories, one per design, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import distribution_to_json

from ser_ray.experiment.study_record import SearchedParameter, SkippedInput
from ser_ray.study.schema import Parameter
from tests.experiment.builders import study_record, unit_row, write_experiment

FOLDS = (0, 1, 2, 3, 4)
SEEDS = (0, 1)
# Per (fold, seed) unit, in fold-major order: a small jitter around +5 pp (every difference
# positive) and a noise of mean ~0 with both signs.
ECA_JITTER = (0.0, 0.1, -0.1, 0.2, -0.2, 0.1, 0.0, -0.1, 0.2, -0.2)
LOSS_NOISE = (0.5, -0.7, 0.3, -0.2, 0.8, -0.6, 0.1, -0.4, 0.6, -0.5)
SEARCH_SPACE = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "model.options.scale": {"type": "int", "low": 1, "high": 4, "log": False},
    "model.options.eca_blocks": {"type": "categorical", "choices": [[5, 6], [6]]},
    "train.loss.gamma": {"type": "float", "low": 0.5, "high": 3.0, "log": False,
                         "when": {"model.options.scale": [1, 3]}},
}


def searched(space: dict[str, dict]) -> dict[str, SearchedParameter]:
    """A YAML search space as the study record holds it."""
    parameters = {name: Parameter(**spec) for name, spec in space.items()}
    return {name: SearchedParameter(distribution=distribution_to_json(parameter.distribution()),
                                    when=parameter.when)
            for name, parameter in parameters.items()}
# trial → (scale, lr, ECA blocks, UA %); UA grows with the scale only.
SEARCH_TRIALS = {"trial_0000": (1, 1e-3, [5, 6], 60.0), "trial_0001": (2, 3e-4, [6], 65.0),
                 "trial_0002": (3, 5e-3, [5, 6], 70.0), "trial_0003": (4, 2e-4, [6], 75.0)}


def baseline_ua(fold: int) -> float:
    return 70.0 + 2.0 * fold


@pytest.fixture(scope="session")
def one_factor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """eca=on: +5 pp in every unit; loss=ce: noise, one failed unit; baseline (fold 0, seed 0)
    failed once and was retried. 29 of 30 units recorded."""
    units = [(fold, seed) for fold in FOLDS for seed in SEEDS]
    rows = [unit_row("baseline", 0, 0, None, status="failed")]
    rows += [unit_row("baseline", fold, seed, baseline_ua(fold)) for fold, seed in units]
    rows += [unit_row("eca=on", fold, seed, baseline_ua(fold) + 5.0 + jitter, parameters=1014)
             for (fold, seed), jitter in zip(units, ECA_JITTER)]
    rows += [unit_row("loss=ce", fold, seed, baseline_ua(fold) + noise)
             for (fold, seed), noise in zip(units[:-1], LOSS_NOISE)]
    rows.append(unit_row("loss=ce", 4, 1, None, status="failed", epochs_run=2))
    skipped = ([SkippedInput(stage="scan", path=f"/data/synth/s{i}.wav", reason_code="too_short",
                             reason="shorter than 0.1 s") for i in range(8)]
               + [SkippedInput(stage="features", path=f"/data/synth/f{i}.wav",
                               reason_code="decode_error", reason="not a WAV file")
                  for i in range(4)])
    study = study_record(
        "eca-one-factor", "one-factor", ["baseline", "eca=on", "loss=ce"], folds=FOLDS,
        seeds=SEEDS, baseline="baseline", selection_rule="best-test",
        changes={"eca=on": {"model.options.eca_blocks": [5, 6]},
                 "loss=ce": {"train.loss.kind": "ce"}}, skipped=skipped)
    return write_experiment(tmp_path_factory.mktemp("one_factor"), study, rows)


@pytest.fixture(scope="session")
def leave_one_out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five folds, one seed: -tsa loses 1.5-1.9 pp in every fold, yet 5 pairs are too few."""
    full = {fold: 72.0 + 0.5 * fold for fold in FOLDS}
    rows = [unit_row("full", fold, 99, full[fold], parameters=1031674) for fold in FOLDS]
    rows += [unit_row("-tsa", fold, 99, full[fold] - 1.5 - 0.1 * fold, parameters=1031140)
             for fold in FOLDS]
    rows += [unit_row("-lct", fold, 99, full[fold] - 3.0 + (-1) ** fold, parameters=294058)
             for fold in FOLDS]
    study = study_record(
        "ctmam-leave-one-out", "leave-one-out", ["full", "-tsa", "-lct"], folds=FOLDS,
        seeds=(99,), baseline="full", speaker_independent=True,
        reproduces={"paper": "tang2024", "rows": {
            "full": "ablation_table_V_iemocap.proposed", "-tsa": "ablation_table_V_iemocap.wo_tsa",
            "-lct": "params_table_VI.proposed", "ghost": "no_such_table.row"}})
    return write_experiment(tmp_path_factory.mktemp("leave_one_out"), study, rows)


@pytest.fixture(scope="session")
def factorial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scale ∈ {1, 2} × STFT version ∈ {1, 2, 3}, two folds: UA = 60 + 3·scale + version +
    0.5·fold, so the best cell is scale 2, version 3 at 69.25."""
    cells = [(scale, version) for scale in (1, 2) for version in (1, 2, 3)]
    names = {cell: f"scale={cell[0]},v={cell[1]}" for cell in cells}
    factors = {cell: {"scale": str(cell[0]), "stft_version": str(cell[1])} for cell in cells}
    rows = [unit_row(names[cell], fold, 0, 60.0 + 3 * cell[0] + cell[1] + 0.5 * fold,
                     factors=factors[cell]) for cell in cells for fold in (0, 1)]
    study = study_record(
        "eca-factorial", "factorial", list(names.values()), folds=(0, 1), seeds=(0,),
        factors={"scale": ["1", "2"], "stft_version": ["1", "2", "3"]},
        variant_factors={names[cell]: factors[cell] for cell in cells})
    return write_experiment(tmp_path_factory.mktemp("factorial"), study, rows)


@pytest.fixture(scope="session")
def search_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four finished trials, one pruned after one epoch, one failed (on both folds, as the
    ledger writer records a failed trial); 8 trials planned."""
    rows = []
    for trial, (scale, lr, blocks, ua) in SEARCH_TRIALS.items():
        config = {"train.lr": lr, "model.options.scale": scale,
                  "model.options.eca_blocks": blocks,
                  **({"train.loss.gamma": 2.0} if scale in (1, 3) else {})}
        rows += [unit_row(trial, fold, 0, ua + 0.4 * fold, config=config) for fold in (0, 1)]
    pruned = {"train.lr": 1e-2, "model.options.scale": 1, "model.options.eca_blocks": [6]}
    rows += [unit_row("trial_0004", fold, 0, 40.0, status="pruned", epochs_run=1, config=pruned)
             for fold in (0, 1)]
    failed = {"train.lr": 1e-4, "model.options.scale": 4, "model.options.eca_blocks": [5, 6]}
    rows += [unit_row("trial_0005", fold, 0, None, status="failed", config=failed)
             for fold in (0, 1)]
    study = study_record("eca-search", "search", [], folds=(0, 1), seeds=(0,),
                         space=searched(SEARCH_SPACE), trials=8)
    return write_experiment(tmp_path_factory.mktemp("search"), study, rows)
