"""The Riva NLU backend against real gRPC servers on localhost: riva-serve's own
AnalyzeIntent service (when that package is present), a server that answers like a Riva
deployment, a slow server and no server at all."""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
import threading
import time
from concurrent import futures

import pytest

from callsense.core.settings import Settings
from callsense.dialog.nlu.base import NO_MATCH, NluUnavailable, nlu_backends

grpc = pytest.importorskip("grpc", reason="nvidia-riva-client / grpcio not installed: pip install callsense[riva]")
pytest.importorskip("riva.client", reason="nvidia-riva-client not installed: pip install callsense[riva]")
import riva.client.proto.riva_nlp_pb2 as nlp_pb  # noqa: E402
import riva.client.proto.riva_nlp_pb2_grpc as nlp_grpc  # noqa: E402

from callsense.dialog.nlu.riva import RivaNlu, riva_nlp_modules  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(servicer) -> tuple[object, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    nlp_grpc.add_RivaLanguageUnderstandingServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def token(text: str, label: str, score: float = 0.9):
    return nlp_pb.TokenClassValue(token=text, label=[nlp_pb.Classification(class_name=label, score=score)])


class ScriptedRiva(nlp_grpc.RivaLanguageUnderstandingServicer):
    """Answers AnalyzeIntent the way a Riva deployment's models do; records the requests.

    `hang=True`: a server that never answers: each request is held until the client gives
    up on it (its RPC is cancelled) or the test ends; `abandoned` records, per request,
    whether the client cancelled it."""

    def __init__(self, answers: dict[str, nlp_pb.AnalyzeIntentResponse], hang: bool = False):
        self.answers, self.hang, self.requests = answers, hang, []
        self.abandoned: list[bool] = []
        self.released = threading.Event()

    def AnalyzeIntent(self, request, context):
        self.requests.append(request)
        if self.hang:
            while context.is_active() and not self.released.wait(0.01):
                pass
            self.abandoned.append(not context.is_active())
        return self.answers.get(request.query, nlp_pb.AnalyzeIntentResponse())


RIVA_WEATHER = nlp_pb.AnalyzeIntentResponse(
    intent=nlp_pb.Classification(class_name="rainfall_yes_no", score=0.93),
    domain_str="weather", domain=nlp_pb.Classification(class_name="weather", score=0.99),
    slots=[token("next", "B-weathertime"), token("week", "I-weathertime"),
           token("los", "B-weatherplace"), token("angeles?", "I-weatherplace")],
)
NEMO_LABELS = nlp_pb.AnalyzeIntentResponse(
    intent=nlp_pb.Classification(class_name="find_the_store", score=0.88),
    slots=[token("best", "B-rating.high"), token("pasta", "B-item.type")],
)
UNSURE = nlp_pb.AnalyzeIntentResponse(intent=nlp_pb.Classification(class_name="weather.weather", score=0.2))


@pytest.fixture()
def scripted():
    servicer = ScriptedRiva({"will it rain next week in Los Angeles?": RIVA_WEATHER,
                             "where can i get the best pasta": NEMO_LABELS, "hmm weather": UNSURE})
    server, url = serve(servicer)
    yield servicer, url
    server.stop(0)


def test_registry_gives_the_riva_backend():
    assert nlu_backends.get("riva") is RivaNlu


def test_riva_labels_become_flow_labels_and_context_slots(scripted):
    servicer, url = scripted
    nlu = RivaNlu(Settings(riva_url=url))
    r = nlu.parse("will it rain next week in Los Angeles?")
    assert r.intent == "weather.rainfall_yes_no"
    assert r.confidence == pytest.approx(0.93)
    assert r.slots == {"time": "next week", "location": "los angeles"}
    assert r.tags[-2:] == ["B-location", "I-location"]
    assert servicer.requests[0].options.lang == "en-US"

    r = nlu.parse("where can i get the best pasta")
    assert r.intent == "store_location"  # the training label find_the_store, mapped
    assert r.slots == {"sort": "rating.high", "item": "pasta"}


def test_low_confidence_is_no_match(scripted):
    _, url = scripted
    assert RivaNlu(Settings(riva_url=url)).parse("hmm weather").intent == NO_MATCH


def test_empty_input_never_reaches_the_server(scripted):
    servicer, url = scripted
    assert RivaNlu(Settings(riva_url=url)).parse("  ?! ").intent == NO_MATCH
    assert servicer.requests == []


def test_no_server_raises_nlu_unavailable_at_once_without_retries(caplog):
    nlu = RivaNlu(Settings(riva_url=f"127.0.0.1:{free_port()}"))
    # UNAVAILABLE, not DEADLINE_EXCEEDED: the call failed fast instead of waiting for a
    # server to come up until its deadline; one try: a dialog turn is not held by retries.
    with caplog.at_level(logging.WARNING):
        with pytest.raises(NluUnavailable, match=r"Riva NLP AnalyzeIntent at 127\.0\.0\.1:\d+ .*after 1 try: UNAVAILABLE"):
            nlu.parse("will it rain in boston")
    assert [r.getMessage() for r in caplog.records if "retry" in r.getMessage()] == []


def test_a_server_slower_than_the_deadline_raises_nlu_unavailable():
    servicer = ScriptedRiva({}, hang=True)
    server, url = serve(servicer)
    try:
        # The server never answers, so any deadline is missed; 2 s leaves a loaded machine time
        # to connect and send the request first.
        nlu = RivaNlu(Settings(riva_url=url), timeout_s=2.0)
        with pytest.raises(NluUnavailable, match=r"DEADLINE_EXCEEDED: no answer within 2 s"):
            nlu.parse("will it snow")
        # One request, given up on: the client cancelled it rather than waiting for it.
        deadline = time.monotonic() + 60
        while not servicer.abandoned and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(servicer.requests) == 1 and servicer.abandoned == [True]
    finally:
        servicer.released.set()
        server.stop(0)


def test_missing_client_package_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "riva" or m.startswith("riva.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "riva", None)
    with pytest.raises(NluUnavailable, match=r"pip install callsense\[riva\]"):
        riva_nlp_modules()


@pytest.mark.skipif(importlib.util.find_spec("callsense.serve.riva") is None,
                    reason="callsense.serve.riva does not exist here (riva-serve is built in the Riva issue)")
def test_against_riva_serve_analyze_intent():
    """riva-serve's AnalyzeIntent (backed by the embedded model) and this client agree with
    the embedded backend itself."""
    services = pytest.importorskip("callsense.serve.riva.services")
    from callsense.dialog.nlu.embedded import EmbeddedNlu

    settings = Settings()
    server, url = serve(services.LanguageUnderstandingService(settings))
    try:
        nlu = RivaNlu(Settings(riva_url=url), timeout_s=10)
        embedded = EmbeddedNlu(settings)
        for text in ["will it rain next week in Los Angeles?", "where can i get the best pasta",
                     "how much is laptop memory", "tell me a joke"]:
            remote, local = nlu.parse(text), embedded.parse(text)
            assert remote.intent == local.intent, text
            assert remote.slots == local.slots, text
        assert nlu.parse("will it rain next week in Los Angeles?").slots["location"] == "los angeles"
    finally:
        server.stop(0)
