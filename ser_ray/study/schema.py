"""The study YAML: corpus, protocol, features, model, training, objective, budget, resources,
and either a `search` space or an `ablation` design — validated strictly, once, at load time.

Every key is checked (an unknown key names the valid ones), every range quotes the bad value,
and every dotted parameter a search or ablation sets must resolve to a real field: a model
option of the model it applies to, a training setting, or `feature_set`. Misspellings never
reach a cluster.
"""

from __future__ import annotations

import math
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pydantic
import yaml
from pydantic import Field

from ser_ray.errors import UserError
from ser_ray.experiment.configuration import encode_choice
from ser_ray.experiment.metrics import VALIDATION_PREFIX
from ser_ray.experiment.study_record import Objective
from ser_ray.schema import StrictModel, set_dotted, validate

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

# What a search ranks, prunes and samples by unless its YAML says otherwise.
SEARCH_OBJECTIVE = VALIDATION_PREFIX + "unweighted_accuracy"
# URI schemes pyarrow.fs.FileSystem.from_uri (how Ray resolves storage) accepts.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
Scalar = str | int | float | bool | None


class SyntheticCorpus(StrictModel):
    """The embedded offline corpus (an IEMOCAP-shaped tree written by `ser-ray corpus synth`)."""

    seed: int = Field(0, ge=0)
    sessions: int = Field(5, ge=2, le=5)
    speakers_per_session: int = Field(2, ge=1, le=2)
    utterances_per_speaker: int = Field(50, ge=2)
    strength: float = Field(1.0, ge=0, le=1)


class CorpusSpec(StrictModel):
    reader: str = Field(description="corpus reader, e.g. iemocap (ser-ray corpus scan --help)")
    root: Path | None = Field(None, description="corpus root; relative to the YAML file")
    synthetic: SyntheticCorpus | None = Field(None, description="generate the offline corpus")
    min_duration_s: float = Field(0.1, ge=0)

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> CorpusSpec:
        if (self.root is None) == (self.synthetic is None):
            raise ValueError("corpus needs exactly one of `root` (a corpus on disk) or "
                             "`synthetic` (the offline corpus)")
        if self.synthetic is not None and self.reader != "iemocap":
            raise ValueError(f"the synthetic corpus is IEMOCAP-shaped: reader must be "
                             f"'iemocap', got {self.reader!r}")
        return self


class SelectionSpec(StrictModel):
    labels: tuple[str, ...] = Field(min_length=2)
    merge: dict[str, str] = Field(default_factory=dict)
    improvised_only: bool = False


class ProtocolSpec(StrictModel):
    kind: Literal["stratified", "session", "speaker"]
    k: int | None = Field(None, ge=2)
    seed: int = Field(0, ge=0)
    repeats: int = Field(1, ge=1, description="stratified: repeat the k-fold split with seeds "
                         "seed, seed+1, ... (repeated k-fold, compared by the corrected "
                         "resampled t-test)")

    @pydantic.model_validator(mode="after")
    def _repeats_are_stratified(self) -> ProtocolSpec:
        if self.repeats > 1 and self.kind != "stratified":
            raise ValueError(f"repeats={self.repeats}: only protocol 'stratified' is repeated "
                             f"with other seeds; {self.kind!r} folds are the same every time")
        return self


