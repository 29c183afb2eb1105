"""Strict configuration models and the one way their errors reach a user.

Every config a user writes (study YAML, training settings, model options, feature recipes,
augmentations) and every record a study writes is a `StrictModel`: unknown keys are refused
and instances are immutable. A validation failure becomes a `UserError` whose message names
the field, quotes the bad value and lists what is allowed (`describe_validation_error`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from ser_ray.errors import UserError

Model = TypeVar("Model", bound=pydantic.BaseModel)


class StrictModel(pydantic.BaseModel):
    # NaN stays NaN in JSON (a diverged loss, a split without a class), as json.dumps writes it.
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


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


def validate(model: type[Model], values: Any, what: str, *, noun: str = "field",
             allowed: str | None = None) -> Model:
    """`model.model_validate(values)`, or a UserError describing every problem (see
    `describe_validation_error` for `what`, `noun` and `allowed`)."""
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, model, what, noun=noun,
                                                  allowed=allowed)) from error


def describe_validation_error(error: pydantic.ValidationError, model: type[pydantic.BaseModel],
                              what: str, *, noun: str = "field",
                              allowed: str | None = None) -> str:
    """One clause per problem: the dotted field, the bad value, and the valid fields.

    Args:
        what: what was validated, leading the message ("study demo.yaml", "model 'ctmam'").
        noun: what a field is called to the user ("field", "option", "parameter").
        allowed: how the list of valid names is introduced; default "valid {noun}s".

    >>> class Knobs(StrictModel):
    ...     epochs: int = pydantic.Field(1, ge=1)
    >>> try:
    ...     Knobs.model_validate({"epoch": 3})
    ... except pydantic.ValidationError as error:
    ...     print(describe_validation_error(error, Knobs, "setting"))
    setting: unknown field 'epoch'; valid fields: epochs
    >>> try:
    ...     Knobs.model_validate({"epochs": 0})
    ... except pydantic.ValidationError as error:
    ...     print(describe_validation_error(error, Knobs, "model 'm'", noun="option"))
    model 'm': option 'epochs' = 0: Input should be greater than or equal to 1
    """
    problems = []
    for detail in error.errors():
        location = tuple(detail["loc"])
        field = ".".join(str(part) for part in location)
        if detail["type"] == "extra_forbidden":
            valid = ", ".join(fields_at(model, location[:-1]))
            problems.append(f"unknown {noun} {field!r}; {allowed or f'valid {noun}s'}: {valid}")
        elif detail["type"] == "missing" and field:
            problems.append(f"{noun} {field!r} is required")
        elif field:
            message = str(detail["msg"]).removeprefix("Value error, ")
            problems.append(f"{noun} {field!r} = {detail.get('input')!r}: {message}")
        else:
            problems.append(str(detail["msg"]).removeprefix("Value error, "))
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
