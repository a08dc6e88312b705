"""Chats and emails as conversations of mode `text` (TR-4910: "text files representing chat
logs, emails").

A text conversation has no audio, so it skips the segment and transcribe stages: this source
builds what those two stages build for a call (`CallOpened` with mode "text", `CallSegmented`,
and one `TranscribedUtterance` per message with its sentences), and they enter the pipeline
at the sentiment stage's topic (`transcripts`): sentiment and store are the same code as for
calls, in-process (`callsense process`) or over Kafka (`callsense produce`).

Inputs (by file suffix):

- `.jsonl` / `.ndjson` (and a `.txt`/`.log` whose first character is `{`): a chat, one JSON
  object per line: `{"speaker": ..., "text": ..., "time": ...}` (`time` optional: seconds,
  an ISO date, or a clock time `12:01:33`).
- `.txt` / `.log` / `.chat`: a chat log of `Name: text` lines, optionally starting with a
  `[12:01:33]` (or `[2024-05-01 12:01:33]`) timestamp; a line that is not `Name: text`
  continues the message before it.
- `.eml`: one email; `.mbox`: a mailbox. Emails become one conversation per thread (linked by
  Message-ID / In-Reply-To / References, and by the subject without `Re:`/`Fwd:`), in date
  order. Quoted text is removed from every message: lines starting with `>`, "On ... wrote:"
  attributions, everything after a `-- ` signature line or an "-----Original Message-----" /
  Outlook `From:`/`Sent:` header block, and the header lines of forwarded messages.

Speakers: a message is the agent's when its speaker name or e-mail address is listed in
`CALLSENSE_TEXT_AGENT_NAMES` (comma separated, case-insensitive, `@domain` matches a whole
domain); everyone else is the customer. When the setting is empty, or nobody of a conversation
with several participants is listed, its first speaker is the agent (a lone writer who is not
listed is the customer). Agent messages are channel 0, customer messages channel 1 (speakers
"agent" and "customer").

Times: when every message has a time, utterances start at their time relative to the first
message (an estimated reading time long, never past the next message); otherwise message n
starts at n seconds (times are message order).

Limits: the file is checked and read capped at `text_max_input_bytes` before it is parsed,
decoded as UTF-8 with replacement, and refused beyond `text_max_messages` messages; a message
is cut at `text_max_message_chars`. Messages are PII-redacted like transcripts
(`CALLSENSE_PII_REDACTION`, `callsense.nlp.pii`). A malformed file raises `BadInput` with the reason (the
caller dead-letters it and goes on with the batch).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from callsense.core.errors import BadInput
from callsense.core.events import (
    CallOpened, CallSegmented, DeadLetter, EventModel, Sentence, TranscribedUtterance,
)
from callsense.core.settings import Settings
from callsense.ingest.sources import TEXT_SUFFIXES, call_id_for, display_name, read_input
from callsense.nlp.sentences import join_words, split_sentences

CHAT_JSON_SUFFIXES = {".jsonl", ".ndjson"}
CHAT_LOG_SUFFIXES = {".txt", ".log", ".chat"}
EMAIL_SUFFIXES = {".eml"}
MBOX_SUFFIXES = {".mbox"}
assert TEXT_SUFFIXES == CHAT_JSON_SUFFIXES | CHAT_LOG_SUFFIXES | EMAIL_SUFFIXES | MBOX_SUFFIXES

SPEAKERS = ["agent", "customer"]
# Reading time given to a message when times come from timestamps (seconds per word, bounds).
_SECONDS_PER_WORD = 0.4
_MIN_S, _MAX_S = 1.0, 60.0


def is_text_input(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES


@dataclass
class Message:
    name: str  # as written: a chat name, or an email's display name
    address: str  # lower-case e-mail address ("" for chats)
    text: str
    time: float | None = None  # seconds: epoch when `absolute`, else seconds of the day / as given
    absolute: bool = False


@dataclass
class Conversation:
    messages: list[Message]
    subject: str = ""
    model: str = "text:chat"  # stored as the utterances' asr_model


@dataclass
class TextCall:
    """One conversation's events, ready to publish, and what the CLI prints about it."""

    call_id: str
    source_name: str
    events: list[EventModel] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def read_text_input(path: Path, settings: Settings) -> bytes:
    """The file's bytes, refused before reading when it is not a regular file or too large."""
    limit = settings.pipeline.text_max_input_bytes
    try:
        st = os.stat(path)
    except OSError as e:
        raise BadInput(f"cannot read: {e.strerror}") from None
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise BadInput(f"file too large: {st.st_size} bytes, more than the limit of {limit} (CALLSENSE_TEXT_MAX_INPUT_BYTES)")
    data = read_input(path, limit)  # regular file, capped read
    if not data.strip():
        raise BadInput("empty file")
    return data


