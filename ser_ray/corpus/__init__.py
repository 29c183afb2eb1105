"""Corpus stage: readers turn a corpus tree into an utterance manifest; selection picks classes."""

from ser_ray.corpus import (  # noqa: F401  (importing a reader registers it)
    banglaser,
    cremad,
    emodb,
    emovo,
    esd,
    iemocap,
    ravdess,
    savee,
    shemo,
    subesco,
    tess,
)
from ser_ray.corpus.manifest import LABELS, read_manifest, write_manifest
from ser_ray.corpus.reader import READERS, get_reader
from ser_ray.corpus.scan import ScanResult, scan_corpus, summarize, write_scan
from ser_ray.corpus.select import Selection, apply_selection, parse_merge, select_manifest

__all__ = [
    "LABELS",
    "READERS",
    "ScanResult",
    "Selection",
    "apply_selection",
    "get_reader",
    "parse_merge",
    "read_manifest",
    "scan_corpus",
    "select_manifest",
    "summarize",
    "write_manifest",
    "write_scan",
]
