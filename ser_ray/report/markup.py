"""Markdown pieces the report's sections share: tables, collapsible blocks, figure links, and
how a score, a p-value, a count, a recorded path or an OPTIMISTIC choice is written."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ser_ray.experiment import objective_split

COLLAPSE_AFTER = 10
# A root path where a path starts (not inside a longer one), with the "/" that follows it.
# A path root, not a longer name: a dot after it continues a name only when a name
# character follows (`/runs/x.old`), not at the end of a sentence (`in /runs/x.`). Group 1
# is the slash before a path inside it; the root itself may end in a slash.
_PATH_ROOT = r"(?<![\w.~/-]){root}(?:(/)(?=[\w.~-])|/?(?![\w~/-]|\.\w))"
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
    """
    >>> metric_label("unweighted_accuracy"), metric_label("validation_macro_f1")
    ('UA', 'validation macro-F1')
    """
    split, name = objective_split(metric)
    label = METRIC_LABELS.get(name, name)
    return label if split == "test" else f"{split} {label}"


def optimistic(choice: str) -> str:
    """The mark of a number chosen on the folds it is reported on: an epoch picked by its
    test score (`selection: best-test`), or a configuration ranked by a test metric.

    >>> optimistic("epoch")
    '**OPTIMISTIC: epoch selected on the test folds**'
    """
    return f"**OPTIMISTIC: {choice} selected on the test folds**"


def relative_paths(text: str, directory: Path) -> str:
    """`text` (a recorded path, or a traceback naming some) without the absolute paths of the
    machine that ran the study: under the experiment folder relative to it, or to one of the
    two folders above it (`../`, `../../`: a study's neighbours, e.g. its feature cache);
    under the home directory from `~`; any other path stays as recorded.

    >>> relative_paths("/runs/demo/search/a.npy and /runs/cache/k.", Path("/runs/demo/search"))
    'a.npy and ../../cache/k.'
    >>> relative_paths("File /runs/x, not /runs/xy or /data/runs/x/a", Path("/runs/x"))
    'File ./, not ../xy or /data/runs/x/a'
    >>> relative_paths("in /runs/x. Or /runs/x/", Path("/runs/x"))
    'in ./. Or ./'
    """
    home = os.path.expanduser("~")
    roots: dict[str, str] = {}
    for folder in dict.fromkeys([directory.absolute(), directory.resolve()]):
        for up, root in enumerate([folder, *folder.parents][:3]):
            # The root and the home folder's own ancestors name too much to stand for.
            if root != Path(root.anchor) and not Path(home).is_relative_to(root):
                roots.setdefault(str(root), "../" * up)
    if os.path.isabs(home) and home != "/":
        roots.setdefault(home, "~/")
    # Longest first: the experiment folder usually lies under the home directory.
    for root in sorted(roots, key=len, reverse=True):
        inside = roots[root]
        itself = inside if inside.startswith(".") else inside.rstrip("/") or "./"
        text = re.sub(_PATH_ROOT.format(root=re.escape(root.rstrip("/"))),
                      lambda found: inside if found.group(1) else itself, text)
    return text


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
