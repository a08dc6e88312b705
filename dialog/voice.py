"""The assistant's voice channel: recorded speech in, spoken reply out.

`VoiceAssistant` composes the configured ASR engine (`CALLSENSE_ASR_ENGINE`: `moonshine`
embedded by default (end of speech -> first reply audio p95 ~150 ms, docs/benchmarks.md),
`whisper` embedded, `riva` against a Riva server, ...), the `Assistant` and the configured TTS engine
(`CALLSENSE_TTS_ENGINE`: `espeak` embedded, `riva`)::

    voice = VoiceAssistant(settings)
    turn = voice.voice_turn("session-1", wav_bytes)   # or a path, or 16 kHz float32 samples
    turn.transcript, turn.asr_confidence, turn.reply.text, turn.audio  # audio: WAV bytes

A turn is decode (any format FFmpeg reads, to 16 kHz mono) -> voice activity (Silero) ->
ASR -> `Assistant.reply(..., asr_confidence=, channel="voice")` (so the turn is archived
with its ASR confidence) -> TTS one sentence at a time. `stream_turn` yields each step's
result as soon as it exists (`Heard`, then the `Reply`, then audio chunks, then the
`VoiceTurn`), so a caller can start playing the first sentence while the rest is still
being synthesized: the latency that counts is end of speech -> first reply audio.

Errors for people: an unreadable recording raises `VoiceInputError`, an ASR engine that
cannot load or answer raises `VoiceUnavailable` (each one line). A recording without
speech is no turn: the conversation stays where it was, nothing is archived, and the
reply asks the user to say it again. A TTS engine that fails leaves the (already archived)
reply as text, with `VoiceTurn.speech_error` saying why.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Union

import numpy as np

from callsense.asr.tts.base import SynthesizedAudio
from callsense.core.settings import Settings
from callsense.dialog.assistant import Assistant
from callsense.dialog.engine import Message, Reply

__all__ = ["Heard", "VoiceAssistant", "VoiceInputError", "VoiceTimings", "VoiceTurn", "VoiceUnavailable",
           "PcmPlayer", "find_player", "REPEAT_PLEASE"]

RATE = 16000
#: Longest recording taken as one turn.
MAX_TURN_S = 60.0
#: Pause between two messages of one reply (at least; a flow's `delay` makes it longer, up to MAX_PAUSE_S).
MESSAGE_PAUSE_S = 0.25
MAX_PAUSE_S = 2.0
REPEAT_PLEASE = "Sorry, I didn't hear anything. Could you say that again?"

AudioIn = Union[bytes, bytearray, np.ndarray, str, Path, IO[bytes]]

log = logging.getLogger("callsense.dialog.voice")


class VoiceInputError(ValueError):
    """The recording cannot be used (not audio, corrupt, too long): one line for people."""


class VoiceUnavailable(RuntimeError):
    """Speech recognition or synthesis cannot be used (engine missing, server down): one line."""


@dataclass
class Heard:
    """What the ASR engine made of one recording."""

    text: str
    confidence: float | None
    duration_s: float  # of the recording
    speech_s: float  # of the voiced part sent to the ASR engine (0: no speech found)

    @property
    def nothing(self) -> bool:
        return not re.search(r"\w", self.text)


@dataclass
class VoiceTimings:
    """Milliseconds from the start of the turn (the end of the user's speech)."""

    decode_ms: float = 0.0  # decode + voice activity
    asr_ms: float = 0.0
    dialog_ms: float = 0.0  # NLU + dialog engine + fulfillment + archive write
    tts_first_ms: float | None = None  # reply ready -> first audio chunk synthesized
    tts_ms: float = 0.0  # all chunks
    first_audio_ms: float | None = None  # turn start -> first reply audio ready

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.asr_ms + self.dialog_ms + self.tts_ms


@dataclass
class VoiceTurn:
    session_id: str
    transcript: str  # what was heard (typed text for a text turn; "" for a greeting)
    asr_confidence: float | None
    reply: Reply
    audio: bytes | None  # the whole spoken reply as a WAV file; None when muted or TTS failed
    sample_rate: int = 0
    heard_nothing: bool = False  # a recording without speech: not a turn, asked to repeat
    speech_error: str | None = None  # why the reply is not spoken, when TTS failed
    timings: VoiceTimings = field(default_factory=VoiceTimings)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or e.__class__.__name__
    return text[:300]


# ---------------------------------------------------------------- audio in


def read_audio_bytes(audio: AudioIn) -> bytes:
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return bytes(audio)
    if isinstance(audio, (str, Path)):
        try:
            return Path(audio).read_bytes()
        except OSError as e:
            raise VoiceInputError(f"cannot read {audio}: {e.strerror or e}") from None
    if hasattr(audio, "getvalue"):  # st.audio_input / st.file_uploader's UploadedFile, BytesIO
        return bytes(audio.getvalue())
    if hasattr(audio, "read"):
        return bytes(audio.read())
    raise VoiceInputError(f"cannot use {type(audio).__name__} as audio: pass WAV/MP3 bytes, a path or 16 kHz samples")


def decode_speech(audio: AudioIn, decoder: str = "pyav") -> np.ndarray:
    """Any recording -> 16 kHz mono float32. Arrays are taken as 16 kHz already
    (float in [-1, 1] or int16; (channels, samples) are mixed down)."""
    from callsense.audio.decode import decode_audio
    from callsense.core.errors import BadInput

    if isinstance(audio, np.ndarray):
        samples = audio
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=0 if samples.shape[0] <= samples.shape[1] else 1)
        if samples.ndim != 1:
            raise VoiceInputError(f"audio samples must be one or two dimensional, not {samples.ndim}")
    else:
        data = read_audio_bytes(audio)
        try:
            decoded = decode_audio(data, decoder)
        except BadInput as e:
            raise VoiceInputError(f"cannot read the recording: {e}") from None
        channels = decoded.channels
        samples = channels[0] if channels.shape[0] == 1 else channels.mean(axis=0)
    if samples.size / RATE > MAX_TURN_S:
        raise VoiceInputError(f"the recording is {samples.size / RATE:.0f} s long; one turn is at most "
                              f"{MAX_TURN_S:.0f} s of speech")
    return np.ascontiguousarray(samples, dtype=np.float32)


