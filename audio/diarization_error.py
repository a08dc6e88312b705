"""Diarization error rate (DER), frame-based, as NIST's md-eval scores it.

DER = (missed speech + false alarm + speaker confusion) / reference speech, in time, with the
one-to-one mapping of hypothesis speakers to reference speakers that maximises the agreement.
Frames within `collar` seconds either side of a reference turn's start or end are not scored
(md-eval's `-c 0.25`); overlapping reference speech is scored (each speaker counts). The
frame step is 10 ms. No maintained scorer (pyannote.metrics, dscore) is a dependency of
callsense, so this small one is used by the diarization benchmark and tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

STEP_S = 0.01


@dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float
    speaker: str


@dataclass(frozen=True)
class DiarizationError:
    scored_s: float  # reference speech scored (overlap counted once per speaker)
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    mapping: dict[str, str]  # hypothesis speaker -> reference speaker

    @property
    def der(self) -> float:
        return (self.missed_s + self.false_alarm_s + self.confusion_s) / self.scored_s if self.scored_s else 0.0

    def __add__(self, other: "DiarizationError") -> "DiarizationError":
        return DiarizationError(self.scored_s + other.scored_s, self.missed_s + other.missed_s,
                                self.false_alarm_s + other.false_alarm_s, self.confusion_s + other.confusion_s, {})


def _activity(turns: list[Turn], speakers: list[str], n: int) -> np.ndarray:
    act = np.zeros((len(speakers), n), bool)
    for t in turns:
        a, b = int(round(t.start / STEP_S)), int(round(t.end / STEP_S))
        act[speakers.index(t.speaker), max(a, 0):min(b, n)] = True
    return act


def diarization_error(reference: list[Turn], hypothesis: list[Turn], collar: float = 0.25) -> DiarizationError:
    end = max([t.end for t in reference + hypothesis], default=0.0)
    n = int(np.ceil(end / STEP_S)) + 1
    ref_spk = sorted({t.speaker for t in reference})
    hyp_spk = sorted({t.speaker for t in hypothesis})
    ref, hyp = _activity(reference, ref_spk, n), _activity(hypothesis, hyp_spk, n)
    scored = np.ones(n, bool)
    c = int(round(collar / STEP_S))
    for t in reference:
        for edge in (int(round(t.start / STEP_S)), int(round(t.end / STEP_S))):
            scored[max(edge - c, 0):min(edge + c, n)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    # Agreement (frames both speak) of every pair, then the best one-to-one mapping.
    agree = (hyp[:, None, :] & ref[None, :, :]).sum(axis=2) if hyp_spk and ref_spk else np.zeros((len(hyp_spk), len(ref_spk)))
    best, mapping = 0, {}
    if hyp_spk and ref_spk:
        k = min(len(hyp_spk), len(ref_spk))
        for hs in itertools.permutations(range(len(hyp_spk)), k):
            for rs in itertools.combinations(range(len(ref_spk)), k) if len(ref_spk) > k else [tuple(range(k))]:
                total = sum(agree[h, r] for h, r in zip(hs, rs))
                if total > best or not mapping:
                    best, mapping = total, {hyp_spk[h]: ref_spk[r] for h, r in zip(hs, rs)}
    missed = np.maximum(n_ref - n_hyp, 0).sum()
    false_alarm = np.maximum(n_hyp - n_ref, 0).sum()
    confusion = np.minimum(n_ref, n_hyp).sum() - best
    return DiarizationError(float(n_ref.sum() * STEP_S), float(missed * STEP_S), float(false_alarm * STEP_S),
                            float(confusion * STEP_S), mapping)