class FeatureSetSpec(StrictModel):
    recipe: dict[str, Any] = Field(description="feature recipe: kind plus fields "
                                   "(ser-ray features --help)")
    augmentations: tuple[str, ...] = Field((), description="augmentation specs, e.g. "
                                           "noise:snr=20")
    seed: int = Field(0, ge=0, description="augmentation seed")

    @pydantic.field_validator("recipe", mode="before")
    @classmethod
    def _name_is_a_recipe(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class ModelSpec(StrictModel):
    name: str = Field(description="model or preset (ser-ray models)")
    options: dict[str, Any] = Field(default_factory=dict)


class Budget(StrictModel):
    epochs: int = Field(ge=1, description="epochs per fold (every configuration)")
    trials: int | None = Field(None, ge=1, description="search: configurations to try")
    wall_time_s: float | None = Field(None, gt=0, description="stop starting trials after")
    retries: int = Field(1, ge=0, description="times a failing trial is retried (from its "
                         "last checkpoint) before its units are recorded as failed")


class Resources(StrictModel):
    cpus: float = Field(1.0, ge=0.0001, description="CPUs per training worker (Ray counts "
                        "CPUs in steps of 0.0001)")
    gpus: float = Field(0.0, ge=0, description="GPUs per trial (0: the trial's processes "
                        "see no GPU); with workers > 1, a whole number per worker")
    workers: int = Field(1, ge=1, description="Ray Train workers per trial; 1 trains inside "
                         "the Tune trial, more launch a TorchTrainer (fold-parallel or DDP)")
    max_concurrent_trials: int | None = Field(None, ge=1, description="a cap on trials "
                                              "running at once; default: as many as the "
                                              "largest cluster the autoscaler can make holds")

    @pydantic.model_validator(mode="after")
    def _whole_gpus_per_worker(self) -> Resources:
        # Ray Train sets up NCCL between GPU workers, and NCCL refuses two ranks on one GPU
        # ("Duplicate GPU detected"); a fraction per worker also cannot be a sum of GPUs.
        per_worker = self.gpus / self.workers
        if self.workers > 1 and self.gpus and per_worker != int(per_worker):
            raise ValueError(
                f"resources.gpus = {self.gpus:g} over resources.workers = {self.workers} gives "
                f"each Train worker {per_worker:g} GPU: NCCL cannot run two workers on one GPU; "
                f"use resources.gpus = {self.workers * max(1, math.ceil(per_worker))} (whole "
                f"GPUs per worker), fewer workers, or resources.gpus = 0")
        return self

    # A trial that launches a TorchTrainer holds a sliver of CPU itself; its workers hold the
    # rest ({"cpu": 0} is rejected by Tune).
    DRIVER_CPU: ClassVar[float] = 0.01

    def trial_bundles(self, memory: TrialMemory) -> list[ResourceAmounts]:
        """The placement-group bundles of one trial: the Tune trial's own, then one per Ray
        Train worker."""
        if self.workers == 1:
            return [ResourceAmounts(cpus=self.cpus, gpus=self.gpus, memory=memory.trial)]
        worker = ResourceAmounts(cpus=self.cpus, gpus=self.gpus / self.workers,
                                 memory=memory.worker)
        return [ResourceAmounts(cpus=self.DRIVER_CPU, memory=memory.trial),
                *[worker] * self.workers]

    def tune_request(self, memory: TrialMemory) -> dict[str, float]:
        """What the Tune trial itself reserves, as one placement-group bundle."""
        own = self.trial_bundles(memory)[0]
        return {"CPU": own.cpus, "GPU": own.gpus, "memory": own.memory}

    def concurrent_trials(self, nodes: list[ResourceAmounts], memory: TrialMemory) -> int:
        """Trials whose bundles fit at once on these nodes (each bundle on one node; a trial's
        Train workers may spread over nodes, as Ray Train places them); a user error, with the
        numbers, when not even one trial fits."""
        refusal = self.unplaceable(nodes, memory)
        if refusal is not None:
            raise UserError(refusal)
        bundles = self._bundles_largest_first(memory)
        fits = 0
        free = _first_fit(bundles, list(nodes))
        while free is not None and fits < (self.max_concurrent_trials or math.inf):
            fits += 1
            free = _first_fit(bundles, free)
        return fits

    def unplaceable(self, nodes: list[ResourceAmounts], memory: TrialMemory) -> str | None:
        """Why one trial fits on none of these nodes, with the numbers; None when it fits."""
        if _first_fit(self._bundles_largest_first(memory), list(nodes)) is not None:
            return None
        own, *workers = self.trial_bundles(memory)
        need = f"one trial needs {own.describe()} on one node"
        if workers:
            need += (f", and {len(workers)} Train workers {workers[0].describe()} each "
                     f"({_total([own, *workers]).describe()} in all)")
        most = ResourceAmounts(cpus=max((node.cpus for node in nodes), default=0),
                               gpus=max((node.gpus for node in nodes), default=0),
                               memory=max((node.memory for node in nodes), default=0))
        return (f"{need} (resources.workers = {self.workers}, resources.cpus = "
                f"{self.cpus:g}, resources.gpus = {self.gpus:g}) but the cluster's "
                f"{len(nodes)} node(s) offer at most {most.describe()} each "
                f"({_total(nodes).describe()} in all); lower resources.cpus or "
                f"resources.workers, the batch sizes (train.batch_size, "
                f"train.eval_batch_size), or add larger nodes")

    def _bundles_largest_first(self, memory: TrialMemory) -> list[ResourceAmounts]:
        return sorted(self.trial_bundles(memory), reverse=True,
                      key=lambda bundle: (bundle.gpus, bundle.memory, bundle.cpus))


def _total(amounts: list[ResourceAmounts]) -> ResourceAmounts:
    return ResourceAmounts(cpus=sum(a.cpus for a in amounts), gpus=sum(a.gpus for a in amounts),
                           memory=sum(a.memory for a in amounts))


def _first_fit(bundles: list[ResourceAmounts], free: list[ResourceAmounts]
               ) -> list[ResourceAmounts] | None:
    """What is left of `free` once every bundle is placed on the first node that holds it;
    None when one of them fits nowhere."""
    left = list(free)
    for bundle in bundles:
        node = next((index for index, amounts in enumerate(left) if amounts.holds(bundle)),
                    None)
        if node is None:
            return None
        left[node] = left[node].less(bundle)
    return left


class TrialMemory(StrictModel):
    """Bytes of memory the processes of one trial need: the Tune trial's, and each Ray Train
    worker's (0 when the folds train inside the trial)."""

    trial: float = 0
    worker: float = 0


class ResourceAmounts(StrictModel):
    """CPUs, GPUs and memory bytes: what a node offers, or what a placement-group bundle
    asks for."""

    cpus: float
    gpus: float = 0
    memory: float = 0

    def holds(self, need: ResourceAmounts) -> bool:
        return (self.cpus + 1e-9 >= need.cpus and self.gpus + 1e-9 >= need.gpus
                and self.memory + 1e-9 >= need.memory)

    def less(self, used: ResourceAmounts) -> ResourceAmounts:
        return ResourceAmounts(cpus=self.cpus - used.cpus, gpus=self.gpus - used.gpus,
                               memory=self.memory - used.memory)

    def describe(self) -> str:
        return f"{self.cpus:g} CPUs, {self.gpus:g} GPUs and {self.memory / 2**30:.2f} GiB"


class Parameter(StrictModel):
    """One searched parameter in Optuna's distribution form, optionally conditional."""

    type: Literal["categorical", "int", "float"]
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: dict[str, Any] | None = Field(
        None, description="sample only when each named parameter has the given value (or one "
        "of a list of values)")

    @pydantic.model_validator(mode="after")
    def _check(self) -> Parameter:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty `choices` list")
            if self.low is not None or self.high is not None or self.step is not None \
                    or self.log:
                raise ValueError("a categorical parameter takes `choices` only, not "
                                 "low/high/step/log")
            return self
        if self.choices is not None:
            raise ValueError(f"an {self.type} parameter takes low/high, not `choices`")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} parameter needs `low` and `high`")
        if not self.low <= self.high:
            raise ValueError(f"`low <= high` must hold, but got low={self.low}, "
                             f"high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0, but got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log` cannot be used together (Optuna)")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got step={self.step}")
        if self.type == "int" and any(value is not None and not float(value).is_integer()
                                      for value in (self.low, self.high, self.step)):
            raise ValueError(f"an int parameter needs integer low/high/step, got low="
                             f"{self.low}, high={self.high}, step={self.step}")
        return self

    def grid_values(self) -> list[Any] | None:
        """Every value, for a grid; None when the parameter is continuous."""
        if self.type == "categorical":
            return list(self.choices or ())
        if self.type == "int" and not self.log:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))  # type: ignore[arg-type]
        return None

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution it samples from; list choices as `encode_choice` text.

        >>> Parameter(type="categorical", choices=[[], [5, 6]]).distribution()
        CategoricalDistribution(choices=('json:[]', 'json:[5, 6]'))
        """
        from optuna import distributions  # lazily: validating a study needs no Optuna

        if self.type == "categorical":
            return distributions.CategoricalDistribution(
                [encode_choice(choice) for choice in self.choices or ()])
        if self.type == "int":
            return distributions.IntDistribution(int(self.low), int(self.high),  # type: ignore
                                                 log=self.log, step=int(self.step or 1))
        return distributions.FloatDistribution(float(self.low), float(self.high),  # type: ignore
                                               log=self.log, step=self.step)


class Scheduler(StrictModel):
    """When a search stops a trial early: ASHA's rung cut on the fold mean, fold racing (a
    paired test over folds against the incumbent, `ser_ray.study.racing`), or never.

    Both decide at the same rungs: epochs grace_period × reduction_factor^k below the last."""

    kind: Literal["asha", "racing", "none"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs before a trial may be stopped")
    reduction_factor: float = Field(2.0, gt=1, description="rung spacing; ASHA keeps the "
                                    "top 1/reduction_factor at each rung")
    alpha: float = Field(0.05, gt=0, lt=1, description="racing: stop a trial when the "
                         "one-sided paired test over folds says it is worse than the "
                         "incumbent at this level")
    min_folds_worse: int = Field(3, ge=1, description="racing: and it is worse on at least "
                                 "this many folds")
    asha: bool = Field(False, description="racing: also apply ASHA's rung cut")

    @pydantic.model_validator(mode="after")
    def _racing_fields_need_racing(self) -> Scheduler:
        # Defaults pass: a study's saved YAML spells every field out.
        racing_only = sorted(name for name in ("alpha", "min_folds_worse", "asha")
                             if getattr(self, name) != type(self).model_fields[name].default)
        if racing_only and self.kind != "racing":
            raise ValueError(f"{', '.join(racing_only)} apply to kind 'racing' only, not "
                             f"{self.kind!r}")
        return self

    def settings(self) -> dict[str, Any]:
        """The fields its kind uses, as a study's record keeps them."""
        used = {"none": {"kind"}, "asha": {"kind", "grace_period", "reduction_factor"},
                "racing": set(type(self).model_fields)}[self.kind]
        return self.model_dump(include=used)


