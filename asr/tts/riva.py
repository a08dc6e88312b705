"""Riva TTS: `SpeechSynthesisService.synthesize` for whole clips and `synthesize_online` for
streaming chunks, against a real Riva server or `callsense riva-serve`."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from callsense.asr.engines.riva import server_models
from callsense.asr.tts.base import SynthesizedAudio, TtsEngine, TtsUnavailable, Voice, tts_engines
from callsense.core.settings import Settings
from callsense.core.errors import TransientError
from callsense.core.riva_client import RETRYABLE, RivaConnection, riva_modules


class RivaTtsUnavailable(TtsUnavailable, TransientError):
    """The Riva server did not answer in time, after retries."""


def _pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.float32) / 32768.0


@tts_engines.register("riva")
class RivaTtsEngine(TtsEngine):
    name = "riva"

    def __init__(self, settings: Settings):
        riva = riva_modules(TtsUnavailable)
        self.conn = RivaConnection(settings, setup_error=TtsUnavailable)
        self.service = riva.SpeechSynthesisService(self.conn.auth)
        self.settings = settings
        self.voice = settings.riva.tts_voice
        self.sample_rate = settings.riva.tts_sample_rate

    @property
    def model_id(self) -> str:
        return f"riva-tts:{self.voice or 'server-default'}"

    def _call(self, fn):
        return self.conn.call("TTS", self.voice, fn, unavailable=RivaTtsUnavailable, permanent=TtsUnavailable)

    def synthesize(self, text: str, *, voice: str | None = None, sample_rate: int | None = None) -> SynthesizedAudio:
        riva = riva_modules(TtsUnavailable)
        rate = sample_rate or self.sample_rate

        response = self.conn.call_future(
            "TTS", self.voice,
            lambda: self.service.synthesize(text, voice or self.voice or None, self.settings.riva.language,
                                            encoding=riva.AudioEncoding.LINEAR_PCM, sample_rate_hz=rate, future=True),
            unavailable=RivaTtsUnavailable, permanent=TtsUnavailable)
        return SynthesizedAudio(_pcm16_to_float(response.audio), rate, text)

    def synthesize_stream(self, text: str, *, voice: str | None = None, sample_rate: int | None = None) -> Iterator[SynthesizedAudio]:
        import grpc

        riva = riva_modules(TtsUnavailable)
        rate = sample_rate or self.sample_rate
        responses = self.service.synthesize_online(text, voice or self.voice or None, self.settings.riva.language,
                                                   encoding=riva.AudioEncoding.LINEAR_PCM, sample_rate_hz=rate)
        what = f"Riva TTS streaming at {self.conn.url} (voice {voice or self.voice or 'chosen by the server'})"
        try:
            for response in responses:
                yield SynthesizedAudio(_pcm16_to_float(response.audio), rate, response.meta.text or "")
        except grpc.RpcError as e:
            code = e.code().name if e.code() else "UNKNOWN"
            details = " ".join((e.details() or code).split())
            if code in RETRYABLE:
                raise RivaTtsUnavailable(f"{what} failed: {code}: {details}") from None
            raise TtsUnavailable(f"{what} refused the request: {code}: {details}") from None

    def voices(self) -> list[Voice]:
        models = server_models(self.conn, "tts") or []
        out = []
        for _, params in models:
            base = params.get("voice_name", "")
            for sub in filter(None, params.get("subvoices", "").split(",")):
                out.append(Voice(f"{base}.{sub.split(':')[0]}" if base else sub.split(":")[0], params.get("language_code", "")))
        return out
