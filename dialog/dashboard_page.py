"""Assistant: talk to the retail assistant in the dashboard, by text or by voice.

A chat transcript, a text box (`st.chat_input`) and a microphone (`st.audio_input`: the
recording goes through the ASR engine and its transcript becomes the user's turn). Replies
are spoken through the TTS engine (`st.audio(..., autoplay=True)`) unless "Mute replies"
is on. One conversation per browser session; "New conversation" starts another (the old
one's turns stay in the archive, like every turn, voice ones with their ASR confidence).
"Conversation flows" draws the flows the assistant runs (`callsense dialog graph`): the
SVG when Graphviz's `dot` is installed, else the DOT drawn in the browser, and the Mermaid
and DOT sources to copy.
The engines follow the settings: CALLSENSE_ASR_ENGINE / CALLSENSE_TTS_ENGINE = riva and
CALLSENSE_RIVA_URL talk to a Riva server instead of the embedded Moonshine (or Whisper) and espeak-ng.
"""

from __future__ import annotations

import re
import subprocess
import threading
import uuid
from dataclasses import dataclass, field

import streamlit as st

from callsense.dashboard.registry import PageContext, page
from callsense.dialog.voice import Heard, VoiceAssistant, VoiceInputError, VoiceTurn, VoiceUnavailable

SESSION_KEY = "assistant.session"
HISTORY_KEY = "assistant.history"
HANDLED_KEY = "assistant.handled"  # file ids of recordings already answered
MUTE_KEY = "assistant.mute"
MIC_KEY = "assistant.mic"
CHAT_KEY = "assistant.chat"


@dataclass
class Entry:
    """One bubble of the transcript."""

    role: str  # user | assistant
    text: str
    voice: bool = False  # a user turn that was spoken
    confidence: float | None = None  # its ASR confidence
    audio: bytes | None = None  # the spoken reply (WAV)
    details: dict = field(default_factory=dict)
    warning: str | None = None


@st.cache_resource(show_spinner="Starting the assistant ...")
def voice_assistant(settings_key: str, _settings, _db) -> VoiceAssistant:
    """One assistant per settings, shared by every browser session of this server. The ASR
    and TTS engines load and warm up in the background (the first decode of a process is
    several times slower), so typed questions are answered meanwhile; one that cannot load
    says so at the first turn that needs it."""
    from callsense.dialog.assistant import Assistant

    voice = VoiceAssistant(_settings, assistant=Assistant(_settings, db=_db))

    def warm_up() -> None:
        try:
            voice.preload()
        except VoiceUnavailable:
            pass

    threading.Thread(target=warm_up, name="assistant-warm-up", daemon=True).start()
    return voice


def new_session_id(username: str) -> str:
    return f"dash-{re.sub(r'[^A-Za-z0-9_.-]', '_', username)[:40]}-{uuid.uuid4().hex[:10]}"


@page("assistant", title="Assistant", icon=":material/support_agent:", order=60)
def assistant_page(ctx: PageContext) -> None:
    st.title("Assistant")
    state = st.session_state
    if SESSION_KEY not in state:
        state[SESSION_KEY] = new_session_id(ctx.user.username)
        state[HISTORY_KEY] = []
    handled: set[str] = state.setdefault(HANDLED_KEY, set())
    try:
        voice = voice_assistant(ctx.settings.model_dump_json(), ctx.settings, ctx.engine)
    except Exception as e:  # noqa: BLE001 - bad flows, a missing NLU model: one line, no traceback
        st.error(f"The assistant cannot start: {' '.join(str(e).split())[:300]}")
        return

    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"Ask about the weather, the nearest store or the price of an item, by typing or speaking. "
                   f"{voice.describe()} · session `{state[SESSION_KEY]}`")
        muted = st.toggle("Mute replies", key=MUTE_KEY, help="Show the replies without speaking them.")
        if st.button("New conversation", icon=":material/add_comment:", key="assistant.new"):
            state[SESSION_KEY] = new_session_id(ctx.user.username)
            state[HISTORY_KEY] = []
    history: list[Entry] = state[HISTORY_KEY]
    session_id = state[SESSION_KEY]
    with st.expander("Conversation flows", icon=":material/account_tree:"):
        show_flow_graph(voice.assistant.flows)

    transcript = st.container(key="assistant-transcript")
    with transcript:
        for entry in history:
            show(entry, muted=muted, autoplay=False)
    recording = st.audio_input("Speak to the assistant", key=MIC_KEY, sample_rate=16000,
                               help="Record a question; what the speech recognition heard becomes your turn.")
    typed = st.chat_input("Ask about the weather, stores or prices", key=CHAT_KEY)

    with transcript:
        if not history:
            converse(voice, session_id, history, muted=muted)
        if typed and typed.strip():
            converse(voice, session_id, history, muted=muted, text=typed)
        elif recording is not None and recording.file_id not in handled:
            handled.add(recording.file_id)
            converse(voice, session_id, history, muted=muted, audio=recording.getvalue())


