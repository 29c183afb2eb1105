"""A source-filter speech-like synthesizer whose emotions differ the way acted speech does.

Nothing here is meant to sound human. The point is a corpus whose classes differ in the
acoustic cues that real emotional speech is known to carry (pitch level and range, tempo,
vocal effort, voice quality, spectral tilt), generated offline, fast and deterministically, so
the whole pipeline can be exercised without a licensed corpus.

The absolute level is no such cue: every utterance is brought to one active-speech level and
then given a random gain drawn independently of its emotion, as if each recording had been
levelled by someone who did not know the label. Vocal effort stays audible the way it does in
a levelled recording: a flatter spectral tilt, a raised first formant (a wider jaw opening) and
consonants that are weaker relative to the vowels.

Signal chain of one utterance: a syllable timeline (CV syllables in phrases) -> an F0 contour
-> a Rosenberg glottal pulse train (jitter, shimmer, aspiration, lip radiation, spectral tilt)
-> four cascaded formant resonators updated every block -> fricative/burst noise at syllable
onsets -> normalised level, background noise at a given SNR, random gain, peak guard.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import signal

Gender = Literal["F", "M"]

# Vowel targets (F1, F2, F3 in Hz) of an adult male voice, after Peterson & Barney (1952);
# F4 is nearly constant across vowels.
VOWEL_FORMANTS_HZ: dict[str, tuple[float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0),
    "e": (530.0, 1840.0, 2480.0),
    "a": (730.0, 1090.0, 2440.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
    "schwa": (500.0, 1500.0, 2500.0),
}
F4_HZ = 3500.0
FORMANT_BANDWIDTHS_HZ = np.array([80.0, 100.0, 140.0, 250.0])
# Coefficients change per block; shorter blocks cost a filter call each for no audible gain.
FORMANT_UPDATE_S = 0.015
# Resolution of the F0 contour, envelopes and jitter.
CONTROL_FRAME_S = 0.005

# Noise bands (Hz) of the consonants at syllable onsets: /s/, /sh/, /f/-like, stop burst.
CONSONANT_BANDS_HZ: tuple[tuple[float, float], ...] = (
    (4000.0, 7500.0),
    (2000.0, 5000.0),
    (1000.0, 7000.0),
    (500.0, 5000.0),
)
CONSONANT_LEVEL = 0.25
# Effort raises vowels more than consonants: consonants follow this share of its dB.
CONSONANT_EFFORT_SHARE = 0.75
# F1 rises with effort as the jaw opens wider: +9 % for angry's +6 dB.
F1_RISE_PER_EFFORT_DB = 0.015
SYLLABLES_PER_S = 4.5
# The active-speech level every utterance is normalised to (-32 dBFS), and the spread of the
# random gain after it. The spread (5.8 dB standard deviation) swamps the few dB by which the
# emotions' crest factors differ, so not even the peak level gives the emotion away; the
# reference leaves room for the largest gain plus a 20 dB crest below full scale.
REFERENCE_RMS = 0.025
GAIN_JITTER_DB = 10.0

# Per-utterance variability that no emotion controls: one actor never says two lines alike.
NATURAL_F0_SHIFT_SD_ST = 1.0
NATURAL_F0_RANGE_SD = 0.25
NATURAL_TEMPO_SD = 0.08
NATURAL_EFFORT_SD_DB = 1.0
NATURAL_TILT_SD = 0.05


@dataclass(frozen=True)
class EmotionStyle:
    """How an emotion shifts the voice; every field interpolates linearly (see `blend`).

    effort_db is vocal effort as the level change it would cause in an unlevelled recording;
    it acts only through its spectral signs (see the module docstring). jitter and shimmer are
    relative standard deviations (0.01 = 1 %); tilt runs from 0 (steep, soft voice) to 1 (flat,
    pressed voice); breath is aspiration noise relative to the voiced source.
    """

    f0_shift_st: float
    f0_range: float
    tempo: float
    effort_db: float
    jitter: float
    shimmer: float
    tilt: float
    breath: float


EMOTION_STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(0.0, 1.0, 1.00, 0.0, 0.005, 0.03, 0.50, 0.02),
    "angry": EmotionStyle(3.0, 1.4, 1.12, 6.0, 0.010, 0.06, 0.85, 0.01),
    "happy": EmotionStyle(5.0, 1.8, 1.08, 3.0, 0.006, 0.04, 0.65, 0.02),
    "sad": EmotionStyle(-3.0, 0.5, 0.78, -5.0, 0.008, 0.04, 0.25, 0.06),
    "excited": EmotionStyle(6.5, 2.1, 1.15, 5.0, 0.007, 0.05, 0.75, 0.02),
    "frustrated": EmotionStyle(0.5, 0.9, 0.95, 2.0, 0.009, 0.05, 0.60, 0.04),
}


def blend(a: EmotionStyle, b: EmotionStyle, weight: float) -> EmotionStyle:
    """The style `weight` of the way from a to b: an ambiguous turn, or a weakened emotion."""
    return EmotionStyle(
        **{
            field.name: (1.0 - weight) * getattr(a, field.name) + weight * getattr(b, field.name)
            for field in fields(EmotionStyle)
        }
    )


@dataclass(frozen=True)
class SpeakerVoice:
    """One actor: pitch, vocal-tract length (as a formant scale) and voice-quality offsets."""

    gender: Gender
    f0_base_hz: float
    formant_scale: float
    tilt_offset: float
    breath_offset: float

    @classmethod
    def sample(cls, rng: np.random.Generator, gender: Gender) -> SpeakerVoice:
        f0_low, f0_high = (180.0, 230.0) if gender == "F" else (95.0, 130.0)
        scale_low, scale_high = (1.08, 1.18) if gender == "F" else (0.92, 1.02)
        return cls(
            gender=gender,
            f0_base_hz=float(rng.uniform(f0_low, f0_high)),
            formant_scale=float(rng.uniform(scale_low, scale_high)),
            tilt_offset=float(rng.uniform(-0.08, 0.08)),
            breath_offset=float(rng.uniform(-0.005, 0.01)),
        )


@dataclass(frozen=True)
class Syllable:
    """Times in seconds from the utterance start; `consonant` indexes CONSONANT_BANDS_HZ
    (None: the syllable is a bare vowel)."""

    onset_s: float
    vowel_start_s: float
    end_s: float
    consonant: int | None
    vowel: str
    accent_st: float
    level_db: float


@dataclass(frozen=True)
class Timeline:
    syllables: list[Syllable]
    phrase_spans_s: list[tuple[float, float]]


def synthesize(
    style: EmotionStyle,
    speaker: SpeakerVoice,
    duration_s: float,
    rng: np.random.Generator,
    *,
    sample_rate: int = 16000,
    strength: float = 1.0,
    snr_db: float = 30.0,
    gain_jitter_db: float = GAIN_JITTER_DB,
) -> np.ndarray:
    """One utterance of `duration_s` seconds as float32 mono in [-1, 1].

    `strength` 0 speaks neutrally, 1 with the full style. The speech is levelled to
    REFERENCE_RMS and then given a random gain (uniform within +-gain_jitter_db) that ignores
    the style, so loudness alone cannot give the emotion away.
    """
    n_samples = max(1, round(duration_s * sample_rate))
    style = vary_naturally(blend(EMOTION_STYLES["neutral"], style, strength), rng)
    speech, voicing = speak(style, speaker, n_samples, sample_rate, rng)
    speech *= REFERENCE_RMS / max(active_rms(speech, voicing), 1e-12)
    noise_rms = active_rms(speech, voicing) * 10.0 ** (-snr_db / 20.0)
    speech += noise_rms * rng.standard_normal(n_samples)
    speech *= 10.0 ** (rng.uniform(-gain_jitter_db, gain_jitter_db) / 20.0)
    peak = float(np.max(np.abs(speech)))
    if peak > 0.99:
        speech *= 0.99 / peak
    return speech.astype(np.float32)


def speak(
    style: EmotionStyle,
    speaker: SpeakerVoice,
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Clean speech at an arbitrary level, and its voicing envelope per sample."""
    duration_s = n_samples / sample_rate
    tilt = float(np.clip(style.tilt + speaker.tilt_offset, 0.0, 1.0))
    breath = max(0.0, style.breath + speaker.breath_offset)
    timeline = plan_syllables(duration_s, style, rng)
    frame_times = np.arange(int(np.ceil(duration_s / CONTROL_FRAME_S)) + 1) * CONTROL_FRAME_S
    sample_times = np.arange(n_samples) / sample_rate
    voicing = np.interp(sample_times, frame_times, vowel_envelope(frame_times, timeline))
    f0_hz = f0_contour(frame_times, sample_times, timeline, style, speaker, rng)
    source = glottal_source(f0_hz, sample_rate, style, tilt, breath, rng) * voicing
    formants_hz = formant_tracks(timeline, speaker, style.effort_db, n_samples, sample_rate)
    voiced = vocal_tract(source, formants_hz, sample_rate)
    consonants = consonant_noise(timeline, n_samples, sample_rate, rng)
    consonant_db = -(1.0 - CONSONANT_EFFORT_SHARE) * style.effort_db
    consonant_rms = CONSONANT_LEVEL * 10.0 ** (consonant_db / 20.0) * active_rms(voiced, voicing)
    return voiced + consonant_rms * consonants, voicing


