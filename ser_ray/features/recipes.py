"""The feature recipes by name: their union, and parsing a recipe from config.

One recipe per file (`logmel`, `mfcc_segments`, `zcr_mfcc_vector`, `spectral_stats`); `kind`
discriminates the `FeatureRecipe` union, so a recipe round-trips through
`model_dump(mode="json")` and `parse_recipe`.

>>> parse_recipe({"kind": "logmel", "versions": [8]}).feature_shape()
(64, 601)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from ser_ray.errors import UserError
from ser_ray.features.logmel import LogMelRecipe
from ser_ray.features.mfcc_segments import MfccSegmentsRecipe
from ser_ray.features.recipe import RecipeBase
from ser_ray.features.spectral_stats import SpectralStatsRecipe
from ser_ray.features.zcr_mfcc_vector import ZcrMfccVectorRecipe
from ser_ray.schema import validate

FeatureRecipe = Annotated[
    LogMelRecipe | MfccSegmentsRecipe | ZcrMfccVectorRecipe | SpectralStatsRecipe,
    Field(discriminator="kind"),
]
RECIPES: dict[str, type[RecipeBase]] = {
    recipe.model_fields["kind"].default: recipe
    for recipe in (LogMelRecipe, MfccSegmentsRecipe, ZcrMfccVectorRecipe, SpectralStatsRecipe)
}


def recipe_names() -> list[str]:
    return sorted(RECIPES)


def parse_recipe(spec: str | Mapping[str, Any] | RecipeBase) -> FeatureRecipe:
    """A recipe from its name (all defaults), a mapping with `kind`, or a recipe (returned as is).

    Raises:
        UserError: unknown kind, unknown field, or a bad value; the message names the field and
            what is allowed.
    """
    if isinstance(spec, RecipeBase):
        return spec  # type: ignore[return-value]
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping):
        raise UserError(f"a feature recipe is a name or a mapping, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in RECIPES:
        raise UserError(f"unknown feature recipe {kind!r}; recipes: {', '.join(recipe_names())}")
    return validate(RECIPES[kind], dict(spec), f"feature recipe {kind!r}",  # type: ignore
                    allowed=f"fields of {kind!r}")