@st.cache_data(show_spinner=False, max_entries=8)
def flow_drawings(_flows, key: str) -> tuple[str, str, str | None]:
    """(Mermaid, DOT, SVG or None) of the flows; `key` names them for the cache."""
    from callsense.dialog.flows.graph import to_dot, to_mermaid, to_svg

    dot = to_dot(_flows)
    try:
        svg = to_svg(dot)
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        svg = None
    return to_mermaid(_flows), dot, svg.decode("utf-8") if svg else None


def show_flow_graph(flows) -> None:
    from callsense.dialog.flows.graph import build_graph

    key = "|".join(f"{f.file}:{len(f.state_names)}" for f in flows.flows.values()) + f"|{len(flows.states)}"
    mermaid, dot, svg = flow_drawings(flows, key)
    g = build_graph(flows)
    unreachable = sorted(g.unreachable)
    st.caption(f"{len(flows.flows)} flows, {len(flows.states)} states, {len(g.edges)} arrows; "
               + (f"unreachable (dashed red): {', '.join(unreachable)}" if unreachable else "every state is reachable")
               + ". The same drawings: `callsense dialog graph`.")
    drawing, mermaid_tab, dot_tab = st.tabs(["Graph", "Mermaid", "Graphviz DOT"])
    with drawing:
        if svg is not None:
            st.image(svg)
        else:
            st.graphviz_chart(dot)
    with mermaid_tab:
        st.code(mermaid, language="text")
        st.download_button("Download flows.mmd", mermaid, file_name="flows.mmd", key="assistant.flows.mmd")
    with dot_tab:
        st.code(dot, language="dot")
        st.download_button("Download flows.dot", dot, file_name="flows.dot", key="assistant.flows.dot")


def converse(voice: VoiceAssistant, session_id: str, history: list[Entry], *, muted: bool, **what) -> None:
    """One turn (the greeting when `what` is empty), shown as it happens and kept in `history`."""
    if "text" in what:
        user = Entry("user", what["text"])
        history.append(user)
        show(user, muted=muted)
    try:
        with st.spinner("Listening ..." if "audio" in what else "Thinking ..."):
            turn = None
            for event in voice.stream_turn(session_id, spoken=not muted, **what):
                if isinstance(event, Heard):
                    user = Entry("user", event.text, voice=True, confidence=event.confidence)
                    history.append(user)
                    show(user, muted=muted)
                elif isinstance(event, VoiceTurn):
                    turn = event
    except VoiceInputError as e:
        st.error(f"Could not use the recording: {e}", icon=":material/mic_off:")
        return
    except VoiceUnavailable as e:
        st.error(f"{e}. Type your question instead.", icon=":material/mic_off:")
        return
    if turn is None or not turn.reply.text:
        return
    reply = turn.reply
    t = turn.timings
    details = {"intent": reply.intent, "confidence": reply.confidence, "slots": reply.slots, "state": reply.state}
    if turn.asr_confidence is not None:
        details["asr_confidence"] = turn.asr_confidence
    if reply.error:
        details["error"] = reply.error
    if t.first_audio_ms is not None:
        details["latency"] = (f"first reply audio after {t.first_audio_ms:.0f} ms (ASR {t.asr_ms:.0f} ms, "
                              f"dialog {t.dialog_ms:.0f} ms, TTS first sentence {t.tts_first_ms:.0f} ms)")
    entry = Entry("assistant", reply.text, audio=turn.audio, details=details, warning=turn.speech_error)
    history.append(entry)
    show(entry, muted=muted, autoplay=True)


def show(entry: Entry, *, muted: bool, autoplay: bool = False) -> None:
    with st.chat_message(entry.role):
        if entry.role == "user" and entry.voice and not entry.text:
            st.caption(":material/mic: (no speech heard)")
            return
        st.markdown(escape_markdown(entry.text))
        if entry.voice:
            conf = f" · ASR confidence {entry.confidence:.2f}" if entry.confidence is not None else ""
            st.caption(f":material/mic: spoken{conf}")
        if entry.warning:
            st.warning(f"{entry.warning}; the reply is shown as text only.", icon=":material/volume_off:")
        if entry.audio and not muted:
            st.audio(entry.audio, format="audio/wav", autoplay=autoplay)
        if entry.details:
            with st.expander("Details"):
                st.json(entry.details, expanded=True)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|$~])")


def escape_markdown(text: str) -> str:
    """Replies are plain text: prices ("$39 ... $12") must not turn into LaTeX, nor '*' into emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)

