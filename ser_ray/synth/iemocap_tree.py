"""Write a synthetic corpus in exactly the IEMOCAP layout, so the real reader reads it.

Layout (IEMOCAP release 1):
    SessionN/sentences/wav/<dialog>/<utterance>.wav
    SessionN/dialog/EmoEvaluation/<dialog>.txt               consensus labels, one block per turn
    SessionN/dialog/EmoEvaluation/Categorical/<dialog>_e2_cat.txt   one evaluator's labels

The name traps of the real corpus are reproduced on purpose: the speaker's gender letter
differs from the dialog's letter in about half the turns, dialog tokens such as `impro05a`
and `script01_1b` shift character positions, and the Categorical folder holds label lines
that disagree with the consensus (a reader that recurses into it gets wrong labels).

Every random choice comes from a `SeedSequence` keyed by (seed, stream, session, ...), so a
seed gives byte-identical files whatever the order of generation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from ser_ray.errors import UserError
from ser_ray.synth.voice import (
    EMOTION_STYLES,
    GAIN_JITTER_DB,
    EmotionStyle,
    Gender,
    SpeakerVoice,
    blend,
    synthesize,
)

LABEL_CODES = ("neu", "hap", "exc", "ang", "sad", "fru", "xxx")
AMBIGUOUS_LABEL = "xxx"
STYLE_OF_LABEL = {
    "neu": "neutral", "hap": "happy", "exc": "excited",
    "ang": "angry", "sad": "sad", "fru": "frustrated",
}
DEFAULT_LABEL_PROPORTIONS: Mapping[str, float] = {
    "neu": 0.28, "hap": 0.12, "exc": 0.14, "ang": 0.16, "sad": 0.16, "fru": 0.08, "xxx": 0.06,
}
# The usual 4-class IEMOCAP view; each group must occur in every session so that
# leave-one-session-out never tests on a class it did not train on (or vice versa).
FOUR_CLASS_GROUPS: tuple[tuple[str, ...], ...] = (("ang",), ("hap", "exc"), ("neu",), ("sad",))
# The presets at full strength already leave leave-one-session-out log-Mel + logistic
# regression at a UA of about 0.86 on the default corpus (0.59 at strength 0.5, 0.40 at 0.2;
# angry/happy and neutral/sad confuse, as in real acted speech): learnable, far from trivial.
# See tests/test_synth.py.
DEFAULT_STRENGTH = 1.0
# Raised whenever the same SynthConfig and seed start to give other audio, so corpora cached
# under a configuration's hash are generated again.
SYNTH_CODE_VERSION = 2

EVALUATOR_CATEGORY = {
    "neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger",
    "sad": "Sadness", "fru": "Frustration",
}
# The categories evaluators confuse a label with, for the minority votes.
CONFUSABLE = {
    "neu": ("Frustration", "Sadness"), "hap": ("Excited", "Neutral"),
    "exc": ("Happiness", "Surprise"), "ang": ("Frustration", "Other"),
    "sad": ("Neutral", "Frustration"), "fru": ("Anger", "Neutral"),
}
# Centres of the valence / activation / dominance ratings (1-5) per label.
VAD_CENTRE = {
    "neu": (3.0, 2.5, 2.5), "hap": (4.0, 3.0, 3.0), "exc": (4.0, 3.5, 3.5),
    "ang": (1.5, 3.5, 4.0), "sad": (2.0, 2.0, 2.0), "fru": (2.0, 3.0, 3.0),
    "xxx": (2.5, 3.0, 3.0),
}
EMO_EVALUATION_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"

IMPRO_TOKENS = (
    "impro01", "impro05a", "impro02", "impro03", "impro04",
    "impro05b", "impro06", "impro07", "impro08",
)
SCRIPT_TOKENS = (
    "script01_1", "script01_1b", "script01_2", "script01_3",
    "script02_1", "script02_2", "script03_1", "script03_2",
)
TURNS_PER_DIALOG = 12
# Enough dialogs that both kinds, both dialog letters and the a/b tokens occur per session.
MIN_DIALOGS = 4
MAX_DIALOGS = 2 * 2 * min(len(IMPRO_TOKENS), len(SCRIPT_TOKENS))

# Independent random streams, the second key of every SeedSequence.
VOICE_STREAM, PLAN_STREAM, ANNOTATION_STREAM, AUDIO_STREAM = range(4)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. A session has one female and one male actor, as in IEMOCAP; with
    speakers_per_session=1 odd sessions keep the female and even ones the male actor."""

    seed: int = 0
    sessions: int = 5
    speakers_per_session: int = 2
    utterances_per_speaker: int = 50
    strength: float = DEFAULT_STRENGTH
    sample_rate: int = 16000
    snr_db: float = 30.0
    gain_jitter_db: float = GAIN_JITTER_DB
    min_duration_s: float = 2.0
    max_duration_s: float = 7.0
    label_proportions: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_LABEL_PROPORTIONS)
    )

    def __post_init__(self) -> None:
        require(1 <= self.sessions <= 5, "sessions", "1 to 5 (IEMOCAP has five sessions)")
        require(
            self.speakers_per_session in (1, 2),
            "speakers_per_session",
            "1 or 2 (an IEMOCAP speaker is a session's female or male actor)",
        )
        require(
            self.speakers_per_session * self.utterances_per_speaker >= len(FOUR_CLASS_GROUPS),
            "utterances_per_speaker",
            f"at least {len(FOUR_CLASS_GROUPS)} turns per session in all "
            "(every 4-class label must occur in every session)",
        )
        require(0.0 <= self.strength <= 1.0, "strength", "0 to 1")
        require(self.sample_rate >= 8000, "sample_rate", "8000 Hz or more")
        require(
            0.0 < self.min_duration_s <= self.max_duration_s,
            "min_duration_s/max_duration_s",
            "0 < min_duration_s <= max_duration_s",
        )
        unknown = sorted(set(self.label_proportions) - set(LABEL_CODES))
        require(not unknown, "label_proportions", f"codes among {', '.join(LABEL_CODES)}")
        require(
            all(weight >= 0 for weight in self.label_proportions.values())
            and sum(self.label_proportions.values()) > 0,
            "label_proportions",
            "non-negative weights with a positive sum",
        )


