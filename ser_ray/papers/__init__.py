"""The seed papers' reported numbers, protocols and [DEFAULT] knobs (package data, read-only).

A study's `reproduces:` names a paper and rows of it; the study stage checks those names and
the report puts the paper's numbers beside ours. Neither imports the other: both read here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from typing import Any

import yaml


@functools.cache
def load_paper_results() -> dict[str, Any]:
    """Every paper: citation, comparability, protocol, defaults and its results tree."""
    text = resources.files("ser_ray.papers").joinpath("results.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def paper(name: str) -> dict[str, Any]:
    papers = load_paper_results()
    if name not in papers:
        raise KeyError(f"unknown paper {name!r}; known: {', '.join(papers)}")
    return papers[name]


def paper_row_keys(name: str) -> list[str]:
    """Every dotted row key of a paper's results tree.

    >>> keys = paper_row_keys("kundu2024")
    >>> len(keys), keys[0]
    (5, 'mean_accuracy_5fold.TESS')
    """
    return [key for key, _ in _row_paths(paper(name)["results"])]


def paper_row(name: str, row_key: str) -> dict[str, float]:
    """A reported row, metric → value, e.g. paper_row("kim2024", "ablation_table_V.cnn").

    >>> paper_row("kim2024", "ablation_table_V.cnn+our_eca")
    {'UA': 79.37, 'WA': 79.68, 'ACC': 79.53}
    """
    rows = dict(_row_paths(paper(name)["results"]))
    if row_key not in rows:
        raise KeyError(f"{name} has no row {row_key!r}; rows: {', '.join(rows)}")
    return rows[row_key]


def _row_paths(tree: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, float]]]:
    """(dotted key, row) for every leaf mapping of numbers."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if all(isinstance(item, (int, float)) for item in value.values()):
            yield path, value
        else:
            yield from _row_paths(value, f"{path}.")
