"""The Riva NLU backend: `AnalyzeIntent` of a Riva server (a real Riva deployment or
`callsense riva-serve`) through `nvidia-riva-client`.

The connection (URL, TLS, API key, metadata) is the one every Riva engine of callsense uses
(`callsense.core.riva_client.RivaConnection`, settings `riva_*`). A dialog turn must not hang
on a dead server, so NLU calls get their own short deadline (`riva_nlu_timeout_s`, default
2 s) and no retries unless `riva_nlu_retries` says so. Every failure (server down, deadline,
refusal) raises `NluUnavailable`, which the engine routes to `jarvis_error`.

Riva answers with its own label names; they are mapped to the flows' labels with
`callsense.dialog.nlu.labels` (NeMo training labels such as `find_the_store` and `unknown`
become `store_location` and `nomatch.none`; a domain-less intent such as `rainfall_yes_no`
with domain `weather` becomes `weather.rainfall_yes_no`; BIO slot labels and context keys
become context slots).
"""

from __future__ import annotations

from callsense.core.riva_client import RivaConnection
from callsense.core.settings import Settings
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NO_MATCH, NluBackend, NluResult, NluUnavailable, nlu_backends

RIVA_EXTRA_HINT = "pip install callsense[riva]  (nvidia-riva-client)"
MAX_QUERY_CHARS = 1000

#: Slot names of Riva's pretrained weather/misty models -> context keys.
RIVA_SLOT_ALIASES: dict[str, str] = {
    "weatherplace": "location",
    "current_location": "location",
    "place": "location",
    "city": "location",
    "weathertime": "time",
    "datetime": "time",
    "date": "time",
}


def riva_nlp_modules():
    """(`riva.client`, `riva_nlp_pb2`), or NluUnavailable naming the extra to install."""
    try:
        import riva.client
        import riva.client.proto.riva_nlp_pb2 as nlp_pb
    except ImportError:
        raise NluUnavailable(f"the riva NLU backend needs the nvidia-riva-client package: {RIVA_EXTRA_HINT}") from None
    return riva.client, nlp_pb


def _clean_token(token: str) -> str:
    token = token.replace("[SEP]", " ").replace("[CLS]", " ")
    return " ".join(token.strip(" ?!.,;:\"").split())


def _slot_key(label: str) -> tuple[str | None, str]:
    """A Riva slot label -> (context key or None, the label without its BIO prefix)."""
    kind = label[2:] if label[:2] in ("B-", "I-") else label
    if kind in labels.CONTEXT_SLOT_KEYS:  # riva-serve sends context keys
        return kind, kind
    if kind in labels.SLOT_TYPE_TO_CONTEXT_KEY:  # NeMo training slot types
        return labels.SLOT_TYPE_TO_CONTEXT_KEY[kind], kind
    if kind.lower() in RIVA_SLOT_ALIASES:
        return RIVA_SLOT_ALIASES[kind.lower()], kind
    return (kind or None), kind  # a custom model's own slot name: kept as it is


def result_from_response(response, text: str, confidence_threshold: float = 0.5) -> NluResult:
    """An `AnalyzeIntentResponse` -> NluResult with flow labels and context slots."""
    name = response.intent.class_name
    domain = response.domain_str or response.domain.class_name
    if "." not in name and domain and f"{domain}.{name}" in labels.INTENT_TO_TRAINING:
        name = f"{domain}.{name}"
    intent = labels.to_flow_intent(name)
    confidence = float(response.intent.score)
    if confidence < confidence_threshold:
        intent = NO_MATCH

    groups: list[tuple[str, str, list[str]]] = []  # (key, slot type, tokens)
    for slot in response.slots:
        if not slot.label:
            continue
        label = slot.label[0].class_name
        key, kind = _slot_key(label)
        token = _clean_token(slot.token)
        if key is None or not token:
            continue
        if groups and groups[-1][0] == key and not label.startswith("B-"):
            if token.startswith("##"):
                groups[-1][2][-1] += token[2:]
            else:
                groups[-1][2].append(token)
        else:
            groups.append((key, kind, [token]))
    slots: dict[str, str] = {}
    for key, kind, tokens in groups:
        if key in slots:
            continue  # the first span of each key wins, as in labels.slots_from_tags
        if key in labels.VALUE_IS_TYPE and kind in labels.SLOT_TYPE_TO_CONTEXT_KEY:
            slots[key] = kind  # "cheapest" -> sort = "cost.low"
        else:
            slots[key] = " ".join(tokens)

    tokens = labels.tokenize(text)
    taggable = {k: v for k, v in slots.items() if k in labels.CONTEXT_KEY_TO_SLOT_TYPE}
    return NluResult(intent, confidence, slots, tokens, labels.tags_from_slots(tokens, taggable))


@nlu_backends.register("riva")
class RivaNlu(NluBackend):
    """Settings read: the `riva_*` connection fields, `riva_language`, `riva_nlu_domain`
    (sent as AnalyzeIntentOptions.domain; empty lets the server pick), `riva_nlu_timeout_s`,
    `riva_nlu_retries`, `riva_nlu_confidence_threshold` and `nlu_min_confidence`."""

    name = "riva"

    def __init__(self, settings: Settings | None = None, *, timeout_s: float | None = None,
                 retries: int | None = None, domain: str | None = None, confidence_threshold: float | None = None):
        settings = settings if settings is not None else Settings()
        riva_client, self._pb = riva_nlp_modules()
        self.timeout_s = float(timeout_s or settings.riva.nlu_timeout_s)
        self.retries = int(retries if retries is not None else settings.riva.nlu_retries)
        self.domain = domain if domain is not None else settings.riva.nlu_domain
        self.language = settings.riva.language
        threshold = settings.riva.nlu_confidence_threshold if confidence_threshold is None else float(confidence_threshold)
        self.confidence_threshold = max(threshold, settings.dialog.nlu_min_confidence)
        self.url = settings.riva.url
        self._conn = RivaConnection(settings.model_copy(update={"riva_timeout_s": self.timeout_s}), setup_error=NluUnavailable)
        self._service = riva_client.NLPService(self._conn.auth)

    def close(self) -> None:
        self._conn.close()

    def parse(self, text: str) -> NluResult:
        text = text if isinstance(text, str) else ""
        if not labels.tokenize(text):
            return NluResult(NO_MATCH, 0.0)
        query = " ".join(text.split())[:MAX_QUERY_CHARS]
        options = self._pb.AnalyzeIntentOptions(lang=self.language, domain=self.domain)

        response = self._conn.call_future("NLP AnalyzeIntent", self.domain,
                                          lambda: self._service.analyze_intent(query, options, future=True),
                                          unavailable=NluUnavailable, permanent=NluUnavailable, retries=self.retries)
        return result_from_response(response, text, self.confidence_threshold)