def require(condition: bool, field_name: str, allowed: str) -> None:
    if not condition:
        raise UserError(f"synthetic corpus: invalid {field_name}; allowed: {allowed}")


@dataclass(frozen=True)
class SynthRecord:
    utterance_id: str
    path: Path
    raw_label: str
    session: int
    gender: Gender
    duration_s: float


@dataclass
class SynthSummary:
    out_dir: Path
    records: list[SynthRecord]
    label_counts: dict[str, int]


@dataclass(frozen=True)
class PlannedTurn:
    """One turn as the plan fixes it before any audio exists (the labels file needs it all)."""

    utterance_id: str
    dialog: str
    session: int
    gender: Gender
    speaker_index: int
    speaker_turn: int
    raw_label: str
    n_samples: int
    start_s: float
    end_s: float
    # For ambiguous turns: the two styles mixed and the weight of the second.
    blend_of: tuple[str, str, float] | None


def write_synthetic_iemocap(
    out_dir: Path, config: SynthConfig, progress: bool = False
) -> SynthSummary:
    """Generate every session's audio and label files under out_dir."""
    out_dir = Path(out_dir)
    plans = [plan_session(config, session) for session in range(1, config.sessions + 1)]
    records: list[SynthRecord] = []
    with tqdm(total=sum(map(len, plans)), desc="synthetic IEMOCAP", disable=not progress) as bar:
        for session, turns in enumerate(plans, start=1):
            voices = session_voices(config, session)
            write_label_files(out_dir, config, session, turns)
            for turn in turns:
                records.append(write_turn_audio(out_dir, config, turn, voices[turn.speaker_index]))
                bar.update()
    return SynthSummary(
        out_dir=out_dir,
        records=records,
        label_counts=dict(Counter(record.raw_label for record in records)),
    )


def session_genders(config: SynthConfig, session: int) -> list[Gender]:
    if config.speakers_per_session == 2:
        return ["F", "M"]
    return ["F" if session % 2 else "M"]


def session_voices(config: SynthConfig, session: int) -> list[SpeakerVoice]:
    return [
        SpeakerVoice.sample(stream(config.seed, VOICE_STREAM, session, index), gender)
        for index, gender in enumerate(session_genders(config, session))
    ]


def stream(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(keys)))


