"""The report's setup section: class counts, skipped inputs, feature caches, the epoch
selection, and the effective training settings of every configuration beside its model's
paper training."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ser_ray.experiment import Experiment, TrainConfig
from ser_ray.report.units import configurations


@dataclass(frozen=True)
class TrainingSettings:
    """Effective training settings (as text) against the paper training of each model.

    `common`: one row per setting — its value when every configuration shares it (else
    None), the paper's value (per family when the study spans several), and whether any
    configuration departs from its paper. `by_variant`: the settings that vary, one row per
    configuration, with `departs` marking the cells that differ from the paper.
    """

    common: pd.DataFrame
    by_variant: pd.DataFrame
    departs: pd.DataFrame


def class_counts(experiment: Experiment) -> pd.DataFrame:
    counts = experiment.study.corpus.class_counts
    return pd.DataFrame({"label": list(counts), "utterances": list(counts.values())})


def skipped_inputs(experiment: Experiment) -> pd.DataFrame:
    """Every input the scan or feature stage skipped, with its reason."""
    return pd.DataFrame([skip.model_dump() for skip in experiment.study.skipped],
                        columns=["stage", "path", "reason_code", "reason"])


def skipped_counts(experiment: Experiment) -> pd.DataFrame:
    """Skipped inputs counted per (stage, reason code)."""
    skipped = skipped_inputs(experiment)
    return (skipped.groupby(["stage", "reason_code"]).size().rename("inputs").reset_index()
            if not skipped.empty else pd.DataFrame(columns=["stage", "reason_code", "inputs"]))


def feature_caches(experiment: Experiment) -> pd.DataFrame:
    """The feature caches the study read: key, recipe kind, augmentations, rows."""
    records = [{"cache_key": feature.cache_key,
                "recipe": str(feature.identity.recipe.get("kind", "")),
                "augmentations": ", ".join(feature.identity.augmentations) or "none",
                "rows": feature.rows, "path": feature.path}
               for feature in experiment.study.features]
    return pd.DataFrame(records, columns=["cache_key", "recipe", "augmentations", "rows", "path"])


def selection_rule(experiment: Experiment) -> str:
    """The epoch-selection rule(s) as one label, e.g. "best-test + last"."""
    return " + ".join(selection_rules(experiment))


def selection_rules(experiment: Experiment) -> list[str]:
    """Every rule the configurations used when they differ (a study that varies it), else the
    study's rule."""
    recorded = sorted({configuration.train.selection
                       for configuration in configurations(experiment).values()})
    return recorded if len(recorded) > 1 else [experiment.study.selection_rule]


def paper_families(experiment: Experiment) -> list[str]:
    """The model families of the study's configurations whose paper training it recorded."""
    used = {configuration.family for configuration in configurations(experiment).values()}
    return sorted(used & set(experiment.study.paper_training))


def training_settings(experiment: Experiment) -> TrainingSettings:
    """The effective settings of every configuration, and where they depart from the paper
    training of the configuration's model family."""
    chosen = configurations(experiment)
    described = {name: describe_training(configuration.train)
                 for name, configuration in chosen.items()}
    papers = {family: describe_training(train)
              for family, train in experiment.study.paper_training.items()}
    departs = {name: {setting: setting not in NOT_PAPER_SETTINGS
                      and value != papers[chosen[name].family][setting]
                      for setting, value in settings.items()}
               for name, settings in described.items() if chosen[name].family in papers}
    families = paper_families(experiment)
    records = []
    for setting in SETTINGS:
        values = {settings[setting] for settings in described.values()}
        paper = ("— (not a paper setting)" if setting in NOT_PAPER_SETTINGS else
                 "— (no paper training recorded)" if not families else
                 papers[families[0]][setting] if len(families) == 1 else
                 "; ".join(f"{family}: {papers[family][setting]}" for family in families))
        records.append({"setting": setting,
                        "value": values.pop() if len(values) == 1 else None,
                        "paper": paper,
                        "departs": any(marks[setting] for marks in departs.values())})
    common = pd.DataFrame(records, columns=["setting", "value", "paper", "departs"])
    varying = list(common.loc[common["value"].isna(), "setting"]) if described else []
    by_variant = pd.DataFrame([{"variant": name, **{s: described[name][s] for s in varying}}
                               for name in described], columns=["variant", *varying])
    marks = pd.DataFrame([{"variant": name, **{s: departs.get(name, {}).get(s, False)
                                               for s in varying}}
                          for name in described], columns=["variant", *varying])
    return TrainingSettings(common, by_variant, marks)


