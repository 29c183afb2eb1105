"""Model registry: name → (module class, options model); presets name paper configurations.

Options are validated once, here, by each model's strict pydantic options class: an unknown
option or an out-of-range value is a user error that names the option and what is allowed.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from torch import nn

from ser_ray.errors import UserError
from ser_ray.schema import StrictModel, validate


class ModelOptions(StrictModel):
    """Base of every model's options: strict (no unknown keys) and immutable."""


class SerModel(nn.Module, metaclass=ABCMeta):
    """What every registered model provides besides `forward`: its options and input shape.

    Constructed as `Model(num_classes, options)` with `options` an instance of
    `options_class`, already validated.
    """

    options_class: ClassVar[type[ModelOptions]]

    @classmethod
    @abstractmethod
    def input_shape(cls, options: ModelOptions) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""

    @classmethod
    def input_options(cls, feature_shape: tuple[int, ...]) -> dict[str, Any]:
        """Options that size the model for features of `feature_shape`; {} for a fixed input."""
        return {}


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)
    # The paper's or the derivation's parameter count, where it is fixed.
    expected_parameters: int | None = None
    description: str = ""


MODELS: dict[str, type[SerModel]] = {}
PRESETS: dict[str, Preset] = {}
ModelClass = TypeVar("ModelClass", bound=type[SerModel])


def register_model(name: str) -> Callable[[ModelClass], ModelClass]:
    def register(cls: ModelClass) -> ModelClass:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = cls
        return cls

    return register


def register_preset(preset: Preset) -> None:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is registered twice")
    PRESETS[preset.name] = preset


def names() -> list[str]:
    return sorted(MODELS)


def preset_names() -> list[str]:
    return sorted(PRESETS)


def model_class(name: str) -> type[SerModel]:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; registered: {', '.join(names())}")
    return MODELS[name]


def parse_options(name: str, options: dict[str, Any]) -> ModelOptions:
    """Validate options for model `name`; a bad option is a user error naming the valid ones."""
    return validate(model_class(name).options_class, options, f"model {name!r}",
                    noun="option", allowed=f"options of {name!r}")


def build(name: str, num_classes: int, **options: Any) -> SerModel:
    """Instantiate registered model `name` with validated options."""
    return ResolvedModel(name, parse_options(name, options)).build(num_classes)


def preset(preset_name: str) -> SerModel:
    return build_preset(get_preset(preset_name))


def get_preset(preset_name: str) -> Preset:
    if preset_name not in PRESETS:
        raise UserError(f"unknown preset {preset_name!r}; presets: {', '.join(preset_names())}")
    return PRESETS[preset_name]


def build_preset(chosen: Preset) -> SerModel:
    return build(chosen.model, chosen.num_classes, **chosen.options)


def input_shape(name: str, **options: Any) -> tuple[int, ...]:
    return model_class(name).input_shape(parse_options(name, options))


def family(name: str) -> str:
    """The registered model a model or preset name builds."""
    if name in PRESETS:
        return PRESETS[name].model
    model_class(name)
    return name


@dataclass(frozen=True)
class ResolvedModel:
    """A registered model with its options validated: what builds the network."""

    family: str
    options: ModelOptions

    @property
    def input_shape(self) -> tuple[int, ...]:
        return model_class(self.family).input_shape(self.options)

    def build(self, num_classes: int) -> SerModel:
        if num_classes < 2:
            raise UserError(f"num_classes must be at least 2, got {num_classes}")
        return model_class(self.family)(num_classes, self.options)  # type: ignore[call-arg]


def resolve(name: str, feature_shape: tuple[int, ...], **options: Any) -> ResolvedModel:
    """A model or preset name with options, sized to the features and validated once.

    Precedence: a preset's options, then the sizes the features imply, then `options`. The
    features must fill the model's input exactly (a missing channel axis is added).

    >>> resolve("eca_cnn-k4-eca56", (64, 301)).options.n_frames
    301
    """
    if name in PRESETS:
        chosen = PRESETS[name]
        name, options = chosen.model, {**chosen.options, **options}
    sized = {**options}
    for option, value in model_class(name).input_options(tuple(feature_shape)).items():
        sized.setdefault(option, value)
    resolved = ResolvedModel(name, parse_options(name, sized))
    if math.prod(resolved.input_shape) != math.prod(feature_shape):
        raise UserError(f"model {name!r} with these options takes inputs of shape "
                        f"{resolved.input_shape}, but the features are {tuple(feature_shape)}; "
                        f"set its size options to match or choose another feature recipe")
    return resolved


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, PyTorch style (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