def vary_naturally(style: EmotionStyle, rng: np.random.Generator) -> EmotionStyle:
    """Perturb one utterance's prosody and voice quality whatever the emotion's strength."""
    return replace(
        style,
        f0_shift_st=style.f0_shift_st + rng.normal(0.0, NATURAL_F0_SHIFT_SD_ST),
        f0_range=style.f0_range * float(np.exp(rng.normal(0.0, NATURAL_F0_RANGE_SD))),
        tempo=style.tempo * float(np.exp(rng.normal(0.0, NATURAL_TEMPO_SD))),
        effort_db=style.effort_db + rng.normal(0.0, NATURAL_EFFORT_SD_DB),
        tilt=style.tilt + rng.normal(0.0, NATURAL_TILT_SD),
    )


def plan_syllables(duration_s: float, style: EmotionStyle, rng: np.random.Generator) -> Timeline:
    """CV syllables grouped into phrases with pauses between them, filling the utterance.

    The lead-in and tail silences are capped at a tenth of the utterance so even a very short
    one holds at least one syllable.
    """
    lead_s = min(rng.uniform(0.08, 0.25), 0.1 * duration_s)
    speech_end_s = duration_s - min(rng.uniform(0.05, 0.2), 0.1 * duration_s)
    mean_syllable_s = 1.0 / (SYLLABLES_PER_S * style.tempo)
    vowels = list(VOWEL_FORMANTS_HZ)
    syllables: list[Syllable] = []
    phrase_spans: list[tuple[float, float]] = []
    time_s = lead_s
    filled = False
    while not filled and time_s < speech_end_s:
        phrase_start_s = time_s
        for position in range(int(rng.integers(3, 10))):
            length_s = mean_syllable_s * rng.uniform(0.75, 1.25)
            if syllables and time_s + length_s > speech_end_s:
                filled = True
                break
            syllables.append(random_syllable(time_s, length_s, position, vowels, rng))
            time_s += length_s
        if time_s > phrase_start_s:
            phrase_spans.append((phrase_start_s, time_s))
        time_s += rng.uniform(0.15, 0.45) / style.tempo
    return Timeline(syllables, phrase_spans)