# ---------------------------------------------------------------- the assistant


class VoiceAssistant:
    """The `Assistant` with ears and a voice. Engines load on first use (a text-only caller
    never loads a speech model); thread-safe like the Assistant."""

    def __init__(self, settings: Settings | None = None, *, assistant: Assistant | None = None, asr=None, tts=None,
                 **assistant_options):
        self.settings = settings or (assistant.settings if assistant else Settings())
        self.assistant = assistant or Assistant(self.settings, **assistant_options)
        self._asr = asr
        self._tts = tts
        self._vad = None
        self._lock = threading.Lock()

    # ---- engines ---------------------------------------------------------------

    @property
    def asr(self):
        if self._asr is None:
            with self._lock:
                if self._asr is None:
                    self._asr = self._load("speech recognition", "asr_engine")
        return self._asr

    @property
    def tts(self):
        if self._tts is None:
            with self._lock:
                if self._tts is None:
                    self._tts = self._load("speech synthesis", "tts_engine")
        return self._tts

    def _load(self, what: str, setting: str):
        from callsense.asr.base import AsrUnavailable, create_asr_engine
        from callsense.asr.tts.base import TtsUnavailable, create_tts_engine
        from callsense.core.registry import UnknownBackend

        # `setting` is the flat (environment) name: asr_engine or tts_engine, both in the asr section.
        name = self.settings.asr.engine if setting == "asr_engine" else self.settings.asr.tts_engine
        create = create_asr_engine if setting == "asr_engine" else create_tts_engine
        try:
            return create(self.settings)
        except (AsrUnavailable, TtsUnavailable, UnknownBackend, ImportError, OSError) as e:
            raise VoiceUnavailable(f"{what} ('{name}', CALLSENSE_{setting.upper()}) is unavailable: {_one_line(e)}") from None

    def preload(self, *, asr: bool = True, tts: bool = True, warm_up: bool = True) -> None:
        """Load the engines now: a clear error at start-up rather than at the first turn, and
        (`warm_up`) one throw-away turn through them, as the first decode of a process is
        several times slower than the next ones. The ASR warm-up hears a short sentence
        spoken by the TTS engine when there is one (Whisper on silence or noise falls back
        through every temperature and takes far longer than on speech)."""
        from callsense.asr.base import AsrUnavailable
        from callsense.asr.tts.base import TtsUnavailable
        from callsense.core.errors import TransientError

        sentence = None
        if tts:
            engine = self.tts
            if warm_up:
                try:
                    sentence = engine.synthesize("Hello, what can you do?", sample_rate=RATE).samples
                except (TtsUnavailable, OSError, subprocess.SubprocessError) as e:
                    raise VoiceUnavailable(f"speech synthesis ('{self.settings.asr.tts_engine}') failed: "
                                           f"{_one_line(e)}") from None
        if asr:
            engine = self.asr
            self._speech_spans(np.zeros(RATE, np.float32))
            if warm_up and sentence is not None and sentence.size:
                try:
                    for _ in engine.transcribe(sentence):
                        pass
                except (AsrUnavailable, TransientError) as e:
                    raise VoiceUnavailable(f"speech recognition ('{self.settings.asr.engine}') failed: "
                                           f"{_one_line(e)}") from None

    def describe(self) -> str:
        s = self.settings
        where = f" at {s.riva.url}" if "riva" in (s.asr.engine, s.asr.tts_engine) else ""
        return f"ASR {s.asr.engine}, TTS {s.asr.tts_engine}{where}, NLU {getattr(self.assistant.nlu, 'name', '?')}"

    # ---- the steps ---------------------------------------------------------------

    def _speech_spans(self, samples: np.ndarray):
        from callsense.audio.vad import EndpointerOptions, SileroModel, speech_spans

        if self._vad is None:
            self._vad = SileroModel()
        s = self.settings
        opts = EndpointerOptions(threshold=s.pipeline.vad_threshold, min_silence_ms=s.pipeline.vad_min_silence_ms,
                                 speech_pad_ms=s.pipeline.vad_speech_pad_ms, min_speech_ms=150, max_utterance_s=MAX_TURN_S + 1)
        return speech_spans(samples, self._vad, opts)

    def hear(self, audio: AudioIn) -> Heard:
        """Decode, find the speech, transcribe. `Heard.nothing` when no speech was found."""
        samples = decode_speech(audio, self.settings.pipeline.decoder)
        return self._recognize(self._voiced(samples), samples.size / RATE)

    def _voiced(self, samples: np.ndarray) -> np.ndarray | None:
        """The recording from the first to the last speech (None: no speech at all)."""
        spans = self._speech_spans(samples) if samples.size else []
        return samples[spans[0].start: spans[-1].end] if spans else None

    def _recognize(self, voiced: np.ndarray | None, duration_s: float) -> Heard:
        from callsense.asr.base import AsrUnavailable
        from callsense.core.errors import TransientError

        if voiced is None:
            return Heard("", None, duration_s, 0.0)
        try:
            segments = list(self.asr.transcribe(voiced))
        except (AsrUnavailable, TransientError) as e:
            raise VoiceUnavailable(f"speech recognition ('{self.settings.asr.engine}') failed: {_one_line(e)}") from None
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        return Heard(text, _confidence(segments), duration_s, voiced.size / RATE)

    def speak(self, reply: Reply) -> Iterator[SynthesizedAudio]:
        """The reply's messages, one chunk per sentence as each is synthesized; a pause
        (silence at the chunk's start) between messages. Raises VoiceUnavailable."""
        from callsense.asr.tts.base import TtsUnavailable

        rate = 0
        said = 0
        for msg in reply.messages:
            if not msg.text.strip():
                continue
            pause = min(max(msg.delay_s, MESSAGE_PAUSE_S), MAX_PAUSE_S) if said else 0.0
            said += 1
            chunks = self.tts.synthesize_stream(msg.text)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except (TtsUnavailable, OSError, subprocess.SubprocessError) as e:
                    raise VoiceUnavailable(f"speech synthesis ('{self.settings.asr.tts_engine}') failed: {_one_line(e)}") from None
                if chunk.samples.size == 0:
                    continue
                rate = rate or chunk.sample_rate
                if chunk.sample_rate != rate:
                    chunk = chunk.resampled(rate)
                if pause:
                    chunk.samples = np.concatenate([np.zeros(int(pause * rate), np.float32), chunk.samples])
                    pause = 0.0
                yield chunk

    # ---- whole turns ---------------------------------------------------------------

    def stream_turn(self, session_id: str, *, audio: AudioIn | None = None, text: str | None = None,
                    spoken: bool = True) -> Iterator[object]:
        """One turn, step by step: `Heard` (audio turns), the engine's `Reply`, each reply
        audio chunk (`SynthesizedAudio`, when `spoken`) as soon as it is synthesized, then
        the `VoiceTurn`. Neither `audio` nor `text`: the greeting of the session."""
        from callsense.audio.pcm import wav_bytes

        started = time.perf_counter()
        timings = VoiceTimings()
        heard: Heard | None = None
        if audio is not None:
            samples = decode_speech(audio, self.settings.pipeline.decoder)
            voiced = self._voiced(samples)
            timings.decode_ms = _ms(started)
            asr_started = time.perf_counter()
            heard = self._recognize(voiced, samples.size / RATE)
            timings.asr_ms = _ms(asr_started)
            yield heard
        dialog_started = time.perf_counter()
        if heard is not None and heard.nothing:
            reply = self._repeat_please(session_id)
        elif heard is not None:
            reply = self.assistant.reply(session_id, heard.text, asr_confidence=heard.confidence, channel="voice")
        elif text is not None:
            reply = self.assistant.reply(session_id, text)
        else:
            reply = self.assistant.start(session_id)
        timings.dialog_ms = _ms(dialog_started)
        yield reply

        chunks, speech_error = [], None
        if spoken and reply.text.strip():
            tts_started = time.perf_counter()
            try:
                for chunk in self.speak(reply):
                    if timings.first_audio_ms is None:
                        timings.first_audio_ms = _ms(started)
                        timings.tts_first_ms = _ms(tts_started)
                    chunks.append(chunk)
                    yield chunk
            except VoiceUnavailable as e:
                speech_error = str(e)
            timings.tts_ms = _ms(tts_started)
        rate = chunks[0].sample_rate if chunks else 0
        audio_out = wav_bytes(np.concatenate([c.samples for c in chunks]), rate) if chunks else None
        yield VoiceTurn(
            session_id=reply.session_id, transcript=heard.text if heard else (text or ""),
            asr_confidence=heard.confidence if heard else None, reply=reply, audio=audio_out, sample_rate=rate,
            heard_nothing=bool(heard and heard.nothing), speech_error=speech_error, timings=timings,
        )

    def voice_turn(self, session_id: str, audio: AudioIn, *, spoken: bool = True) -> VoiceTurn:
        """A recorded user turn -> transcript, ASR confidence, reply, reply audio (WAV)."""
        return _last(self.stream_turn(session_id, audio=audio, spoken=spoken))

    def text_turn(self, session_id: str, text: str, *, spoken: bool = True) -> VoiceTurn:
        """A typed user turn with a spoken reply."""
        return _last(self.stream_turn(session_id, text=text, spoken=spoken))

    def greet(self, session_id: str, *, spoken: bool = True) -> VoiceTurn:
        """The greeting of a new conversation (an empty reply for one already going)."""
        return _last(self.stream_turn(session_id, spoken=spoken))

    def _repeat_please(self, session_id: str) -> Reply:
        """Asked to say it again; the conversation does not move and nothing is archived."""
        try:
            stored = self.assistant.engine.sessions.load(session_id)
        except Exception:  # noqa: BLE001 - the state is only shown, never used
            stored = None
        return Reply(session_id=session_id, text=REPEAT_PLEASE, state=stored.state if stored else "", intent=None,
                     slots={}, messages=[Message(REPEAT_PLEASE)], turn=stored.turns if stored else 0)

    def close(self) -> None:
        self.assistant.close()


