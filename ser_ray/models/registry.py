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

import pydantic
from torch import nn

from ser_ray.errors import UserError


class ModelOptions(pydantic.BaseModel):
    """Base of every model's options: strict (no unknown keys) and immutable."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


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
    """Validate options for model `name`, turning pydantic's report into a user error."""
    options_class = model_class(name).options_class
    try:
        return options_class(**options)
    except pydantic.ValidationError as error:
        raise UserError(_describe_option_errors(name, options_class, error)) from error


def _describe_option_errors(
    name: str, options_class: type[ModelOptions], error: pydantic.ValidationError
) -> str:
    allowed = ", ".join(options_class.model_fields)
    problems = []
    for detail in error.errors():
        option = ".".join(str(part) for part in detail["loc"]) or "(options)"
        if detail["type"] == "extra_forbidden":
            problems.append(f"unknown option {option!r}; options of {name!r}: {allowed}")
        else:
            problems.append(
                f"option {option!r} = {detail.get('input')!r}: {detail['msg']}"
            )
    return f"model {name!r}: " + "; ".join(problems)


def build(name: str, num_classes: int, **options: Any) -> SerModel:
    """Instantiate registered model `name` with validated options."""
    if num_classes < 2:
        raise UserError(f"num_classes must be at least 2, got {num_classes}")
    parsed = parse_options(name, options)
    return model_class(name)(num_classes, parsed)  # type: ignore[call-arg]


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


def resolve(name: str, feature_shape: tuple[int, ...],
            **options: Any) -> tuple[str, dict[str, Any]]:
    """(model name, options) for a model or preset name, sized to the features.

    Precedence: a preset's options, then the sizes the features imply, then `options`. The
    features must fill the model's input exactly (a missing channel axis is added).

    >>> resolve("eca_cnn-k4-eca56", (64, 301))[1]["n_frames"]
    301
    """
    if name in PRESETS:
        chosen = PRESETS[name]
        name, options = chosen.model, {**chosen.options, **options}
    resolved = {**options}
    for option, value in model_class(name).input_options(tuple(feature_shape)).items():
        resolved.setdefault(option, value)
    expected = input_shape(name, **resolved)
    if math.prod(expected) != math.prod(feature_shape):
        raise UserError(f"model {name!r} with these options takes inputs of shape {expected}, "
                        f"but the features are {tuple(feature_shape)}; set its size options "
                        f"to match or choose another feature recipe")
    return name, resolved


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, PyTorch style (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