def random_syllable(
    onset_s: float, length_s: float, position: int, vowels: list[str], rng: np.random.Generator
) -> Syllable:
    """A syllable; 15 % have no consonant and phrase-initial ones are accented more often."""
    has_consonant = rng.random() < 0.85
    consonant_s = length_s * rng.uniform(0.25, 0.4) if has_consonant else 0.0
    accent_chance = 0.6 if position == 0 else 0.3
    return Syllable(
        onset_s=onset_s,
        vowel_start_s=onset_s + consonant_s,
        end_s=onset_s + length_s,
        consonant=int(rng.integers(len(CONSONANT_BANDS_HZ))) if has_consonant else None,
        vowel=vowels[int(rng.integers(len(vowels)))],
        accent_st=abs(rng.normal(2.5, 1.0)) if rng.random() < accent_chance else 0.0,
        level_db=rng.normal(0.0, 1.5),
    )


def vowel_envelope(frame_times: np.ndarray, timeline: Timeline) -> np.ndarray:
    """Voicing amplitude per control frame: raised-cosine ramps so vowels start without clicks."""
    envelope = np.zeros_like(frame_times)
    for syllable in timeline.syllables:
        ramp_s = min(0.02, 0.3 * (syllable.end_s - syllable.vowel_start_s))
        rise = np.clip((frame_times - syllable.vowel_start_s) / ramp_s, 0.0, 1.0)
        fall = np.clip((syllable.end_s - frame_times) / ramp_s, 0.0, 1.0)
        shape = 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))
        gain = 10.0 ** ((syllable.level_db + 0.8 * syllable.accent_st) / 20.0)
        envelope = np.maximum(envelope, gain * shape)
    return envelope


