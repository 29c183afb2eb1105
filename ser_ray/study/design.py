"""From a study to configurations: ablation variants, dotted overrides, and their validation.

A configuration is the study's base (model, training settings, feature set) with dotted
overrides applied: `model.name`, `model.options.<option>`, `train.<setting>` (nested, e.g.
`train.loss.gamma`) and `feature_set`. When an override changes the model family, the base's
model options are dropped (they belong to the other model). Training starts from the
model family's paper training (`ser_ray.train.paper_training`), then the study's `train`, then
the overrides.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from ser_ray import models
from ser_ray.errors import UserError
from ser_ray.schema import set_dotted
from ser_ray.study.schema import AblationSpec, Parameter, StudyConfig
from ser_ray.train.config import SELECTION_RULES, TrainConfig, paper_training
from ser_ray.train.losses import LossOptions

ROOT_KEYS = ("model.name", "model.options.<option>", "train.<setting>", "feature_set")
BASELINE = "baseline"


@dataclass(frozen=True)
class Variant:
    """A named configuration of an ablation: its factor levels and its overrides."""

    name: str
    factors: dict[str, str] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Configuration:
    """A resolved configuration, everything but the seed."""

    model: str
    model_options: dict[str, Any]
    train: TrainConfig
    feature_set: str
    # The model family and every option's value (preset expanded, validated, defaults
    # included): two spellings of one model are one configuration.
    resolved_model: tuple[str, dict[str, Any]]

    def identity(self) -> dict[str, Any]:
        return {"model": self.resolved_model,
                "train": self.train.model_dump(mode="json", exclude={"seed"})}


def ablation_variants(ablation: AblationSpec) -> list[Variant]:
    """The design's variants, baseline first.

    one-factor: the baseline (every factor at its baseline level), then one row per
    non-baseline level of each factor, then the extra named variants. leave-one-out: the same
    rows, named "w/o <factor>". factorial: every combination of levels.
    """
    factors = ablation.factors
    baseline_levels = {name: factor.baseline_level for name, factor in factors.items()}
    if ablation.design == "factorial":
        combos = itertools.product(*([(name, level) for level in factor.levels]
                                     for name, factor in factors.items()))
        return [_variant(", ".join(f"{n}={lvl}" for n, lvl in combo), dict(combo), ablation)
                for combo in combos]
    variants = [_variant(BASELINE, baseline_levels, ablation)]
    for name, factor in factors.items():
        for level in factor.levels:
            if level == factor.baseline_level:
                continue
            label = f"w/o {name}" if ablation.design == "leave-one-out" else f"{name}={level}"
            variants.append(_variant(label, {**baseline_levels, name: level}, ablation))
    for label, changes in ablation.variants.items():
        base = _variant(label, baseline_levels, ablation)
        variants.append(Variant(label, base.factors, {**base.changes, **changes}))
    names = [variant.name for variant in variants]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"ablation variant names repeat: {duplicates}; rename the extra "
                        f"variants")
    return variants


def _variant(name: str, levels: dict[str, str], ablation: AblationSpec) -> Variant:
    changes: dict[str, Any] = {}
    for factor_name, level in levels.items():
        changes.update(ablation.factors[factor_name].levels[level])
    return Variant(name, dict(levels), changes)


def resolve(study: StudyConfig, changes: dict[str, Any], epochs: int | None = None,
            seed: int = 0) -> Configuration:
    """The configuration `changes` make of the study's base, validated."""
    model_name = study.model.name
    options = dict(study.model.options)
    train: dict[str, Any] = _deep_copy(study.train)
    feature_set = study.feature_set
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
    feature_set = changes.get("feature_set", feature_set)
    family = models.family(model_name)
    if isinstance(feature_set, dict):
        if family not in feature_set:
            raise UserError(f"feature_set maps no feature set to model family {family!r}; "
                            f"it maps {', '.join(feature_set)}")
        feature_set = feature_set[family]
    if feature_set not in study.features:
        raise UserError(f"feature_set {feature_set!r} is not a feature set of the study; "
                        f"feature sets: {', '.join(study.features)}")
    validated = models.parse_options(family, _preset_options(model_name, options))
    train_config = paper_training(family, {**train, "epochs": epochs or study.budget.epochs,
                                           "seed": seed})
    return Configuration(model_name, options, train_config, feature_set,
                         (family, validated.model_dump(mode="json")))


def _preset_options(model_name: str, options: dict[str, Any]) -> dict[str, Any]:
    if model_name in models.preset_names():
        return {**models.get_preset(model_name).options, **options}
    return options


def config_hash(configuration: Configuration, data_identity: dict[str, Any]) -> str:
    """Content hash of a configuration on given data: the utterances and labels, the folds,
    and the configuration's own feature set (by its recipe, not where it is cached). The
    same configuration in another or an extended study reuses its ledger units.

    `data_identity` holds "manifest", "folds" and "features" (feature set name → identity).
    """
    data = {"manifest": data_identity["manifest"], "folds": data_identity["folds"],
            "features": data_identity["features"][configuration.feature_set]}
    payload = json.dumps({**configuration.identity(), "data": data}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_study(study: StudyConfig) -> list[Variant]:
    """Resolve every configuration the study can produce (all variants, or every searched
    parameter at its bounds), so a bad key or value fails before anything runs."""
    rules: dict[str, str] = {}
    if study.ablation is not None:
        variants = ablation_variants(study.ablation)
        seen: dict[str, str] = {}
        for variant in variants:
            configuration = _resolve_named(study, variant.changes, f"variant {variant.name!r}")
            rules[f"variant {variant.name!r}"] = configuration.train.selection
            identity = json.dumps({**configuration.identity(),
                                   "features": configuration.feature_set}, sort_keys=True)
            if identity in seen:
                raise UserError(f"variants {seen[identity]!r} and {variant.name!r} are the same "
                                f"configuration; drop one or make them differ")
            seen[identity] = variant.name
        if study.reproduces is not None:
            _check_paper_rows(study, [variant.name for variant in variants])
        _check_one_selection_rule(rules, {key for variant in variants
                                          for key in variant.changes})
        return variants
    assert study.search is not None
    parameters = study.search.parameters
    for name, parameter in parameters.items():
        context = {parent: (allowed[0] if isinstance(allowed, list) else allowed)
                   for parent, allowed in (parameter.when or {}).items()}
        for value in _probe_values(parameter):
            where = f"search parameter {name!r} = {value!r}"
            rules[where] = _resolve_named(study, {**context, name: value}, where).train.selection
    _check_one_selection_rule(rules, set(parameters))
    return []


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
    from ser_ray.report.tables import paper_row_keys

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
        fields = TrainConfig.model_fields
        if path[0] == "loss" and len(path) == 2 and path[1] in LossOptions.model_fields:
            return
        if len(path) == 1 and path[0] in fields and path[0] not in ("epochs", "seed"):
            return
        valid = [f"train.{name}" for name in fields if name not in ("epochs", "seed")]
        valid += [f"train.loss.{name}" for name in LossOptions.model_fields]
        raise UserError(f"unknown parameter {key!r}; training settings: {', '.join(valid)}")
    raise UserError(f"unknown parameter {key!r}; parameters are {', '.join(ROOT_KEYS)}")


def _deep_copy(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values))
