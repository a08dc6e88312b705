"""Plain computations over one call's rows: talk time, silence, overlap, negative streaks.
No database and no Streamlit here, so each is tested on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

LABELS = ("negative", "neutral", "positive")
LABEL_VALUE = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}

Interval = tuple[float, float]


def merge_intervals(spans: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of the spans."""
    out: list[list[float]] = []
    for start, end in sorted((s, e) for s, e in spans if e > s):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def total_length(spans: Iterable[Interval]) -> float:
    return sum(e - s for s, e in spans)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two merged interval lists."""
    i = j = 0
    out: list[Interval] = []
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if end > start:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass
class TalkStats:
    duration_s: float
    talk_s: dict[str, float] = field(default_factory=dict)  # per speaker
    silence_s: float = 0.0  # nobody speaks
    overlap_s: float = 0.0  # two or more speak at once
    interruptions: dict[str, int] = field(default_factory=dict)  # per speaker: turns started over the other


def talk_stats(turns: Iterable[tuple[str, float, float]], duration_s: float | None) -> TalkStats:
    """`turns` are (speaker, start, end) of each utterance. Duration defaults to the last end."""
    per: dict[str, list[Interval]] = {}
    starts: dict[str, list[float]] = {}
    for speaker, start, end in turns:
        per.setdefault(speaker, []).append((start, end))
        starts.setdefault(speaker, []).append(start)
    merged = {sp: merge_intervals(spans) for sp, spans in per.items()}
    everything = merge_intervals(s for spans in merged.values() for s in spans)
    end_of_talk = everything[-1][1] if everything else 0.0
    duration = max(duration_s or 0.0, end_of_talk)
    overlap: list[Interval] = []
    speakers = sorted(merged)
    for i, a in enumerate(speakers):
        for b in speakers[i + 1:]:
            overlap.extend(intersect(merged[a], merged[b]))
    interruptions: dict[str, int] = {}
    margin = 0.2  # a start right at the other's edge is turn-taking, not an interruption
    for sp in speakers:
        others = [s for o in speakers if o != sp for s in merged[o]]
        interruptions[sp] = sum(1 for t in starts[sp] if any(s + margin < t < e - margin for s, e in others))
    return TalkStats(
        duration_s=duration,
        talk_s={sp: total_length(spans) for sp, spans in merged.items()},
        silence_s=max(0.0, duration - total_length(everything)),
        overlap_s=total_length(merge_intervals(overlap)),
        interruptions=interruptions,
    )


@dataclass(frozen=True)
class Streak:
    longest: int  # longest run of negative customer sentences
    current: int  # the run at the end of what is stored so far
    flagged: bool  # longest >= the configured N
    first_flag_at: float | None  # call time (s) of the sentence that reached N first


def negative_streak(sentences: Iterable[tuple[str, float, str]], n: int, speaker: str = "customer") -> Streak:
    """`sentences` are (speaker, start, sentiment); only `speaker`'s count, in time order."""
    longest = current = 0
    first_at: float | None = None
    for sp, start, label in sorted((s for s in sentences if s[0] == speaker), key=lambda s: s[1]):
        current = current + 1 if label == "negative" else 0
        longest = max(longest, current)
        if current >= n and first_at is None:
            first_at = start
    return Streak(longest=longest, current=current, flagged=longest >= n, first_flag_at=first_at)


def sentiment_value(label: str, confidence: float | None = None) -> float:
    """-1 / 0 / +1, scaled by the model's confidence when given."""
    value = LABEL_VALUE.get(label, 0.0)
    return value * (confidence if confidence is not None else 1.0)


def share(counts: dict[str, int], label: str) -> float:
    total = sum(counts.values())
    return counts.get(label, 0) / total if total else 0.0
