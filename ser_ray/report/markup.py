"""Markdown pieces the report's sections share: tables, collapsible blocks, figure links, and
how a score, a p-value or a count is written."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

COLLAPSE_AFTER = 10
METRIC_LABELS = {"unweighted_accuracy": "UA", "weighted_accuracy": "WA", "ua_wa_mean": "ACC",
                 "macro_f1": "macro-F1"}


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[escape(str(cell)) for cell in row] for row in rows]
    return tabulate(cells, headers=list(headers), tablefmt="github", disable_numparse=True)


def details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def image(directory: Path, path: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(directory).as_posix()})"


def score(mean: float, sd: float) -> str:
    """
    >>> score(79.1634, 0.5), score(79.1634, float("nan")), score(float("nan"), 1.0)
    ('79.16 ± 0.50', '79.16', '—')
    """
    if missing(mean):
        return "—"
    return f"{mean:.2f}" if missing(sd) else f"{mean:.2f} ± {sd:.2f}"


def delta(value: float) -> str:
    return "—" if missing(value) else f"{value:+.2f}"


def p_value(value: float) -> str:
    """
    >>> p_value(0.0004), p_value(0.0312), p_value(float("nan"))
    ('<0.001', '0.031', '—')
    """
    if missing(value):
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def count(value: float) -> str:
    return "—" if missing(value) else f"{int(value):,}"


def text(value: Any) -> str:
    return "—" if missing(value) else str(value)


def plain(value: Any) -> str:
    if missing(value):
        return "not stated"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def config_value(value: Any) -> str:
    """A sampled value as JSON; '—' where a conditional parameter was not sampled."""
    return "—" if missing(value) else json.dumps(value)


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def level(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def listing(values: Any) -> str:
    return ", ".join(map(str, values or [])) or "—"


def inline_mapping(mapping: dict[str, Any]) -> str:
    return "; ".join(f"{key}={json.dumps(value)}" for key, value in mapping.items()) or "—"


def code(text: str) -> str:
    return f"`{text}`"


def escape(text: str) -> str:
    """Keep a cell in its column: pipes escaped, newlines as spaces."""
    return text.replace("|", "\\|").replace("\n", " ")


def slug(name: str) -> str:
    """A file-name-safe form of a variant name.

    >>> slug("eca=on / k=7")
    'eca_on_k_7'
    """
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "variant"


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