def _clean(s: str) -> str:
    """Text that every store accepts: no lone surrogates (undecodable bytes) and no NULs."""
    return s.encode("utf-8", "surrogatepass").decode("utf-8", "replace").replace("\x00", "")


def _decode(data: bytes) -> str:
    return _clean(data.decode("utf-8", "replace")).lstrip("\ufeff")


# --------------------------------------------------------------------------- times

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*([AaPp][Mm])?$")


def parse_time(value, where: str) -> tuple[float | None, bool]:
    """(seconds, absolute) from a number, a clock time or an ISO date; BadInput otherwise."""
    if value is None or value == "":
        return None, False
    if isinstance(value, bool):
        raise BadInput(f"{where}: time {value!r} is not a number, clock time or date")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise BadInput(f"{where}: time {value!r} is not finite")
        return float(value), value > 1e9
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
            if math.isfinite(number):
                return number, number > 1e9
        except ValueError:
            pass
        m = _CLOCK.match(text)
        if m:
            h, mnt, sec = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            frac = float(f"0.{m.group(4)}") if m.group(4) else 0.0
            if m.group(5):
                h = h % 12 + (12 if m.group(5).lower() == "pm" else 0)
            if h < 24 and mnt < 60 and sec < 61:
                return h * 3600 + mnt * 60 + sec + frac, False
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(), True
        except (ValueError, OverflowError, OSError):
            pass
    raise BadInput(f"{where}: time {str(value)[:40]!r} is not a number, clock time or date")


# --------------------------------------------------------------------------- chats


def parse_chat_jsonl(text: str, settings: Settings) -> list[Message]:
    out: list[Message] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise BadInput(f"line {n}: not JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(obj, dict):
            raise BadInput(f"line {n}: not a JSON object")
        speaker = next((obj[k] for k in ("speaker", "from", "name", "author") if k in obj), None)
        body = next((obj[k] for k in ("text", "message", "body") if k in obj), None)
        if not isinstance(speaker, str) or not speaker.strip():
            raise BadInput(f"line {n}: no speaker (a non-empty string)")
        if not isinstance(body, str):
            raise BadInput(f"line {n}: no text (a string)")
        t, absolute = parse_time(next((obj[k] for k in ("time", "timestamp", "ts") if k in obj), None), f"line {n}")
        _append(out, Message(name=_clean(speaker.strip()), address="", text=_clean(body), time=t, absolute=absolute), settings)
    if not out:
        raise BadInput("no messages")
    return out


_LOG_LINE = re.compile(r"^\s*(?:\[(?P<time>[^\]\n]{1,40})\]\s*)?(?P<who>[^:\[\]\n]{1,64}?)\s*:(?:\s+|$)(?P<text>.*)$")


def parse_chat_log(text: str, settings: Settings) -> list[Message]:
    out: list[Message] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = _LOG_LINE.match(line)
        if m and m.group("who").strip() and not m.group("who").strip().isdigit():
            t, absolute = parse_time(m.group("time"), f"line {n}") if m.group("time") else (None, False)
            _append(out, Message(name=m.group("who").strip(), address="", text=m.group("text"), time=t, absolute=absolute),
                    settings)
        elif not line.strip():
            if out:
                out[-1].text += "\n"
        elif out:
            out[-1].text += "\n" + line.strip()  # a message's next line
        else:
            raise BadInput(f"line {n}: not a 'Name: text' chat line")
    if not out:
        raise BadInput("no 'Name: text' chat lines")
    return out


def _append(out: list[Message], msg: Message, settings: Settings) -> None:
    if len(out) >= settings.pipeline.text_max_messages:
        raise BadInput(f"more than {settings.pipeline.text_max_messages} messages (CALLSENSE_TEXT_MAX_MESSAGES)")
    out.append(msg)


# --------------------------------------------------------------------------- emails

_ID = re.compile(r"<([^<>\s]+)>")
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|sv|antw|tr)\s*(?:\[\d+\])?\s*:\s*|\[[^\]]{0,40}\]\s*)+", re.I)
_SIGNATURE = re.compile(r"^-- ?$")
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(?:original message|ursprüngliche nachricht)\s*-{2,}\s*$", re.I)
_FORWARDED = re.compile(r"^\s*(?:-{2,}\s*forwarded message\s*-{2,}|begin forwarded message:)\s*$", re.I)
_HEADER_LINE = re.compile(r"^\s*\*?(?:from|date|sent|subject|to|cc|reply-to)\*?:", re.I)
_ON_WROTE = re.compile(r"^\s*On\b.*\bwrote:\s*$", re.I)


