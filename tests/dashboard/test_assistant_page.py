"""The Assistant page (dialog/dashboard_page.py).

In a real headless Chromium against `callsense dashboard`: sign in, type a question, hear
the reply, then speak the answer into `st.audio_input`. Chromium's fake capture device
plays a WAV file (spoken by espeak-ng) as the microphone, so the page records it, Whisper
transcribes it, and the reply is spoken back. The error paths, the mute toggle, "New
conversation" and who sees the page run under Streamlit's AppTest (`run_page` of
test_pages.py), which stages recordings with `audio_input(...).upload(...)`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

import callsense.dialog.dashboard_page as assistant_module
from callsense.audio.pcm import wav_bytes
from callsense.asr.tts.base import create_tts_engine
from callsense.core.settings import Settings
from callsense.dashboard.data import User
from callsense.dashboard.registry import pages_for, registered
from callsense.dialog.voice import REPEAT_PLEASE
from callsense.store.dialog_tables import DialogTurn

from test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, no_exceptions, shot, sign_in
from test_pages import run_page, texts
from dash_support import serve_dashboard

KEYWORDS = {"CALLSENSE_NLU_BACKEND": "keywords"}
GREETING = "Hi, I'm NARA, your retail assistant."


def spoken_wav(text: str, rate: int = 48000, pad_s: float = 0.6) -> bytes:
    """A user's words as a microphone would give them: silence, the words, silence."""
    clip = create_tts_engine(Settings()).synthesize(text, sample_rate=rate)
    pad = np.zeros(int(pad_s * rate), np.float32)
    return wav_bytes(np.concatenate([pad, clip.samples, pad]), rate)


