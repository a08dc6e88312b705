"""Talk speed, loudness, silences and interruptions from a call's sentences."""

from __future__ import annotations

import numpy as np
import pytest

from callsense.audio.loudness import FLOOR_DBFS, dbfs, span_dbfs
from callsense.nlp.characteristics import Spoken, characteristics, interruptions, mean_level, silences, word_count


def test_words_per_minute_loudness_and_silences_per_speaker():
    ss = [Spoken("agent", 0.0, 6.0, "one two three four five six seven eight nine ten", loudness_dbfs=-20.0),
          Spoken("customer", 10.0, 13.0, "a b c d e f", loudness_dbfs=-10.0),
          Spoken("customer", 13.0, 16.0, "g h i", loudness_dbfs=-30.0),
          Spoken("agent", 80.0, 82.0, "back, sorry!")]
    ch = characteristics(ss, 90.0)
    agent, customer = ch.speakers["agent"], ch.speakers["customer"]
    assert agent.words == 12 and agent.talk_s == 8.0 and agent.wpm == 90.0
    assert customer.wpm == 90.0 and customer.sentences == 2
    assert agent.loudness_dbfs == -20.0  # the sentence without a level does not count
    assert customer.loudness_dbfs == pytest.approx(mean_level([(-10.0, 3.0), (-30.0, 3.0)]))
    assert -13.1 < customer.loudness_dbfs < -12.9  # energy mean, not the mean of decibels
    assert ch.talk_s == 14.0 and ch.silence_s == 76.0 and ch.silence_share == pytest.approx(76 / 90)
    longest = ch.longest_silence
    assert (longest.start, longest.end, longest.position) == (16.0, 80.0, 3)
    assert [(s.start, s.end) for s in ch.silences] == [(6.0, 10.0), (16.0, 80.0), (82.0, 90.0)]


def test_a_live_call_in_progress_has_no_trailing_silence():
    ss = [Spoken("agent", 1.0, 2.0, "hi")]
    assert [(s.start, s.end) for s in silences(ss, None)] == [(0.0, 1.0)]


def test_interruptions_say_who_interrupted_whom():
    ss = [Spoken("agent", 0.0, 5.0, "a long explanation of the bill"),
          Spoken("customer", 2.0, 4.0, "but that is wrong"),  # over the agent: an interruption
          Spoken("agent", 6.0, 9.0, "let me check"),
          Spoken("customer", 8.85, 10.0, "ok"),  # starts within the margin of the agent's end: turn-taking
          Spoken("customer", 10.0, 14.0, "and another thing"),
          Spoken("agent", 12.0, 13.0, "sure")]  # the agent over the customer
    got = interruptions(ss)
    assert [(i.by, i.of, i.at) for i in got] == [("customer", "agent", 2.0), ("agent", "customer", 12.0)]
    ch = characteristics(ss)
    assert ch.interruption_matrix() == {("customer", "agent"): 1, ("agent", "customer"): 1}
    assert ch.speakers["customer"].interrupted == 1 and ch.speakers["agent"].interruptions == 1


def test_word_count_ignores_punctuation_tokens():
    assert word_count("Hello , world - it's 3 pm.") == 5


def test_dbfs_of_a_span():
    rate = 16000
    t = np.arange(rate) / rate
    sine = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    assert dbfs(sine) == pytest.approx(-3.01, abs=0.01)
    assert dbfs(0.1 * sine) == pytest.approx(-23.01, abs=0.01)
    assert dbfs(np.zeros(100, np.float32)) == FLOOR_DBFS
    assert dbfs(np.zeros(0, np.float32)) is None
    audio = np.concatenate([np.zeros(rate, np.float32), 0.5 * sine])
    assert span_dbfs(audio, rate, 1.0, 2.0) == pytest.approx(-9.03, abs=0.01)
    assert span_dbfs(audio, rate, 3.0, 4.0) is None  # past the end