def normalised_subject(subject: str) -> str:
    return re.sub(r"\s+", " ", _SUBJECT_PREFIX.sub("", subject or "")).strip().lower()


def strip_quoted(text: str) -> str:
    """An email body without what it quotes: `>` lines, "On ... wrote:" attributions,
    signatures (after `-- `), the original message below an "Original Message" or Outlook
    header block, and the header lines of a forwarded message."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if _SIGNATURE.match(line.rstrip("\n")) or _ORIGINAL.match(line):
            break
        if _HEADER_LINE.match(line) and s.lower().startswith(("from:", "*from:*")):
            block = [ln.strip().lower().lstrip("*") for ln in lines[i + 1:i + 6]]
            if any(b.startswith(("sent", "date")) for b in block) and any(b.startswith("subject") for b in block):
                break  # Outlook quotes the original under its headers
        if _FORWARDED.match(line):
            i += 1
            while i < len(lines) and (_HEADER_LINE.match(lines[i]) or (not lines[i].strip() and i + 1 < len(lines)
                                                                         and _HEADER_LINE.match(lines[i + 1]))):
                i += 1
            continue
        if s.startswith(">"):
            i += 1
            continue
        if _ON_WROTE.match(line):
            i += 1
            continue
        # "On Mon, 1 Jan 2024 at 10:00, Someone <a@b>\nwrote:" wrapped over two lines
        if s.startswith("On ") and i + 1 < len(lines) and re.search(r"\bwrote:\s*$", lines[i + 1]):
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def _html_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", markup)
    markup = re.sub(r"(?is)<blockquote\b.*?</blockquote\s*>", "\n", markup)  # quoted replies
    markup = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>", "\n", markup)
    return html.unescape(re.sub(r"(?s)<[^>]*>", "", markup))


def _body(msg) -> str:
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        part = None
    if part is None:
        if msg.is_multipart():
            return ""
        part = msg
    try:
        content = part.get_content()
    except Exception:
        payload = part.get_payload(decode=True) or b""
        try:
            content = payload.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:
            content = payload.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        content = _html_text(content)
    return content


@dataclass
class _Email:
    position: int
    message_id: str | None
    links: list[str]
    subject: str
    msg: Message


def _header(msg, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the parser cannot make sense of
        return ""
    return _clean(str(value)) if value is not None else ""


def parse_email(raw: bytes, position: int, where: str) -> _Email:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    sender = _header(msg, "From")
    if not sender:
        raise BadInput(f"{where}: not an email (no From header)")
    addresses = getaddresses([sender])
    name, address = addresses[0] if addresses else ("", "")
    address = address.strip().lower()
    if not (name.strip() or address):
        raise BadInput(f"{where}: not an email (unreadable From header)")
    t = None
    date = _header(msg, "Date")
    if date:
        try:
            t = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, OverflowError, IndexError):
            t = None
    ids = _ID.findall(_header(msg, "Message-ID"))
    links = _ID.findall(_header(msg, "In-Reply-To")) + _ID.findall(_header(msg, "References"))
    text = strip_quoted(_clean(_body(msg)))
    return _Email(position, ids[0] if ids else None, links, _header(msg, "Subject"),
                  Message(name=name.strip() or address, address=address, text=text, time=t, absolute=t is not None))


def split_mbox(data: bytes) -> list[bytes]:
    """An mbox file's messages (each without its `From ` separator line, `>From ` unescaped)."""
    if not data.lstrip(b"\r\n").startswith(b"From "):
        raise BadInput("not an mbox file: it does not start with a 'From ' line")
    starts = [m.start() for m in re.finditer(rb"(?m)^From [^\n]*\n", data)]
    out = []
    for k, s in enumerate(starts):
        chunk = data[s:starts[k + 1] if k + 1 < len(starts) else len(data)]
        body = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        out.append(re.sub(rb"(?m)^>(>*From )", rb"\1", body))
    return out


