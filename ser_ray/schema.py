"""Strict configuration models and the one way their errors reach a user.

Every config a user writes (study YAML, training settings, model options, feature recipes)
is a pydantic model that forbids unknown keys and is immutable; a validation failure becomes a
`UserError` whose message names the field, quotes the bad value and lists what is allowed.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from ser_ray.errors import UserError

Model = TypeVar("Model", bound=pydantic.BaseModel)


class StrictModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    """`target["a"]["b"] = value` for key "a.b", creating the mappings on the way.

    >>> settings = {"loss": {"kind": "ce"}}
    >>> set_dotted(settings, "loss.gamma", 1.0)
    >>> settings
    {'loss': {'kind': 'ce', 'gamma': 1.0}}
    """
    parts = key.split(".")
    for part in parts[:-1]:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise UserError(f"{key}: {part!r} is a value, not a group of settings")
        target = nested
    target[parts[-1]] = value


def validate(model: type[Model], values: Any, what: str) -> Model:
    """`model.model_validate(values)`, or a UserError describing every problem."""
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, model, what)) from error


def describe_validation_error(error: pydantic.ValidationError, model: type[pydantic.BaseModel],
                              what: str) -> str:
    """One clause per problem: the dotted field, the bad value, and the valid fields.

    >>> class Knobs(StrictModel):
    ...     epochs: int = pydantic.Field(1, ge=1)
    >>> try:
    ...     Knobs.model_validate({"epoch": 3})
    ... except pydantic.ValidationError as error:
    ...     print(describe_validation_error(error, Knobs, "setting"))
    setting: unknown field 'epoch'; valid fields: epochs
    """
    problems = []
    for detail in error.errors():
        location = tuple(detail["loc"])
        field = ".".join(str(part) for part in location)
        if detail["type"] == "extra_forbidden":
            problems.append(f"unknown field {field!r}; valid fields: "
                            f"{', '.join(fields_at(model, location[:-1]))}")
        elif field:
            problems.append(f"field {field!r} = {detail.get('input')!r}: {detail['msg']}")
        else:
            problems.append(detail["msg"].removeprefix("Value error, "))
    return f"{what}: " + "; ".join(problems)


def fields_at(model: type[pydantic.BaseModel], location: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at `location`."""
    current: Any = model
    for part in location:
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            continue
        annotation = fields[part].annotation
        nested = [arg for arg in (annotation, *getattr(annotation, "__args__", ()))
                  if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)]
        if nested:
            current = nested[0]
    return list(getattr(current, "model_fields", {}))