@pytest.fixture(scope="module")
def microphone(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mic") / "weather-in-seattle.wav"
    path.write_bytes(spoken_wav("What's the weather in Seattle?"))
    return path


@pytest.fixture(scope="module")
def browser_with_microphone(microphone):
    """test_browser's Chromium, with a fake capture device that plays `microphone` once."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install-system-deps.sh (Debian package `chromium`)",
                    pytrace=False)
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}%noloop"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


LAST_REPLY_PLAYS = ("() => { const a = [...document.querySelectorAll('[data-testid=stChatMessage] audio')].at(-1); "
                    "return a && a.autoplay && (!a.paused || a.ended); }")
#: The microphone widget's clock ("MM:SS") has reached 4 s: the fake capture device has
#: played the whole question (about 3 s with its silence) into the recording.
RECORDED_4_S = ("() => { const t = document.querySelector('[data-testid=stAudioInput] "
                "[data-testid=stAudioInputWaveformTimeCode]'); return !!t && t.innerText.trim() >= '00:04'; }")
#: Generous deadlines (ms) for what the page does after a turn: reply players are attached
#: and start after the reply text is shown, and a loaded machine may take a while.
ATTACHED_MS = 60_000


def test_type_a_question_then_speak_the_next_one(empty_store, browser_with_microphone, tmp_path):
    context = browser_with_microphone.new_context(viewport=VIEWPORT)
    context.grant_permissions(["microphone"])
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        with serve_dashboard(empty_store.env, tmp_path / "dash.log", KEYWORDS) as served:
            try:
                sign_in(pg, served.url, "ag-1", "assistant")  # an agent: every signed-in role sees the page
                pg.get_by_role("heading", name="Assistant").wait_for()
                pg.get_by_text(GREETING).wait_for()
                replies = pg.locator("[data-testid=stChatMessage] audio")
                replies.first.wait_for(state="attached")

                box = pg.get_by_placeholder("Ask about the weather, stores or prices")
                box.fill("what's the weather?")
                box.press("Enter")
                pg.get_by_text("For which location?").wait_for()
                expect(replies).to_have_count(2, timeout=ATTACHED_MS)  # the reply's player comes after its text
                pg.wait_for_function(LAST_REPLY_PLAYS, timeout=ATTACHED_MS)  # spoken without a click
                no_exceptions(pg)

                # Speak: the fake microphone plays "What's the weather in Seattle?" (about 3 s with its silence).
                pg.get_by_role("button", name="Record").click()
                pg.wait_for_function(RECORDED_4_S, timeout=ATTACHED_MS)
                pg.get_by_role("button", name="Stop recording").click()
                started = time.monotonic()
                heard = pg.locator("[data-testid=stChatMessage]").filter(has_text="spoken · ASR confidence")
                heard.wait_for()
                print(f"recording stopped -> transcript shown in {time.monotonic() - started:.1f} s: {heard.inner_text()!r}")
                assert "weather in seattle" in heard.inner_text().lower()
                pg.get_by_text("In Seattle today").wait_for()
                expect(replies).to_have_count(3, timeout=ATTACHED_MS)
                pg.wait_for_function(LAST_REPLY_PLAYS, timeout=ATTACHED_MS)
                last = pg.locator("[data-testid=stChatMessage]").last
                last.get_by_text("Details").click()
                last.get_by_text("first reply audio after").wait_for()
                no_exceptions(pg)
                shot(pg, "09-assistant")
            except Exception:
                shot(pg, "09-assistant-failed")
                raise
    finally:
        context.close()

    with empty_store.engine.connect() as conn:
        rows = conn.execute(select(DialogTurn).order_by(DialogTurn.turn)).all()
    assert [(r.channel, r.intent) for r in rows] == [("text", "weather.weather"), ("voice", "weather.weather")]
    assert rows[0].asr_confidence is None and 0 < rows[1].asr_confidence <= 1
    assert "weather in seattle" in rows[1].text.lower() and rows[1].reply.startswith("In Seattle today")
    assert rows[0].session_id == rows[1].session_id and rows[0].session_id.startswith("dash-ag-1-")


@pytest.fixture
def assistant_page_registered():
    """The page in the registry, for run_page (test_pages' registry test registers its own
    "assistant" stand-in and then removes that key)."""
    import importlib

    if not any(p.key == "assistant" and p.render.__module__ == assistant_module.__name__ for p in registered()):
        importlib.reload(assistant_module)


def test_recordings_mute_and_new_conversation(empty_store, monkeypatch, assistant_page_registered):
    monkeypatch.setenv("CALLSENSE_NLU_BACKEND", "keywords")
    at = run_page(empty_store, "assistant", "maria")
    assert GREETING in texts(at) and len(at.get("audio")) == 1
    session = at.session_state["assistant.session"]

    # A recording that is not audio: one line, no turn.
    at.audio_input(key="assistant.mic").upload("broken.wav", b"RIFF and nothing else")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Could not use the recording: cannot read the recording: "
                                           "not an audio file (FFmpeg cannot read it)"]
    # Silence: asked to say it again, spoken.
    at.audio_input(key="assistant.mic").upload("silence.wav", wav_bytes(np.zeros(32000, np.float32), 16000))
    at.run()
    assert not at.error and "(no speech heard)" in texts(at) and REPEAT_PLEASE in texts(at)
    assert len(at.get("audio")) == 2
    # A spoken question, the transcript as the user's turn.
    at.audio_input(key="assistant.mic").upload("q.wav", spoken_wav("What does a coffee maker cost in Seattle?", 16000))
    at.run(timeout=120)
    assert not at.exception and not at.error
    page_text = texts(at).lower()
    assert "coffee" in page_text and "asr confidence 0." in page_text and "fremont hardware" in page_text
    assert len(at.get("audio")) == 3
    at.run()  # a rerun does not answer the same recording twice
    assert len(at.chat_message) == 5  # greeting, silence + "say it again", question + answer

    # Muted: replies are shown, not spoken (no players at all).
    at.toggle(key="assistant.mute").set_value(True).run()
    at.chat_input(key="assistant.chat").set_value("will it rain tomorrow in Seattle?").run()
    assert "seattle tomorrow" in texts(at).lower() and len(at.get("audio")) == 0

    next(b for b in at.button if b.label == "New conversation").click().run()
    assert at.session_state["assistant.session"] != session and len(at.chat_message) == 1
    assert GREETING in texts(at)

    with empty_store.engine.connect() as conn:
        rows = conn.execute(select(DialogTurn).order_by(DialogTurn.id)).all()
    assert [(r.session_id, r.channel) for r in rows] == [(session, "voice"), (session, "text")]  # silence is no turn
    assert rows[0].asr_confidence is not None and rows[0].intent == "price_check"


def test_every_signed_in_role_sees_the_assistant(assistant_page_registered):
    for roles in (["manager"], ["agent"], ["reviewer"]):
        user = User("u", frozenset(roles), agent_id="ag-1")
        assert "assistant" in [p.key for p in pages_for(user, ["callsense.dialog.dashboard_page"])]
