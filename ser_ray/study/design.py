"""From a study to configurations: ablation variants, dotted overrides, and their validation.

A configuration is the study's base (model, training settings, feature set) with dotted
overrides applied: `model.name`, `model.options.<option>`, `train.<setting>` (nested, e.g.
`train.loss.gamma`) and `feature_set`. When an override changes the model family, the base's
model options are dropped (they belong to the other model). Training starts from the
model family's paper training (`ser_ray.experiment.paper_training`), then the study's
`train`, then the overrides. `resolve` is the one place this happens: its `Configuration` is
what trains and what the ledger records.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.experiment import Configuration, LossOptions, TrainConfig, paper_training
from ser_ray.experiment.training import OPTIMISTIC_RULE, SELECTION_RULES
from ser_ray.features.recipes import parse_recipe
from ser_ray.papers import paper_row_keys
from ser_ray.schema import set_dotted
from ser_ray.study.schema import AblationSpec, Parameter, StudyConfig

ROOT_KEYS = ("model.name", "model.options.<option>", "train.<setting>", "feature_set")
BASELINE = "baseline"
# Set by the study as a whole, not per configuration.
STUDY_WIDE_SETTINGS = ("epochs",)


@dataclass(frozen=True)
class Variant:
    """A named configuration of an ablation: its factor levels and its configuration."""

    name: str
    factors: dict[str, str]
    configuration: Configuration


def ablation_variants(study: StudyConfig) -> list[Variant]:
    """The design's variants, baseline first, each resolved once.

    one-factor: the baseline (every factor at its baseline level), then one row per
    non-baseline level of each factor, then the extra named variants. leave-one-out: the same
    rows, named "w/o <factor>". factorial: every combination of levels.
    """
    assert study.ablation is not None
    named = [(name, levels, _changes(levels, study.ablation))
             for name, levels in _design_levels(study.ablation)]
    baseline_levels = {name: factor.baseline_level
                       for name, factor in study.ablation.factors.items()}
    for label, changes in study.ablation.variants.items():
        named.append((label, baseline_levels,
                      {**_changes(baseline_levels, study.ablation), **changes}))
    names = [name for name, _, _ in named]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"ablation variant names repeat: {duplicates}; rename the extra "
                        f"variants")
    return [Variant(name, dict(levels), _resolve_named(study, changes, f"variant {name!r}"))
            for name, levels, changes in named]


def _design_levels(ablation: AblationSpec) -> list[tuple[str, dict[str, str]]]:
    """(variant name, level of every factor) for each row the design makes."""
    factors = ablation.factors
    if ablation.design == "factorial":
        combos = itertools.product(*([(name, level) for level in factor.levels]
                                     for name, factor in factors.items()))
        return [(", ".join(f"{n}={lvl}" for n, lvl in combo), dict(combo)) for combo in combos]
    baseline_levels = {name: factor.baseline_level for name, factor in factors.items()}
    rows = [(BASELINE, baseline_levels)]
    for name, factor in factors.items():
        for level in factor.levels:
            if level != factor.baseline_level:
                label = f"w/o {name}" if ablation.design == "leave-one-out" else f"{name}={level}"
                rows.append((label, {**baseline_levels, name: level}))
    return rows


def _changes(levels: dict[str, str], ablation: AblationSpec) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for factor_name, level in levels.items():
        changes.update(ablation.factors[factor_name].levels[level])
    return changes


def resolve(study: StudyConfig, changes: dict[str, Any]) -> Configuration:
    """The configuration `changes` make of the study's base, validated: model options sized
    to its feature set, training settings over the family's paper training."""
    model_name = study.model.name
    options = dict(study.model.options)
    train: dict[str, Any] = json.loads(json.dumps(study.train))
    if "model.name" in changes:
        new_name = changes["model.name"]
        if models.family(new_name) != models.family(model_name):
            options = {}
        model_name = new_name
    for key, value in changes.items():
        if key in ("model.name", "feature_set"):
            continue
        if key.startswith("model.options."):
            options[key.removeprefix("model.options.")] = value
        elif key.startswith("train."):
            set_dotted(train, key.removeprefix("train."), value)
        else:
            raise UserError(f"unknown parameter {key!r}; parameters are "
                            f"{', '.join(ROOT_KEYS)}")
    family = models.family(model_name)
    feature_set = _feature_set(study, changes.get("feature_set", study.feature_set), family)
    shape = parse_recipe(study.features[feature_set].recipe).feature_shape()
    model = models.resolve(model_name, shape, **options)
    overrides = {**train, "epochs": study.budget.epochs}
    settings = paper_training(family, overrides)
    if study.objective.split == "validation" and settings.validation == "none":
        raise UserError(f"objective {study.objective.metric} needs a validation split, but "
                        f"train.validation is 'none'; set train.validation: train-speakers")
    if study.objective.split == "validation" and "selection" not in train \
            and settings.selection == OPTIMISTIC_RULE:
        # A study that chooses on validation speakers picks epochs on them too, unless it
        # asks otherwise: a paper's best-test rule (ctmam) would let the test folds steer it.
        settings = paper_training(family, {**overrides, "selection": "best-validation"})
    if settings.validation == "test-fold-speaker" and study.protocol.kind == "stratified":
        raise UserError("train.validation 'test-fold-speaker' holds out a speaker of the test "
                        "fold, but stratified folds train on every speaker, so it would be "
                        "heard in training; use train.validation: train-speakers")
    return Configuration(changes=changes, model=model_name, family=family,
                         model_options=model.options.model_dump(mode="json"),
                         feature_set=feature_set, train=settings)


