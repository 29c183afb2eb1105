"""Offline synthetic emotional speech, written as an IEMOCAP-shaped tree.

It lets every stage (scan, features, training, ablations) run end to end without a licensed
corpus, on classes that differ in the cues real emotional speech carries.
"""

from ser_ray.synth.iemocap_tree import (
    DEFAULT_LABEL_PROPORTIONS,
    DEFAULT_STRENGTH,
    SYNTH_CODE_VERSION,
    SynthConfig,
    SynthRecord,
    SynthSummary,
    write_synthetic_iemocap,
)
from ser_ray.synth.voice import EMOTION_STYLES, EmotionStyle, SpeakerVoice, blend, synthesize

__all__ = [
    "DEFAULT_LABEL_PROPORTIONS",
    "DEFAULT_STRENGTH",
    "EMOTION_STYLES",
    "SYNTH_CODE_VERSION",
    "EmotionStyle",
    "SpeakerVoice",
    "SynthConfig",
    "SynthRecord",
    "SynthSummary",
    "blend",
    "synthesize",
    "write_synthetic_iemocap",
]
