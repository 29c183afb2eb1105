"""Feature stage: recipes computed once per corpus on Ray Data into a content-addressed cache.

The Ray pipeline itself is `ser_ray.features.pipeline.build_features` (and its Ray-free twin
`ser_ray.features.featurize.build_features_here`); neither is imported here, so reading a
cache (`load_features`) never loads Ray.
"""

from ser_ray.features.augment import AugmentationSpec, apply_augmentation, parse_augmentation
from ser_ray.features.cache import FeatureCache, open_cache
from ser_ray.features.loader import FeatureSet, load_features
from ser_ray.features.recipes import FeatureRecipe, parse_recipe, recipe_names

__all__ = [
    "AugmentationSpec",
    "FeatureCache",
    "FeatureRecipe",
    "FeatureSet",
    "apply_augmentation",
    "describe_cache",
    "load_features",
    "open_cache",
    "parse_augmentation",
    "parse_recipe",
    "recipe_names",
]


def describe_cache(feature_cache: FeatureCache) -> str:
    metadata = feature_cache.metadata
    lines = [
        f"  recipe {metadata['recipe']['kind']}, variants {metadata['variants']}, "
        f"feature shape {tuple(metadata['feature_shape'])}",
        f"  {metadata['rows']} rows from {metadata['utterances']} utterances; "
        f"augmentations: {', '.join(metadata['augmentations']) or 'none'}",
    ]
    skipped = feature_cache.skipped()
    if len(skipped):
        counts = skipped["reason_code"].value_counts().sort_index()
        lines.append(f"  skipped {len(skipped)}: "
                     + ", ".join(f"{code} {n}" for code, n in counts.items()))
    return "\n".join(lines)
