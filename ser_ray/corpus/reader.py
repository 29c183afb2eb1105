"""What every corpus reader provides, and the registry that finds a reader by corpus name.

A reader only interprets names and side files (label files, demographics); walking the tree,
probing audio headers, recording skipped files and reporting labelled utterances without audio
is shared by all corpora in `scan.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ser_ray.errors import UserError


@dataclass(frozen=True)
class NameFields:
    """What a file's name (plus the corpus's side files) says about one utterance."""

    utterance_id: str
    speaker: str
    raw_label: str
    gender: str | None = None
    session: str | None = None
    improvised: bool | None = None


@dataclass(frozen=True)
class LabelledUtterance:
    """An utterance a label file names, apart from its audio: the scan reports the ones whose
    audio file is absent (an incomplete download), which nothing else would reveal."""

    utterance_id: str
    raw_label: str
    label_file: Path
    audio_path: Path
    """Where the corpus layout puts its audio file."""


class SkipFile(Exception):
    """Raised by a reader for a file that is not a usable utterance."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


class CorpusReader:
    """Base of the per-corpus readers.

    `files` is every non-hidden file under the root (one walk serves both the audio and the
    side files a reader needs), so readers never walk the tree themselves. A reader whose
    labels come from label files fills `labelled`, by utterance id; corpora labelled by
    their file names leave it empty.
    """

    name: ClassVar[str]
    file_pattern: ClassVar[re.Pattern[str]]
    example_name: ClassVar[str]
    label_map: ClassVar[Mapping[str, str]]
    # Audio files the corpus ships that are not utterances, with the reason they are skipped.
    known_non_utterances: ClassVar[Sequence[tuple[re.Pattern[str], str, str]]] = ()

    def __init__(self, root: Path, files: Sequence[Path]) -> None:
        self.root = root
        self.notes: list[str] = []
        self.labelled: dict[str, LabelledUtterance] = {}

    def match(self, path: Path) -> re.Match[str] | None:
        return self.file_pattern.match(path.name)

    def parse(self, path: Path, match: re.Match[str]) -> NameFields:
        """Fields of a name with `speaker` and `emotion` groups; readers override what differs."""
        return NameFields(
            utterance_id=self.utterance_id(path),
            speaker=match["speaker"],
            raw_label=match["emotion"],
            gender=self.gender(match),
        )

    def utterance_id(self, path: Path) -> str:
        return path.stem

    def gender(self, match: re.Match[str]) -> str | None:
        return match.groupdict().get("gender")

    def fields(self, path: Path) -> NameFields:
        """Interpret one audio file or raise SkipFile with the reason it is not an utterance."""
        match = self.match(path)
        if match is None:
            for pattern, code, reason in self.known_non_utterances:
                if pattern.match(path.name):
                    raise SkipFile(code, reason)
            raise SkipFile(
                "bad_name",
                f"file name does not follow the {self.name} convention "
                f"(expected names like {self.example_name})",
            )
        fields = self.parse(path, match)
        if fields.raw_label not in self.label_map:
            raise SkipFile(
                "unknown_label",
                f"label code {fields.raw_label!r} is not one of the {self.name} codes "
                f"({', '.join(sorted(self.label_map))})",
            )
        return fields

    def canonical_label(self, raw_label: str) -> str:
        return self.label_map[raw_label]

    def speaker_id(self, speaker: str) -> str:
        """Speakers are namespaced so that two corpora (or ShEMO's F01 and M01) never collide."""
        return f"{self.name}:{speaker}"


READERS: dict[str, type[CorpusReader]] = {}


def register_reader(cls: type[CorpusReader]) -> type[CorpusReader]:
    if cls.name in READERS:
        raise ValueError(f"corpus reader {cls.name!r} is registered twice")
    READERS[cls.name] = cls
    return cls


def get_reader(name: str) -> type[CorpusReader]:
    if name not in READERS:
        raise UserError(f"unknown corpus {name!r}; choose one of: {', '.join(sorted(READERS))}")
    return READERS[name]


def gender_of_numbered_actor(match: re.Match[str]) -> str:
    """RAVDESS-style corpora number male actors odd and female actors even."""
    return "M" if int(match["speaker"]) % 2 else "F"