def f0_contour(
    frame_times: np.ndarray,
    sample_times: np.ndarray,
    timeline: Timeline,
    style: EmotionStyle,
    speaker: SpeakerVoice,
    rng: np.random.Generator,
) -> np.ndarray:
    """F0 per sample: level + per-phrase declination + pitch accents, all excursions scaled by
    the style's range; jitter is a per-frame perturbation on top."""
    semitones = np.full_like(frame_times, style.f0_shift_st)
    for start_s, end_s in timeline.phrase_spans_s:
        inside = (frame_times >= start_s) & (frame_times < end_s)
        progress = (frame_times[inside] - start_s) / max(end_s - start_s, 1e-3)
        # Each phrase starts high and falls 2.5 semitones (times the range) by its end.
        semitones[inside] += style.f0_range * (1.0 - 2.5 * progress)
    for syllable in timeline.syllables:
        if syllable.accent_st:
            centre_s = 0.5 * (syllable.vowel_start_s + syllable.end_s)
            width_s = 0.4 * (syllable.end_s - syllable.onset_s)
            bump = np.exp(-0.5 * ((frame_times - centre_s) / width_s) ** 2)
            semitones += style.f0_range * syllable.accent_st * bump
    f0_frames = speaker.f0_base_hz * 2.0 ** (semitones / 12.0)
    jitter = 1.0 + style.jitter * rng.standard_normal(frame_times.size)
    frame_index = (sample_times / CONTROL_FRAME_S).astype(np.int64)
    return np.interp(sample_times, frame_times, f0_frames) * jitter[frame_index]


