"""IEMOCAP (Busso et al., 2008): 5 sessions x 2 actors, labels in EmoEvaluation files.

The speaker of a turn is session + the gender letter just before the turn index
(`Ses01F_impro01_M003` is the male actor of session 1), never the dialog prefix, and the
letter is found by the regex, not by a fixed character position (dialogs such as `impro05a`
and `script01_1b` shift it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ser_ray.corpus.reader import (
    CorpusReader,
    LabelledUtterance,
    NameFields,
    SkipFile,
    register_reader,
)
from ser_ray.errors import unreadable_reason

BLOCK_HEAD = re.compile(
    r"^\[(\d+\.\d+) - (\d+\.\d+)\]\t(?P<utterance>\S+)\t(?P<label>\w{3})\t"
    r"\[(\d+\.\d+), (\d+\.\d+), (\d+\.\d+)\]$",
    re.MULTILINE,
)
SESSION_FOLDER = re.compile(r"^Session([1-5])$")


@register_reader
class IemocapReader(CorpusReader):
    name = "iemocap"
    file_pattern = re.compile(
        r"^Ses(?P<session>0[1-5])(?P<dialog_gender>[FM])_"
        r"(?P<dialog>impro\d{2}[ab]?|script\d{2}_\d[ab]?)_(?P<gender>[FM])(?P<turn>\d{3})\.wav$"
    )
    example_name = "Ses01F_impro01_M003.wav"
    label_map = {
        "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry",
        "fru": "frustrated", "sur": "surprise", "fea": "fear", "dis": "disgust",
        "oth": "other", "xxx": "unknown",
    }
    known_non_utterances = (
        (
            re.compile(r"^Ses0[1-5][FM]_(impro\d{2}[ab]?|script\d{2}_\d[ab]?)\.wav$"),
            "not_utterance",
            "whole-dialog recording (dialog/wav), not a single turn",
        ),
    )

    def __init__(self, root: Path, files: Sequence[Path]) -> None:
        super().__init__(root, files)
        # Only the top level of EmoEvaluation: its Categorical/, Attribute/ and
        # Self-evaluation/ sub-folders hold single evaluators' labels, not the consensus.
        label_files = [
            path for path in files
            if path.parent.name == "EmoEvaluation" and path.suffix == ".txt"
        ]
        for label_file in label_files:
            self.read_label_file(label_file)
        if not label_files:
            self.notes.append(
                "no SessionN/dialog/EmoEvaluation/*.txt label files found: every turn is "
                "skipped as unlabelled"
            )

    def read_label_file(self, label_file: Path) -> None:
        try:
            text = label_file.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            self.notes.append(
                f"label file {label_file}: {unreadable_reason(label_file, error)}; "
                "its turns are skipped as unlabelled"
            )
            return
        for match in BLOCK_HEAD.finditer(text):
            utterance_id = match["utterance"]
            self.labelled.setdefault(utterance_id, LabelledUtterance(
                utterance_id=utterance_id,
                raw_label=match["label"],
                label_file=label_file,
                audio_path=turn_audio_path(label_file, utterance_id),
            ))

    def parse(self, path: Path, match: re.Match[str]) -> NameFields:
        utterance_id = path.stem
        session_number = int(match["session"])
        folder_session = next(
            (int(m[1]) for part in path.parts if (m := SESSION_FOLDER.match(part))), None
        )
        if folder_session is not None and folder_session != session_number:
            raise SkipFile(
                "mislabelled",
                f"file is named for Session{session_number} but lies in Session{folder_session}",
            )
        labelled = self.labelled.get(utterance_id)
        if labelled is None:
            raise SkipFile(
                "no_label",
                f"no label line for {utterance_id} in Session{session_number}/dialog/"
                f"EmoEvaluation/{dialog_of(utterance_id)}.txt",
            )
        return NameFields(
            utterance_id=utterance_id,
            speaker=f"{match['session']}{match['gender']}",
            raw_label=labelled.raw_label,
            gender=match["gender"],
            session=f"Session{session_number}",
            improvised=match["dialog"].startswith("impro"),
        )


def dialog_of(utterance_id: str) -> str:
    return utterance_id.rsplit("_", 1)[0]


def turn_audio_path(label_file: Path, utterance_id: str) -> Path:
    """`SessionN/sentences/wav/<dialog>/<turn>.wav` for a turn of
    `SessionN/dialog/EmoEvaluation/<dialog>.txt`."""
    session_folder = label_file.parent.parent.parent
    return session_folder / "sentences" / "wav" / dialog_of(utterance_id) / f"{utterance_id}.wav"