def _feature_set(study: StudyConfig, chosen: str | dict[str, str], family: str) -> str:
    if isinstance(chosen, dict):
        if family not in chosen:
            raise UserError(f"feature_set maps no feature set to model family {family!r}; "
                            f"it maps {', '.join(chosen)}")
        chosen = chosen[family]
    if chosen not in study.features:
        raise UserError(f"feature_set {chosen!r} is not a feature set of the study; "
                        f"feature sets: {', '.join(study.features)}")
    return chosen


def check_study(study: StudyConfig) -> list[Variant]:
    """Resolve every configuration the study can produce (all variants, or every searched
    parameter at its bounds), so a bad key or value fails before anything runs. Returns an
    ablation's variants (a search's trials are resolved as they are sampled)."""
    if study.ablation is not None:
        variants = ablation_variants(study)
        seen: dict[str, str] = {}
        for variant in variants:
            identity = json.dumps({**variant.configuration.identity(),
                                   "features": variant.configuration.feature_set},
                                  sort_keys=True)
            if identity in seen:
                raise UserError(f"variants {seen[identity]!r} and {variant.name!r} are the same "
                                f"configuration; drop one or make them differ")
            seen[identity] = variant.name
        if study.reproduces is not None:
            _check_paper_rows(study, [variant.name for variant in variants])
        _check_one_selection_rule(
            {f"variant {variant.name!r}": variant.configuration.train.selection
             for variant in variants},
            {key for variant in variants for key in variant.configuration.changes})
        _check_cuda_has_gpus(study, {f"variant {variant.name!r}": variant.configuration
                                     for variant in variants})
        return variants
    assert study.search is not None
    parameters = study.search.parameters
    probed: dict[str, Configuration] = {}
    for name, parameter in parameters.items():
        context = {parent: (allowed[0] if isinstance(allowed, list) else allowed)
                   for parent, allowed in (parameter.when or {}).items()}
        for value in _probe_values(parameter):
            where = f"search parameter {name!r} = {value!r}"
            probed[where] = _resolve_named(study, {**context, name: value}, where)
    _check_one_selection_rule({where: configuration.train.selection
                               for where, configuration in probed.items()}, set(parameters))
    _check_cuda_has_gpus(study, probed or {"the study": resolve(study, {})})
    return []


def _check_cuda_has_gpus(study: StudyConfig, configurations: dict[str, Configuration]) -> None:
    """A trial that asks for no GPU sees none: `train.device: cuda` would fail in every one."""
    if study.resources.gpus:
        return
    on_cuda = [where for where, configuration in configurations.items()
               if configuration.train.device == "cuda"]
    if on_cuda:
        raise UserError(f"train.device is 'cuda' at {', '.join(on_cuda[:2])} but "
                        f"resources.gpus is 0, and a trial that asks for no GPU sees none; "
                        f"set resources.gpus, or train.device to 'auto' or 'cpu'")


def selection_rule(study: StudyConfig) -> str:
    """The epoch-selection rule of the study's configurations (one, `check_study` ensures)."""
    return resolve(study, {}).train.selection


def _check_one_selection_rule(rules: dict[str, str], varied_keys: set[str]) -> None:
    """Configurations of a study pick their epoch by one rule unless the study varies
    `train.selection` itself: a model family whose paper recipe selects on the test set
    (ctmam) must not be ranked against last-epoch scores unasked."""
    if len(set(rules.values())) <= 1 or "train.selection" in varied_keys:
        return
    by_rule: dict[str, list[str]] = {}
    for where, rule in rules.items():
        by_rule.setdefault(rule, []).append(where)
    listed = "; ".join(f"{rule} at {', '.join(sites[:2])}{', …' if len(sites) > 2 else ''}"
                       for rule, sites in by_rule.items())
    raise UserError(f"the study's configurations select epochs by different rules ({listed}); "
                    f"set train.selection to one of {', '.join(SELECTION_RULES)} for all")


def _check_paper_rows(study: StudyConfig, variant_names: list[str]) -> None:
    assert study.reproduces is not None
    rows = paper_row_keys(study.reproduces.paper)
    for variant, row in study.reproduces.rows.items():
        if variant not in variant_names:
            raise UserError(f"reproduces.rows names variant {variant!r}, which the design does "
                            f"not make; variants: {', '.join(variant_names)}")
        if row not in rows:
            raise UserError(f"reproduces.rows: {row!r} is not a reported result of "
                            f"{study.reproduces.paper}; rows: {', '.join(rows)}")


def _probe_values(parameter: Parameter) -> list[Any]:
    values = parameter.grid_values()
    if values is not None:
        return values
    cast = int if parameter.type == "int" else float
    return [cast(parameter.low), cast(parameter.high)]


def _resolve_named(study: StudyConfig, changes: dict[str, Any], what: str) -> Configuration:
    for key in changes:
        _check_key(key)
    try:
        return resolve(study, changes)
    except UserError as error:
        raise UserError(f"{what}: {error}") from error


def _check_key(key: str) -> None:
    if key in ("model.name", "feature_set"):
        return
    if key.startswith("model.options.") and key.count(".") == 2:
        return
    if key.startswith("train."):
        path = key.removeprefix("train.").split(".")
        fields = [name for name in TrainConfig.model_fields if name not in STUDY_WIDE_SETTINGS]
        if path[0] == "loss" and len(path) == 2 and path[1] in LossOptions.model_fields:
            return
        if len(path) == 1 and path[0] in fields:
            return
        valid = [f"train.{name}" for name in fields]
        valid += [f"train.loss.{name}" for name in LossOptions.model_fields]
        raise UserError(f"unknown parameter {key!r}; training settings: {', '.join(valid)}")
    raise UserError(f"unknown parameter {key!r}; parameters are {', '.join(ROOT_KEYS)}")