def _confidence(segments) -> float | None:
    """The recording's ASR confidence: the segments' own, weighted by their length in
    characters (word probabilities where an engine gives no segment confidence)."""
    pairs = []
    for s in segments:
        conf = s.confidence
        if conf is None and s.words:
            conf = float(np.mean([w.probability for w in s.words]))
        if conf is not None and s.text.strip():
            pairs.append((float(conf), len(s.text.strip())))
    if not pairs:
        return None
    total = sum(n for _, n in pairs)
    return round(sum(c * n for c, n in pairs) / total, 4)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _last(events: Iterator[object]) -> VoiceTurn:
    last = None
    for last in events:
        pass
    assert isinstance(last, VoiceTurn)
    return last


# ---------------------------------------------------------------- audio out (terminal)


def find_player() -> list[str] | None:
    """The command that plays raw 16-bit mono PCM from stdin (rate appended): paplay
    (PulseAudio / PipeWire) or aplay (ALSA), or None."""
    if shutil.which("paplay"):
        return ["paplay", "--raw", "--format=s16le", "--channels=1", "--rate={rate}"]
    if shutil.which("aplay"):
        return ["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", "{rate}", "-"]
    return None


class PcmPlayer:
    """Plays one reply's chunks as they arrive through the sound device's player program;
    `finish()` waits until it has played. Raises VoiceUnavailable when the player fails."""

    def __init__(self, command: list[str]):
        self.command = command
        self._proc: subprocess.Popen | None = None
        self._rate = 0

    def play(self, chunk) -> None:
        if self._proc is None:
            self._rate = chunk.sample_rate
            cmd = [part.replace("{rate}", str(self._rate)) for part in self.command]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if chunk.sample_rate != self._rate:
            chunk = chunk.resampled(self._rate)
        try:
            self._proc.stdin.write(chunk.pcm16())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._failed()

    def finish(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except OSError as e:
            # The player already went away: its exit code below tells the user why.
            log.debug("audio player's input was already closed: %s", e)
        code = proc.wait()
        if code != 0:
            self._failed(proc, code)

    def _failed(self, proc: subprocess.Popen | None = None, code: int | None = None) -> None:
        proc = proc or self._proc
        self._proc = None
        if proc.poll() is None:
            proc.kill()
        code = proc.wait() if code is None else code
        reason = (proc.stderr.read().decode(errors="replace").strip().splitlines() or [f"exit code {code}"])[-1]
        raise VoiceUnavailable(f"{self.command[0]} cannot play the reply: {reason} "
                               "(--audio-out DIR writes the replies as WAV files instead)")


def write_wav(path: Path, wav: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav)
    return path
