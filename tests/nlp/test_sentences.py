from callsense.asr.base import RecognizedWord as W
from callsense.nlp.sentences import join_words, split_sentences


def words(text):
    return [W(" " + t, i, i + 0.5) for i, t in enumerate(text.split())]


def test_split_on_terminal_punctuation_keeps_times():
    parts = split_sentences(words("Hello there. I was charged twice! Can you help? thanks"))
    assert [join_words(p) for p in parts] == ["Hello there.", "I was charged twice!", "Can you help?", "thanks"]
    assert parts[1][0].start == 2 and parts[1][-1].end == 5.5


def test_abbreviations_and_numbers_do_not_split():
    parts = split_sentences(words("Mr. Smith paid 3. dollars today."))
    assert len(parts) == 1
