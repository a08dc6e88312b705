"""How a call sounds, per speaker and per call: talk speed (words per minute), loudness
(dBFS), non-talk time and the longest silence, and interruptions (who interrupted whom).

Pure functions over typed inputs: the sentences of a call with speaker, times, text and
(where the audio was at hand when they were transcribed) their loudness. The same
functions serve recorded and live calls (a live call's numbers are those of what is
stored so far) and the category rules (`nlp/categories.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

# A turn starting less than this after the other speaker began, or before they end, is
# turn-taking (or back-channel timing noise), not an interruption.
INTERRUPTION_MARGIN_S = 0.2


class Spoken(NamedTuple):
    """One stored sentence, as the characteristics and category rules need it."""

    speaker: str
    start: float
    end: float
    text: str
    sentiment: str | None = None
    loudness_dbfs: float | None = None


@dataclass(frozen=True)
class Interruption:
    at: float  # call time the interrupting sentence started
    by: str  # who started speaking
    of: str  # who was speaking
    position: int  # index of the interrupting sentence in time order


@dataclass(frozen=True)
class Silence:
    start: float
    end: float
    position: int | None  # index (time order) of the sentence that ends it; None: the call's end

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class SpeakerCharacteristics:
    speaker: str
    talk_s: float = 0.0
    words: int = 0
    sentences: int = 0
    loudness_dbfs: float | None = None  # energy mean over the sentences with a level
    interruptions: int = 0  # turns this speaker started over another
    interrupted: int = 0  # times another started over this speaker

    @property
    def wpm(self) -> float | None:
        return round(60.0 * self.words / self.talk_s, 1) if self.talk_s > 0 else None


@dataclass
class CallCharacteristics:
    duration_s: float
    speakers: dict[str, SpeakerCharacteristics] = field(default_factory=dict)
    talk_s: float = 0.0  # someone speaks
    silences: list[Silence] = field(default_factory=list)
    interruptions: list[Interruption] = field(default_factory=list)

    @property
    def silence_s(self) -> float:
        """Non-talk time: nobody speaks."""
        return max(0.0, self.duration_s - self.talk_s)

    @property
    def silence_share(self) -> float | None:
        return self.silence_s / self.duration_s if self.duration_s > 0 else None

    @property
    def longest_silence(self) -> Silence | None:
        return max(self.silences, key=lambda s: s.length, default=None)

    def interruption_matrix(self) -> dict[tuple[str, str], int]:
        """(by, of) -> count."""
        out: dict[tuple[str, str], int] = {}
        for i in self.interruptions:
            out[(i.by, i.of)] = out.get((i.by, i.of), 0) + 1
        return out




def word_count(text: str) -> int:
    """Words of a transcript sentence (tokens holding a letter or digit)."""
    return sum(1 for tok in text.split() if any(c.isalnum() for c in tok))


def in_time_order(sentences: Iterable[Spoken]) -> list[Spoken]:
    return sorted(sentences, key=lambda s: (s.start, s.end))


def merged(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, non-overlapping union of (start, end) spans."""
    out: list[list[float]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1][1] = end
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def silences(ordered: Sequence[Spoken], duration_s: float | None, min_s: float = 0.0) -> list[Silence]:
    """Gaps where nobody speaks, from the call's start to its end (`duration_s`; None while a
    live call goes on: no trailing gap). `ordered` is in time order."""
    out: list[Silence] = []
    reach = 0.0
    for pos, s in enumerate(ordered):
        if s.start - reach > min_s:
            out.append(Silence(reach, s.start, pos))
        reach = max(reach, s.end)
    if duration_s is not None and duration_s - reach > min_s:
        out.append(Silence(reach, duration_s, None))
    return out


def interruptions(ordered: Sequence[Spoken], margin_s: float = INTERRUPTION_MARGIN_S) -> list[Interruption]:
    """A sentence interrupts when it starts inside another speaker's sentence (not at its
    edges) and its speaker was not already speaking when that sentence began."""
    out: list[Interruption] = []
    last_end: dict[str, float] = {}  # per speaker: end of their latest sentence so far
    active: list[Spoken] = []  # sentences that may still be going on
    for pos, s in enumerate(ordered):
        active = [a for a in active if a.end > s.start]
        for a in active:
            if (a.speaker != s.speaker and a.start + margin_s < s.start < a.end - margin_s
                    and last_end.get(s.speaker, -math.inf) < a.start):
                out.append(Interruption(at=s.start, by=s.speaker, of=a.speaker, position=pos))
                break
        active.append(s)
        last_end[s.speaker] = max(last_end.get(s.speaker, -math.inf), s.end)
    return out


def characteristics(sentences: Iterable[Spoken], duration_s: float | None = None) -> CallCharacteristics:
    """Everything above for one call. Duration defaults to the end of the last sentence."""
    ordered = in_time_order(sentences)
    end_of_talk = max((s.end for s in ordered), default=0.0)
    duration = max(duration_s or 0.0, end_of_talk)
    per: dict[str, SpeakerCharacteristics] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    levels: dict[str, list[tuple[float, float]]] = {}
    for s in ordered:
        sp = per.get(s.speaker) or per.setdefault(s.speaker, SpeakerCharacteristics(s.speaker))
        sp.sentences += 1
        sp.words += word_count(s.text)
        spans.setdefault(s.speaker, []).append((s.start, s.end))
        if s.loudness_dbfs is not None and s.end > s.start:
            levels.setdefault(s.speaker, []).append((s.loudness_dbfs, s.end - s.start))
    for speaker, sp in per.items():
        sp.talk_s = round(sum(b - a for a, b in merged(spans[speaker])), 3)
        sp.loudness_dbfs = mean_level(levels.get(speaker, []))
    inter = interruptions(ordered)
    for i in inter:
        per[i.by].interruptions += 1
        per[i.of].interrupted += 1
    talk = sum(b - a for a, b in merged(x for v in spans.values() for x in v))
    return CallCharacteristics(duration_s=duration, speakers=per, talk_s=round(talk, 3),
                               silences=silences(ordered, duration if duration_s is not None else None),
                               interruptions=inter)


def mean_level(levels: Sequence[tuple[float, float]]) -> float | None:
    """Duration-weighted energy mean of (dBFS, seconds) pairs."""
    total = sum(d for _, d in levels if d > 0)
    if total <= 0:
        return None
    power = sum(10 ** (db / 10.0) * d for db, d in levels if d > 0) / total
    return round(10.0 * math.log10(power), 2) if power > 0 else None