def plan_session(config: SynthConfig, session: int) -> list[PlannedTurn]:
    """Turns alternate between the session's actors across dialogs, so each actor gets exactly
    utterances_per_speaker turns; labels are a shuffled quota, not independent draws, so small
    sessions still hold every 4-class label."""
    rng = stream(config.seed, PLAN_STREAM, session)
    genders = session_genders(config, session)
    n_turns = len(genders) * config.utterances_per_speaker
    labels = list(label_quota(config.label_proportions, n_turns))
    rng.shuffle(labels)
    wanted_dialogs = math.ceil(n_turns / TURNS_PER_DIALOG)
    n_dialogs = min(n_turns, max(MIN_DIALOGS, min(MAX_DIALOGS, wanted_dialogs)))
    turns: list[PlannedTurn] = []
    for dialog, turn_numbers in zip(
        dialog_names(session, n_dialogs), np.array_split(np.arange(n_turns), n_dialogs)
    ):
        per_gender_index: Counter[str] = Counter()
        time_s = rng.uniform(1.0, 7.0)
        for turn_number in map(int, turn_numbers):
            speaker_index = turn_number % len(genders)
            gender = genders[speaker_index]
            duration_s = rng.uniform(config.min_duration_s, config.max_duration_s)
            n_samples = max(1, round(duration_s * config.sample_rate))
            end_s = time_s + n_samples / config.sample_rate
            label = labels[turn_number]
            turns.append(
                PlannedTurn(
                    utterance_id=f"{dialog}_{gender}{per_gender_index[gender]:03d}",
                    dialog=dialog,
                    session=session,
                    gender=gender,
                    speaker_index=speaker_index,
                    speaker_turn=turn_number // len(genders),
                    raw_label=label,
                    n_samples=n_samples,
                    start_s=time_s,
                    end_s=end_s,
                    blend_of=ambiguous_blend(rng) if label == AMBIGUOUS_LABEL else None,
                )
            )
            per_gender_index[gender] += 1
            time_s = end_s + rng.uniform(0.2, 1.5)
    return turns