SETTINGS = ("loss", "optimizer", "learning rate", "batch size", "epochs", "epoch selection",
            "validation split", "precision", "standardisation", "STFT versions",
            "augmented copies", "scoring batch", "device", "deterministic")
# Not part of a paper's training, so never marked as departing from it: what data a
# configuration trains and is scored on (chosen per study: a cache's versions and copies),
# and how it runs (scoring batch, device, determinism), which leave the numbers' meaning be.
NOT_PAPER_SETTINGS = ("STFT versions", "augmented copies", "scoring batch", "device",
                      "deterministic")


def describe_training(train: TrainConfig) -> dict[str, str]:
    """Each reported setting of `train` in words, keyed as `SETTINGS`."""
    return {
        "loss": _loss(train),
        "optimizer": _optimizer(train),
        "learning rate": _learning_rate(train),
        "batch size": str(train.batch_size),
        "epochs": str(train.epochs),
        "epoch selection": train.selection + (" (OPTIMISTIC)" if train.optimistic else ""),
        "validation split": train.validation,
        "precision": ("bfloat16 autocast on CUDA, float32 on CPU" if train.amp
                      else "float32"),
        "standardisation": {"none": "none",
                            "train-fold": "z-score per feature row, training fold's statistics"
                            }[train.standardize],
        "STFT versions": _versions(train),
        "augmented copies": ("every copy in the cache" if train.augmentations == "all"
                             else ", ".join(train.augmentations) or "none"),
        "scoring batch": str(train.eval_batch_size),
        "device": train.device,
        "deterministic": "yes" if train.deterministic else "no",
    }


def _loss(train: TrainConfig) -> str:
    loss = train.loss
    if loss.kind == "focal":
        alpha = "inverse-frequency α" if loss.focal_alpha == "inverse_frequency" else "α = 1"
        text = f"focal (γ {loss.gamma:g}, {alpha})"
    else:
        text = {"ce": "cross-entropy", "weighted_ce": "class-weighted cross-entropy"}[loss.kind]
        if loss.label_smoothing and loss.label_smoothing_form == "ce_plus_smoothed":
            text += f" + label-smoothed cross-entropy ({loss.label_smoothing:g})"
        elif loss.label_smoothing:
            text += f" (label smoothing {loss.label_smoothing:g})"
    return text + (f" + mixup α {loss.mixup_alpha:g}" if loss.mixup_alpha else "")


def _optimizer(train: TrainConfig) -> str:
    if train.optimizer == "sgd":
        detail = f"momentum {train.momentum:g}"
    else:
        detail = f"β {train.betas[0]:g}, {train.betas[1]:g}"
    return f"{train.optimizer} ({detail}; weight decay {train.weight_decay:g})"


def _learning_rate(train: TrainConfig) -> str:
    if train.lr_decay == 1.0:
        return f"{train.lr:g}, constant"
    floor = f" until below {train.lr_floor:g}" if train.lr_floor else ""
    return f"{train.lr:g}, × {train.lr_decay:g} per epoch{floor}"


def _versions(train: TrainConfig) -> str:
    if train.test_version is None:
        return "the cache's only version"
    trained = ", ".join(map(str, train.train_versions or (train.test_version,)))
    return f"test {train.test_version}; train {trained}"
