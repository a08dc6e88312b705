"""Builds the stages from settings. Heavy resources (models, database) load only for the
stages a process actually runs."""

from __future__ import annotations

from functools import cached_property

from callsense.core.settings import Settings
from callsense.store.blobs import BlobStore
from callsense.ingest.stage import LIVE_TRANSCRIBE, STAGE_NAMES, Stage, pipeline_stage_names


class PipelineResources:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def blobs(self) -> BlobStore:
        return BlobStore(self.settings.resolved_blob_dir, self.settings.pipeline.inline_audio_max_bytes)

    @cached_property
    def vad(self):
        from callsense.audio.vad import SileroModel

        return SileroModel()

    @cached_property
    def asr_engine(self):
        from callsense.asr.base import create_asr_engine

        return create_asr_engine(self.settings)

    def interim_engine(self):
        """A second instance of the live engine, on one CPU thread, for interim text (built on
        the segment stage's interim thread); None when its cost does not follow the audio
        (Whisper: a 30 s window per pass), checked before any model is loaded."""
        from callsense.asr.base import create_asr_engine

        if not self._cost_follows_audio():
            return None
        return create_asr_engine(self.settings.model_copy(update={"cpu_threads": 1}))

    def live_engine(self):
        """The ASR engine itself (shared with the transcribe stage of this process) where its
        cost follows the audio; None for fixed-window engines."""
        return self.asr_engine if self._cost_follows_audio() else None

    def _cost_follows_audio(self) -> bool:
        """The configured engine's pass costs what its audio lasts (not a fixed window),
        known from its class before any model is loaded."""
        from callsense.asr.base import asr_engines

        return getattr(asr_engines.get(self.settings.asr.engine), "fixed_window_s", None) is None

    @cached_property
    def finals_first(self):
        """Shared by the transcribe stage and the segment stage's interim thread of this process."""
        from callsense.ingest.stages.interim import FinalsFirst

        return FinalsFirst()

    @cached_property
    def sentiment_model(self):
        from callsense.nlp.sentiment.base import create_sentiment_model

        return create_sentiment_model(self.settings)

    @cached_property
    def store(self):
        from callsense.store.db import make_engine
        from callsense.store.repository import ResultStore

        return ResultStore(make_engine(self.settings.resolved_database_url))


def build_stage(name: str, res: PipelineResources) -> Stage:
    if name == "segment":
        from callsense.ingest.stages.segment import CallSegmenter

        return CallSegmenter(res.settings, res.blobs, res.vad, interim_engine=res.interim_engine,
                             finals_first=res.finals_first, pause_engine=res.live_engine)
    if name == LIVE_TRANSCRIBE:
        from callsense.asr.engines.riva import RivaEngine
        from callsense.ingest.stages.live_transcribe import RivaLiveTranscriber

        return RivaLiveTranscriber(res.settings, RivaEngine(res.settings, streaming=True))
    if name == "transcribe":
        from callsense.ingest.stages.transcribe import UtteranceTranscriber

        return UtteranceTranscriber(res.asr_engine, res.blobs, pack_window_s=res.settings.pipeline.asr_window_s,
                                    pii_redaction=res.settings.pipeline.pii_redaction,
                                    loudness=res.settings.pipeline.sentence_loudness,
                                    finals_first=res.finals_first)
    if name == "sentiment":
        from callsense.ingest.stages.sentiment import SentenceScorer

        return SentenceScorer(res.sentiment_model)
    if name == "store":
        from callsense.ingest.categories import rules_from_settings
        from callsense.ingest.stages.store import ResultWriter

        from callsense.ingest.recording_redaction import RecordingRedactor

        recordings = RecordingRedactor.from_settings(res.settings, res.store, res.blobs)
        if not res.settings.pipeline.categories:
            return ResultWriter(res.store, None, recordings)
        # An invalid rule file stops here, before the worker consumes anything (CategoryRulesError).
        return ResultWriter(res.store, rules_from_settings(res.settings), recordings)
    raise ValueError(f"unknown stage '{name}'; stages are: {', '.join(STAGE_NAMES)}")


def parse_stage_names(spec: str, live_asr: str = "vad") -> list[str]:
    """`all` or a comma-separated list -> stage names. `all` includes live-transcribe when
    live_asr is riva-streaming; live-transcribe with live_asr=vad would transcribe live
    calls twice (the segment stage does it), so that is refused."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return pipeline_stage_names(live_asr)
    bad = [n for n in names if n not in STAGE_NAMES]
    if bad or not names:
        raise ValueError(f"unknown stage(s) {', '.join(bad) or '(none)'}; choose from: all, {', '.join(STAGE_NAMES)}")
    if LIVE_TRANSCRIBE in names and live_asr != "riva-streaming":
        raise ValueError(f"the {LIVE_TRANSCRIBE} stage needs CALLSENSE_LIVE_ASR=riva-streaming "
                         f"(with live_asr={live_asr} the segment stage handles live calls)")
    return names