def glottal_source(
    f0_hz: np.ndarray,
    sample_rate: int,
    style: EmotionStyle,
    tilt: float,
    breath: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rosenberg pulses -> lip radiation (differentiation) -> tilt low-pass, plus aspiration.

    Tilt acts twice, as in real voices: a pressed voice closes the glottis abruptly (short
    closing phase, strong harmonics) and a soft one gently (long closing phase) with a
    further roll-off.
    """
    phase = np.cumsum(f0_hz / sample_rate)
    cycle = phase.astype(np.int64)
    within = phase - cycle
    opening = 0.4
    closing = 0.08 + 0.3 * (1.0 - tilt)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.minimum(within / opening, 1.0))
    fall = np.cos(0.5 * np.pi * np.clip((within - opening) / closing, 0.0, 1.0))
    cycle_amplitude = 1.0 + style.shimmer * rng.standard_normal(cycle[-1] + 1)
    flow = rise * fall * cycle_amplitude[cycle]
    radiated = np.diff(flow, prepend=flow[0])
    radiated /= max(float(np.sqrt(np.mean(radiated**2))), 1e-12)
    aspiration = breath * rng.standard_normal(f0_hz.size) * (0.3 + flow)
    cutoff_hz = min(250.0 * 40.0**tilt, 0.45 * sample_rate)
    pole = np.exp(-2.0 * np.pi * cutoff_hz / sample_rate)
    return signal.lfilter([1.0 - pole], [1.0, -pole], radiated + aspiration)


def formant_tracks(
    timeline: Timeline, speaker: SpeakerVoice, effort_db: float, n_samples: int, sample_rate: int
) -> np.ndarray:
    """F1-F4 per filter block, gliding between the vowel targets (coarticulation for free),
    F1 raised by the vocal effort."""
    hop = max(1, round(FORMANT_UPDATE_S * sample_rate))
    block_times = (np.arange(0, n_samples, hop) + 0.5 * hop) / sample_rate
    centres = [0.5 * (s.vowel_start_s + s.end_s) for s in timeline.syllables]
    targets = np.array([(*VOWEL_FORMANTS_HZ[s.vowel], F4_HZ) for s in timeline.syllables])
    tracks = np.stack(
        [np.interp(block_times, centres, targets[:, k]) for k in range(4)], axis=1
    )
    tracks[:, 0] *= 1.0 + F1_RISE_PER_EFFORT_DB * effort_db
    return np.minimum(tracks * speaker.formant_scale, 0.45 * sample_rate)


def vocal_tract(source: np.ndarray, formants_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Four cascaded two-pole resonators with unity DC gain, retuned every block.

    The filter state is carried from block to block, so the retuning glides instead of
    restarting the resonators.
    """
    hop = max(1, round(FORMANT_UPDATE_S * sample_rate))
    radius = np.exp(-np.pi * FORMANT_BANDWIDTHS_HZ / sample_rate)
    a1 = -2.0 * radius * np.cos(2.0 * np.pi * formants_hz / sample_rate)
    a2 = np.broadcast_to(radius**2, a1.shape)
    sos = np.zeros(formants_hz.shape + (6,))
    sos[..., 0] = 1.0 + a1 + a2
    sos[..., 3] = 1.0
    sos[..., 4] = a1
    sos[..., 5] = a2
    output = np.empty_like(source)
    state = np.zeros((4, 2))
    for block, start in enumerate(range(0, source.size, hop)):
        output[start : start + hop], state = signal.sosfilt(
            sos[block], source[start : start + hop], zi=state
        )
    return output


@lru_cache(maxsize=16)
def consonant_filters(sample_rate: int) -> tuple[np.ndarray, ...]:
    """Band-pass sections per consonant band, the bands clipped below Nyquist."""
    nyquist = 0.5 * sample_rate
    filters = []
    for low_hz, high_hz in CONSONANT_BANDS_HZ:
        high_hz = min(high_hz, 0.9 * nyquist)
        low_hz = min(low_hz, 0.5 * high_hz)
        filters.append(
            signal.butter(2, (low_hz, high_hz), btype="bandpass", fs=sample_rate, output="sos")
        )
    return tuple(filters)


def consonant_noise(
    timeline: Timeline, n_samples: int, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Band-passed noise bursts at syllable onsets, one filter pass per consonant band.

    Consonants never overlap in time, so all bands can share one noise draw.
    """
    noise = rng.standard_normal(n_samples)
    excitations = np.zeros((len(CONSONANT_BANDS_HZ), n_samples))
    for syllable in timeline.syllables:
        if syllable.consonant is None:
            continue
        start = round(syllable.onset_s * sample_rate)
        stop = min(round(syllable.vowel_start_s * sample_rate), n_samples)
        if stop > start:
            excitations[syllable.consonant, start:stop] = np.hanning(stop - start)
    output = np.zeros(n_samples)
    for sos, excitation in zip(consonant_filters(sample_rate), excitations):
        output += signal.sosfilt(sos, noise * excitation)
    return output


def active_rms(audio: np.ndarray, voicing: np.ndarray) -> float:
    """RMS over the voiced stretches only, so pauses and tempo do not move the level."""
    active = voicing > 0.5 * float(np.max(voicing, initial=0.0))
    if not np.any(active):
        return float(np.sqrt(np.mean(audio**2)))
    return float(np.sqrt(np.mean(audio[active] ** 2)))