def email_threads(emails: list[_Email]) -> list[list[_Email]]:
    """Messages grouped into threads (Message-ID / In-Reply-To / References, and normalised
    subject), each thread in date order, threads in the order of their first message."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for e in emails:
        me = f"#{e.position:09d}"
        find(me)
        for ref in ([e.message_id] if e.message_id else []) + e.links:
            union(me, f"id:{ref}")
        subject = normalised_subject(e.subject)
        if subject:
            union(me, f"subject:{subject}")
    groups: dict[str, list[_Email]] = {}
    for e in emails:
        groups.setdefault(find(f"#{e.position:09d}"), []).append(e)
    threads = []
    for members in groups.values():
        if all(m.msg.time is not None for m in members):
            members.sort(key=lambda m: (m.msg.time, m.position))
        threads.append(members)
    threads.sort(key=lambda t: min(m.position for m in t))
    return threads


def parse_emails(raws: list[bytes], settings: Settings, single: bool) -> tuple[list[Conversation], list[str]]:
    """Conversations (one per thread) and notes on messages skipped (for non-fatal dead letters)."""
    if len(raws) > settings.pipeline.text_max_messages:
        raise BadInput(f"more than {settings.pipeline.text_max_messages} messages (CALLSENSE_TEXT_MAX_MESSAGES)")
    emails: list[_Email] = []
    skipped: list[str] = []
    seen_ids: set[str] = set()
    for k, raw in enumerate(raws):
        where = "email" if single else f"message {k + 1}"
        try:
            e = parse_email(raw, k, where)
        except BadInput as exc:
            if single:
                raise
            skipped.append(f"{exc}; skipped")
            continue
        if e.message_id and e.message_id in seen_ids:
            continue  # the same message twice in a mailbox
        if e.message_id:
            seen_ids.add(e.message_id)
        emails.append(e)
    if not emails:
        raise BadInput("no readable email in the file" + (f" ({skipped[0]})" if skipped else ""))
    convs = []
    for thread in email_threads(emails):
        convs.append(Conversation(messages=[e.msg for e in thread], subject=thread[0].subject, model="text:email"))
    return convs, skipped


# --------------------------------------------------------------------------- events


def _redactor(settings: Settings):
    """PII redaction of message texts, as the transcribe stage redacts what calls say (text
    conversations never pass that stage, so they are redacted here, with the same setting
    CALLSENSE_PII_REDACTION)."""
    from callsense.nlp.pii import PiiRedactor

    return PiiRedactor(settings.pipeline.pii_redaction)


def _agent_matcher(settings: Settings):
    names = [n.strip().lower() for n in settings.pipeline.text_agent_names if n.strip()]

    def is_agent(m: Message) -> bool:
        for n in names:
            if n.startswith("@") and m.address.endswith(n):
                return True
            if n in (m.name.lower(), m.address):
                return True
        return False

    return is_agent


@dataclass
class _Timed:
    text: str
    start: float
    end: float


def message_sentences(text: str, start: float, end: float) -> list[Sentence]:
    """A message's sentences, split on end punctuation (nlp/sentences.py) and at paragraph
    breaks, with times spread over the message's span by word position."""
    paragraphs = [p.split() for p in re.split(r"\n\s*\n", text)]
    n = sum(len(p) for p in paragraphs) or 1
    step = (end - start) / n
    sentences: list[Sentence] = []
    k = 0
    for words in paragraphs:
        timed = []
        for w in words:
            timed.append(_Timed(w, start + k * step, start + (k + 1) * step))
            k += 1
        for ws in split_sentences(timed):
            sentences.append(Sentence(index=len(sentences), text=join_words(ws), start=ws[0].start, end=ws[-1].end))
    return sentences


def _times(messages: list[Message]) -> list[tuple[float, float]]:
    if messages and all(m.time is not None for m in messages):
        times = []
        prev = None
        for m in messages:
            t = m.time
            if prev is not None and t < prev:
                # Clock times passing midnight; anything else out of order keeps the order.
                t = t + 86400 if not m.absolute and prev - t > 12 * 3600 else prev
            times.append(t)
            prev = t
        t0 = times[0]
        spans = []
        for i, (m, t) in enumerate(zip(messages, times)):
            start = t - t0
            length = min(max(len(m.text.split()) * _SECONDS_PER_WORD, _MIN_S), _MAX_S)
            if i + 1 < len(times) and times[i + 1] - t0 > start:
                length = min(length, times[i + 1] - t0 - start)
            spans.append((start, start + length))
        return spans
    return [(float(i), float(i + 1)) for i in range(len(messages))]


