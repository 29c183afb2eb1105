"""Seed architectures, one file each, registered by name; presets are paper configurations.

    >>> from ser_ray import models
    >>> model = models.build("eca_cnn", num_classes=4, scale=1)
    >>> models.count_parameters(model)
    76660
"""

from ser_ray.models import cnn1d_csa, ctmam, eca_cnn, eca_cnn_bilstm  # noqa: F401  (registers)
from ser_ray.models.registry import (
    PRESETS,
    ModelOptions,
    Preset,
    ResolvedModel,
    SerModel,
    build,
    build_preset,
    count_parameters,
    family,
    get_preset,
    input_shape,
    names,
    parse_options,
    preset,
    preset_names,
    resolve,
)

__all__ = [
    "PRESETS",
    "ModelOptions",
    "Preset",
    "ResolvedModel",
    "SerModel",
    "build",
    "build_preset",
    "count_parameters",
    "family",
    "get_preset",
    "input_shape",
    "names",
    "parse_options",
    "preset",
    "preset_names",
    "resolve",
]