def dialog_names(session: int, n_dialogs: int) -> list[str]:
    """Impro and script dialogs alternate; within each kind the dialog letter alternates
    along the tokens on the first pass and flips on the second, so no name repeats."""
    by_kind = [
        [
            (token, "FM"[(index + lap) % 2])
            for lap in range(2)
            for index, token in enumerate(tokens)
        ]
        for tokens in (IMPRO_TOKENS, SCRIPT_TOKENS)
    ]
    names = []
    for dialog_index in range(n_dialogs):
        token, letter = by_kind[dialog_index % 2][dialog_index // 2]
        names.append(f"Ses{session:02d}{letter}_{token}")
    return names


def label_quota(proportions: Mapping[str, float], n_turns: int) -> list[str]:
    """n_turns labels in the given proportions (largest remainder), topped up so every
    4-class group with a positive weight occurs at least once."""
    total = sum(proportions.values())
    exact = {code: n_turns * weight / total for code, weight in proportions.items()}
    counts = {code: math.floor(value) for code, value in exact.items()}
    by_remainder = sorted(exact, key=lambda code: counts[code] - exact[code])
    for code in by_remainder[: n_turns - sum(counts.values())]:
        counts[code] += 1
    for group in FOUR_CLASS_GROUPS:
        if sum(proportions.get(code, 0.0) for code in group) > 0 and not any(
            counts.get(code, 0) for code in group
        ):
            counts[donor_label(counts)] -= 1
            counts[max(group, key=lambda code: proportions.get(code, 0.0))] += 1
    return [code for code in LABEL_CODES for _ in range(counts.get(code, 0))]


def donor_label(counts: Mapping[str, int]) -> str:
    """The most frequent label that can give up a turn without emptying its 4-class group."""
    def can_give(code: str) -> bool:
        group = next((g for g in FOUR_CLASS_GROUPS if code in g), None)
        return counts[code] > 0 and (group is None or sum(counts.get(c, 0) for c in group) > 1)

    return max((code for code in counts if can_give(code)), key=counts.__getitem__)


def ambiguous_blend(rng: np.random.Generator) -> tuple[str, str, float]:
    first, second = rng.choice(sorted(EMOTION_STYLES), size=2, replace=False)
    return str(first), str(second), float(rng.uniform(0.35, 0.65))


def turn_style(turn: PlannedTurn) -> EmotionStyle:
    if turn.blend_of is None:
        return EMOTION_STYLES[STYLE_OF_LABEL[turn.raw_label]]
    first, second, weight = turn.blend_of
    return blend(EMOTION_STYLES[first], EMOTION_STYLES[second], weight)


def write_turn_audio(
    out_dir: Path, config: SynthConfig, turn: PlannedTurn, voice: SpeakerVoice
) -> SynthRecord:
    rng = stream(config.seed, AUDIO_STREAM, turn.session, turn.speaker_index, turn.speaker_turn)
    audio = synthesize(
        turn_style(turn),
        voice,
        turn.n_samples / config.sample_rate,
        rng,
        sample_rate=config.sample_rate,
        strength=config.strength,
        snr_db=config.snr_db,
        gain_jitter_db=config.gain_jitter_db,
    )
    path = out_dir / f"Session{turn.session}" / "sentences" / "wav" / turn.dialog
    path.mkdir(parents=True, exist_ok=True)
    path = path / f"{turn.utterance_id}.wav"
    soundfile.write(path, audio, config.sample_rate, subtype="PCM_16")
    return SynthRecord(
        utterance_id=turn.utterance_id,
        path=path,
        raw_label=turn.raw_label,
        session=turn.session,
        gender=turn.gender,
        duration_s=turn.n_samples / config.sample_rate,
    )


def write_label_files(
    out_dir: Path, config: SynthConfig, session: int, turns: Sequence[PlannedTurn]
) -> None:
    """The consensus file per dialog plus the disagreeing single-evaluator decoy."""
    rng = stream(config.seed, ANNOTATION_STREAM, session)
    evaluation_dir = out_dir / f"Session{session}" / "dialog" / "EmoEvaluation"
    decoy_dir = evaluation_dir / "Categorical"
    decoy_dir.mkdir(parents=True, exist_ok=True)
    for dialog in dict.fromkeys(turn.dialog for turn in turns):
        dialog_turns = [turn for turn in turns if turn.dialog == dialog]
        blocks = [evaluation_block(turn, rng) for turn in dialog_turns]
        (evaluation_dir / f"{dialog}.txt").write_text(
            EMO_EVALUATION_HEADER + "\n\n" + "\n".join(blocks), encoding="utf-8"
        )
        decoy_lines = [
            block_head(turn, decoy_label(turn.raw_label), VAD_CENTRE[turn.raw_label])
            for turn in dialog_turns
        ]
        (decoy_dir / f"{dialog}_e2_cat.txt").write_text(
            "\n".join(decoy_lines) + "\n", encoding="utf-8"
        )


def decoy_label(label: str) -> str:
    return LABEL_CODES[(LABEL_CODES.index(label) + 1) % len(LABEL_CODES)]


def block_head(turn: PlannedTurn, label: str, vad: Sequence[float]) -> str:
    ratings = ", ".join(f"{value:.4f}" for value in vad)
    return f"[{turn.start_s:.4f} - {turn.end_s:.4f}]\t{turn.utterance_id}\t{label}\t[{ratings}]"


def evaluation_block(turn: PlannedTurn, rng: np.random.Generator) -> str:
    """Head line, three categorical and two or three dimensional evaluators, blank line.

    The head's V/A/D are the means of the dimensional evaluators, as in IEMOCAP.
    """
    categories = evaluator_categories(turn, rng)
    lines = [f"C-E{index}:\t{category};\t()" for index, category in enumerate(categories, 1)]
    n_raters = int(rng.integers(2, 4))
    centre = np.array(VAD_CENTRE[turn.raw_label])
    ratings = np.clip(np.rint(centre + rng.normal(0.0, 0.7, (n_raters, 3))), 1, 5).astype(int)
    lines += [
        f"A-E{index}:\tval {val}; act {act}; dom  {dom};\t()"
        for index, (val, act, dom) in enumerate(ratings, 1)
    ]
    return "\n".join([block_head(turn, turn.raw_label, ratings.mean(axis=0)), *lines]) + "\n"


def evaluator_categories(turn: PlannedTurn, rng: np.random.Generator) -> list[str]:
    """A majority for the consensus label; no two alike for an ambiguous turn."""
    if turn.blend_of is not None:
        first, second, _ = turn.blend_of
        by_style = {style: code for code, style in STYLE_OF_LABEL.items()}
        return [EVALUATOR_CATEGORY[by_style[first]], EVALUATOR_CATEGORY[by_style[second]], "Other"]
    agreeing = EVALUATOR_CATEGORY[turn.raw_label]
    dissent = str(rng.choice(CONFUSABLE[turn.raw_label])) if rng.random() < 0.5 else agreeing
    categories = [agreeing, agreeing, dissent]
    rng.shuffle(categories)
    return categories