def conversation_events(conv: Conversation, *, call_id: str, source_name: str, settings: Settings,
                        agent_id: str | None = None, redactor=None) -> list[EventModel]:
    """CallOpened (mode text), one TranscribedUtterance per message (topic `transcripts`:
    the sentiment stage scores them), CallSegmented."""
    limit = settings.pipeline.text_max_message_chars
    messages = [m for m in conv.messages if m.text.strip()]
    for m in messages:
        m.text = m.text.strip()[:limit]
        if redactor is not None:
            m.text = _clean(redactor.redact(m.text).text)  # PII redaction of text conversations
    messages = [m for m in messages if m.text.strip()]
    if not messages:
        raise BadInput("no message with text")
    is_agent = _agent_matcher(settings)
    agents = {id(m) for m in messages if is_agent(m)}
    who = [m.address or m.name.lower() for m in messages]
    if not agents and (not settings.pipeline.text_agent_names or len(set(who)) > 1):
        # Nobody listed: the first speaker is the agent (a lone writer who is not listed, while
        # the setting lists agents, is a customer whose message got no answer yet).
        agents = {id(m) for m, w in zip(messages, who) if w == who[0]}
    spans = _times(messages)
    started = next((m.time for m in messages if m.absolute and m.time is not None), None)
    out: list[EventModel] = [CallOpened(call_id=call_id, source_name=source_name, mode="text", channels=2,
                                        speakers=list(SPEAKERS), agent_id=agent_id,
                                        started_at=started if started is not None else time.time())]
    counts = {0: 0, 1: 0}
    for m, (start, end) in zip(messages, spans):
        channel = 0 if id(m) in agents else 1
        out.append(TranscribedUtterance(
            call_id=call_id, channel=channel, speaker=SPEAKERS[channel], agent_id=agent_id, index=counts[channel],
            start=start, end=end, text=re.sub(r"\s+", " ", m.text), asr_model=conv.model,
            sentences=message_sentences(m.text, start, end)))
        counts[channel] += 1
    out.append(CallSegmented(call_id=call_id, utterances_per_channel=counts, duration_s=max(e for _, e in spans)))
    return out


def text_calls(path: Path, settings: Settings, agent_id: str | None = None) -> list[TextCall]:
    """A chat or email file -> its conversations' events (an mbox may hold several threads).
    Raises BadInput (with the reason) for a file that is refused or malformed."""
    data = read_text_input(path, settings)
    name = display_name(path)
    suffix = path.suffix.lower()
    notes: list[str] = []
    if suffix in EMAIL_SUFFIXES:
        convs, notes = parse_emails([data], settings, single=True)
    elif suffix in MBOX_SUFFIXES:
        convs, notes = parse_emails(split_mbox(data), settings, single=False)
    else:
        text = _decode(data)
        if suffix in CHAT_JSON_SUFFIXES or text.lstrip().startswith("{"):
            convs = [Conversation(parse_chat_jsonl(text, settings))]
        else:
            convs = [Conversation(parse_chat_log(text, settings))]
    base = call_id_for(path, data)
    redactor = _redactor(settings)
    calls: list[TextCall] = []
    for k, conv in enumerate(convs):
        call_id = base if len(convs) == 1 else f"{base}-{k + 1}"
        source = name if not conv.subject else f"{name}: {_clean(conv.subject)}"[:200]
        try:
            events = conversation_events(conv, call_id=call_id, source_name=source, settings=settings,
                                         agent_id=agent_id, redactor=redactor)
        except BadInput as e:
            if len(convs) == 1:
                raise
            notes.append(f"thread {k + 1} ({conv.subject[:60]!r}): {e}; skipped")
            continue
        calls.append(TextCall(call_id, source, events))
    if not calls:
        raise BadInput("no conversation with text" + (f" ({notes[0]})" if notes else ""))
    if notes:
        calls[0].events.extend(DeadLetter(stage="ingest", reason=f"{name}: {note}", fatal=False) for note in notes)
    return calls