class SearchSpec(StrictModel):
    parameters: dict[str, Parameter] = Field(min_length=1)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    sampler_seed: int = Field(0, ge=0)
    n_startup_trials: int = Field(4, ge=0, description="TPE: random trials before modelling")
    scheduler: Scheduler = Field(default_factory=Scheduler)

    @pydantic.model_validator(mode="after")
    def _conditions_follow_their_parents(self) -> SearchSpec:
        seen: dict[str, Parameter] = {}
        for name, parameter in self.parameters.items():
            for parent, allowed in (parameter.when or {}).items():
                if parent not in seen:
                    later = " (it must come before the parameters that depend on it)" \
                        if parent in self.parameters else ""
                    raise ValueError(f"parameter {name!r} is conditional on {parent!r}, which "
                                     f"is not an earlier parameter of the space{later}; "
                                     f"parameters: {', '.join(self.parameters)}")
                values = allowed if isinstance(allowed, list) else [allowed]
                parent_values = seen[parent].grid_values()
                if parent_values is not None and any(v not in parent_values for v in values):
                    raise ValueError(f"parameter {name!r}: `when` asks {parent} in {values}, "
                                     f"but {parent} takes {parent_values}")
            seen[name] = parameter
        if self.sampler == "grid":
            continuous = [n for n, p in self.parameters.items() if p.grid_values() is None]
            conditional = [n for n, p in self.parameters.items() if p.when]
            if continuous or conditional:
                raise ValueError(f"sampler 'grid' needs unconditional categorical or int "
                                 f"parameters; not gridable: "
                                 f"{', '.join(continuous + conditional)}")
        return self

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values() or ()) for p in self.parameters.values())


