"""SAVEE (Haq & Jackson, 2009): four male speakers; `DC_a01.wav` flat or `DC/a01.wav` official.

In the official layout the speaker is the parent folder. `sa`/`su` are tried before the
single-letter codes so that sadness and surprise are not read as anger.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_ray.corpus.reader import CorpusReader, NameFields, SkipFile, register_reader

SPEAKERS = ("DC", "JE", "JK", "KL")
OFFICIAL_NAME = re.compile(r"^(?P<emotion>sa|su|[adfhn])(?P<index>\d{2})\.wav$")


@register_reader
class SaveeReader(CorpusReader):
    name = "savee"
    file_pattern = re.compile(
        r"^(?P<speaker>DC|JE|JK|KL)_(?P<emotion>sa|su|[adfhn])(?P<index>\d{2})\.wav$"
    )
    example_name = "DC_a01.wav (flat) or DC/a01.wav (official)"
    label_map = {
        "a": "angry", "d": "disgust", "f": "fear", "h": "happy",
        "n": "neutral", "sa": "sad", "su": "surprise",
    }

    def match(self, path: Path) -> re.Match[str] | None:
        return self.file_pattern.match(path.name) or OFFICIAL_NAME.match(path.name)

    def parse(self, path: Path, match: re.Match[str]) -> NameFields:
        speaker = match.groupdict().get("speaker") or path.parent.name
        if speaker not in SPEAKERS:
            raise SkipFile(
                "bad_name",
                f"official-layout file in folder {speaker!r}, which is not a SAVEE speaker "
                f"({', '.join(SPEAKERS)})",
            )
        return NameFields(
            utterance_id=f"{speaker}_{match['emotion']}{match['index']}",
            speaker=speaker,
            raw_label=match["emotion"],
            gender="M",
        )