class Factor(StrictModel):
    """Levels of one factor, in order; each level is a set of dotted overrides."""

    levels: dict[str, dict[str, Any]] = Field(min_length=2)
    baseline: str | None = Field(None, description="the baseline level (default: the first)")

    @pydantic.field_validator("levels", mode="before")
    @classmethod
    def _level_names_are_text(cls, levels: Any) -> Any:
        if isinstance(levels, dict):
            odd = [name for name in levels if not isinstance(name, str)]
            if odd:
                raise ValueError(f"level names must be text, got {odd}; YAML reads on/off/yes/"
                                 f"no/true/false and numbers as other types, so quote them "
                                 f"(\"on\": ...)")
        return levels

    @pydantic.model_validator(mode="after")
    def _baseline_is_a_level(self) -> Factor:
        if self.baseline is not None and self.baseline not in self.levels:
            raise ValueError(f"baseline {self.baseline!r} is not a level; levels: "
                             f"{', '.join(self.levels)}")
        return self

    @property
    def baseline_level(self) -> str:
        return self.baseline or next(iter(self.levels))


class AblationSpec(StrictModel):
    design: Literal["one-factor", "factorial", "leave-one-out"]
    factors: dict[str, Factor] = Field(min_length=1)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="extra named variants (overrides over the baseline), "
        "e.g. two changes at once as in the papers' ablation tables")

    @pydantic.model_validator(mode="after")
    def _check(self) -> AblationSpec:
        if self.design == "leave-one-out":
            for name, factor in self.factors.items():
                if len(factor.levels) != 2:
                    raise ValueError(f"leave-one-out factor {name!r} needs exactly two levels "
                                     f"(with, without), got {', '.join(factor.levels)}")
        if self.design == "factorial" and self.variants:
            raise ValueError("extra `variants` belong to one-factor and leave-one-out designs")
        return self


class Reproduces(StrictModel):
    paper: Literal["kim2024", "tang2024", "lee2025", "kundu2024"]
    rows: dict[str, str] = Field(description="variant name → the paper's row key")


class StudyConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    corpus: CorpusSpec
    selection: SelectionSpec
    protocol: ProtocolSpec
    features: dict[str, FeatureSetSpec] = Field(min_length=1, description="named feature sets")
    feature_set: str | dict[str, str] = Field(
        description="the feature set configurations train on: a name, or a mapping from model "
        "family to name (searches across models)")
    model: ModelSpec
    train: dict[str, Any] = Field(default_factory=dict, description="training settings over the "
                                  "model's paper training (ser_ray.experiment.TrainConfig "
                                  "fields)")
    objective: Objective = Field(default_factory=Objective, description="default: "
                                 "validation UA for a search (with train.validation: "
                                 "train-speakers), test UA for an ablation")
    budget: Budget
    resources: Resources = Field(default_factory=Resources)
    seeds: int = Field(1, ge=1, description="repeats of every configuration, seeds 0..n-1")
    cache_dir: Path | None = Field(None, description="feature cache root; default "
                                   "$SER_RAY_CACHE or ~/.cache/ser-ray/features")
    storage_path: str | None = Field(None, description="where trial results and checkpoints "
                                     "go, under <storage_path>/<name>: a local directory or a "
                                     "URI (s3://bucket/prefix, gs://bucket/prefix, file:///path)"
                                     "; default: the experiment directory")
    search: SearchSpec | None = None
    ablation: AblationSpec | None = None
    reproduces: Reproduces | None = None

    @pydantic.field_validator("storage_path")
    @classmethod
    def _storage_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        address = urllib.parse.urlsplit(value)
        if address.scheme and address.scheme not in STORAGE_SCHEMES:
            raise ValueError(f"storage_path {value!r}: the scheme must be one of "
                             f"{', '.join(STORAGE_SCHEMES)} (or give a local directory)")
        if address.scheme == "file" and (address.netloc or not address.path):
            raise ValueError(f"storage_path {value!r}: a file URI names an absolute path, "
                             f"file:///like/this")
        return value

    @pydantic.model_validator(mode="before")
    @classmethod
    def _searches_choose_on_validation(cls, raw: Any) -> Any:
        """A search ranks and prunes on a validation split carved from the training folds
        unless its YAML names another objective: choosing a configuration by its test score
        is OPTIMISTIC (the papers' searches did it; their YAMLs say so explicitly)."""
        if not isinstance(raw, dict) or raw.get("search") is None:
            return raw
        objective = raw.get("objective") or {}
        if not isinstance(objective, dict):
            return raw  # the field's own validation names the problem
        raw = {**raw, "objective": {"metric": SEARCH_OBJECTIVE, **objective}}
        metric = raw["objective"]["metric"]
        if isinstance(metric, str) and metric.startswith(VALIDATION_PREFIX):
            train = raw.get("train") or {}
            if isinstance(train, dict) and "validation" not in train:
                raw["train"] = {**train, "validation": "train-speakers"}
        return raw

    @pydantic.model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if (self.search is None) == (self.ablation is None):
            raise ValueError("a study has exactly one of `search` or `ablation`")
        if "epochs" in self.train:
            raise ValueError("set epochs in `budget.epochs`, not `train.epochs` (one value "
                             "for every configuration, and the scheduler's limit)")
        if "seed" in self.train:
            raise ValueError("use `seeds: N` for repeats; `train.seed` is set per repeat")
        names = [self.feature_set] if isinstance(self.feature_set, str) \
            else list(self.feature_set.values())
        unknown = [name for name in names if name not in self.features]
        if unknown:
            raise ValueError(f"feature_set names {unknown} that `features` does not define; "
                             f"feature sets: {', '.join(self.features)}")
        if self.search is not None:
            if self.search.sampler != "grid" and self.budget.trials is None:
                raise ValueError("a search needs `budget.trials`")
            if self.seeds != 1:
                raise ValueError(f"seeds={self.seeds}: repeats belong to ablations; a search "
                                 f"tries each configuration once (seed 0)")
        if self.reproduces is not None and self.ablation is None:
            raise ValueError("`reproduces` maps ablation variants to paper rows; it needs an "
                             "ablation design")
        return self

    @property
    def design(self) -> str:
        return "search" if self.ablation is None else self.ablation.design

    @property
    def planned_trials(self) -> int:
        """A search's trials: its budget, or every configuration of its grid."""
        assert self.search is not None
        return self.budget.trials or self.search.grid_size()


def load_study(path: Path, overrides: dict[str, Any] | None = None,
               paths_relative_to: Path | None = None) -> StudyConfig:
    """Read and validate a study YAML; relative corpus, cache and storage paths are from its
    folder, or from `paths_relative_to` (a Ray job reads the YAML from its temporary copy of
    the repository: its paths mean the user's folder, not the copy's).

    `overrides` set dotted fields before validation (`budget.epochs`, `corpus.synthetic.
    sessions`), e.g. for a quick smoke run of a real study.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"study file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of study fields")
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    study = validate(StudyConfig, raw, f"study {path.name}")
    base = paths_relative_to.expanduser() if paths_relative_to is not None else path.parent
    return _absolute_paths(study, base.resolve())


def _absolute_paths(study: StudyConfig, base: Path) -> StudyConfig:
    corpus = study.corpus
    if corpus.root is not None and not corpus.root.is_absolute():
        corpus = corpus.model_copy(update={"root": (base / corpus.root).resolve()})
    cache_dir = study.cache_dir
    if cache_dir is not None and not cache_dir.expanduser().is_absolute():
        cache_dir = (base / cache_dir).resolve()
    storage_path = study.storage_path
    if storage_path is not None and not urllib.parse.urlsplit(storage_path).scheme:
        storage_path = str((base / Path(storage_path).expanduser()).resolve())
    return study.model_copy(update={"corpus": corpus, "cache_dir": cache_dir,
                                    "storage_path": storage_path})
