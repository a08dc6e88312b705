"""Chats, emails and pre-split datasets through the same pipeline (issue 15 §4, §5).

One `callsense process` run over chat JSONL, a "Name: text" log, an .eml thread with
quoted replies, an mbox with two threads, a malformed JSONL and a garbage .eml: the good ones
are conversations of mode text with speakers and scored sentences (no quoted text), the bad
ones dead letters. Then `callsense import-dataset` on a folder tree and on a NeMo manifest
of small espeak-ng WAV files, and a manifest entry pointing outside its folder is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.ingest.pipeline import PipelineResources

CHAT_JSONL = "\n".join(json.dumps(m) for m in [
    {"speaker": "Dana (support)", "time": "2024-05-01T10:00:00Z", "text": "Hello, this is Dana. How can I help you today?"},
    {"speaker": "Sam", "time": "2024-05-01T10:00:20Z", "text": "My parcel never arrived. I am really angry about it!"},
    {"speaker": "Dana (support)", "time": "2024-05-01T10:00:45Z", "text": "I am sorry. I will send a new one today."},
    {"speaker": "Sam", "time": "2024-05-01T10:01:05Z", "text": "Thank you, that is great."},
]) + "\n"

CHAT_LOG = """[12:01:33] Agent: Good morning, you are through to billing.
[12:01:40] Maria: Hi. I was charged twice for my subscription!
this is the second time it happens
[12:02:10] Agent: I can see the double charge. I have refunded it.
[12:02:30] Maria: Wonderful, thanks a lot. Write to maria.lopez@example.com please.
"""

EML_THREAD = """From: Pat Customer <pat@example.org>
To: help@shop.test
Subject: Re: Broken kettle
Date: Tue, 07 May 2024 09:30:00 +0000
Message-ID: <reply-2@example.org>
In-Reply-To: <answer-1@shop.test>
References: <ask-0@example.org> <answer-1@shop.test>
Content-Type: text/plain; charset=utf-8

Thanks, the replacement arrived and works perfectly.

On Mon, 6 May 2024 at 16:00, Shop Support <help@shop.test> wrote:
> We are sorry to hear that. QUOTEDSECRET we will replace it.
> Regards

-- 
Pat Customer
SIGNATURELINE 555-0100
"""

MBOX = """From help@shop.test Mon May  6 10:00:00 2024
From: Lee <lee@example.net>
To: help@shop.test
Subject: Invoice missing
Date: Mon, 06 May 2024 10:00:00 +0000
Message-ID: <inv-1@example.net>

I did not receive my invoice for April. Can you send it?

From help@shop.test Mon May  6 11:00:00 2024
From: Shop Support <help@shop.test>
To: lee@example.net
Subject: RE: Invoice missing
Date: Mon, 06 May 2024 11:00:00 +0000
Message-ID: <inv-2@shop.test>
In-Reply-To: <inv-1@example.net>

Here it is, attached. Have a nice day!

-----Original Message-----
From: Lee <lee@example.net>
Sent: Monday, May 6, 2024 10:00
Subject: Invoice missing
ORIGINALQUOTE I did not receive my invoice.

From help@shop.test Tue May  7 08:00:00 2024
From: Kim <kim@example.com>
To: help@shop.test
Subject: Password reset does not work
Date: Tue, 07 May 2024 08:00:00 +0000
Message-ID: <pw-1@example.com>

The reset link is broken. This is very frustrating.

---------- Forwarded message ---------
From: Shop <noreply@shop.test>
Date: Tue, 7 May 2024
Subject: Reset your password
To: kim@example.com

Click the link to reset your password.

From help@shop.test Tue May  7 09:00:00 2024
From: Shop Support <help@shop.test>
To: kim@example.com
Subject: Re: Password reset does not work
Date: Tue, 07 May 2024 09:00:00 +0000
Message-ID: <pw-2@shop.test>
In-Reply-To: <pw-1@example.com>

We fixed the link. Please try again.
"""


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "callsense", *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def env(tmp_path):
    e = {**os.environ, "CALLSENSE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
         "CALLSENSE_TEXT_AGENT_NAMES": "agent,@shop.test"}
    e.pop("CALLSENSE_DATABASE_URL", None)
    e.pop("CALLSENSE_BLOB_DIR", None)
    return e


def test_chats_and_emails_are_text_conversations(tmp_path, env):
    d = tmp_path / "in"
    d.mkdir()
    (d / "chat.jsonl").write_text(CHAT_JSONL)
    (d / "billing.txt").write_text(CHAT_LOG)
    (d / "kettle.eml").write_text(EML_THREAD)
    (d / "support.mbox").write_text(MBOX)
    (d / "broken.jsonl").write_text('{"speaker": "a", "text": "fine"}\n{"speaker": "b", "text": \n')
    (d / "garbage.eml").write_bytes(b"\x00\xff\xfe garbage without headers\n\x01\x02")
    (d / "empty.eml").write_bytes(b"")
    out = cli(env, "process", *(str(d / n) for n in ("chat.jsonl", "billing.txt", "kettle.eml", "support.mbox",
                                                      "broken.jsonl", "garbage.eml", "empty.eml")))
    text = out.stdout + out.stderr
    assert out.returncode == 3, text  # some inputs refused
    assert "Traceback" not in text and "internal error" not in text, text

    store = PipelineResources(Settings(data_dir=tmp_path / "data")).store
    calls = {c.source_name: c for c in store.list_calls(limit=100)}
    assert set(calls) == {"chat.jsonl", "billing.txt", "kettle.eml: Re: Broken kettle",
                          "support.mbox: Invoice missing", "support.mbox: Password reset does not work"}, set(calls)
    for c in calls.values():
        assert c.mode == "text" and c.status == "done", (c.source_name, c.status, c.error)
        assert c.speakers == "agent,customer"

    def said(name):
        return [(u.speaker, u.text) for u in store.utterances(calls[name].id)]

    chat = said("chat.jsonl")
    assert [s for s, _ in chat] == ["agent", "customer", "agent", "customer"]  # first speaker: the agent
    assert chat[1][1] == "My parcel never arrived. I am really angry about it!"
    sentences = store.sentences(calls["chat.jsonl"].id)
    assert [s.text for s in sentences][:3] == ["Hello, this is Dana.", "How can I help you today?", "My parcel never arrived."]
    assert all(s.sentiment in ("negative", "neutral", "positive") for s in sentences)
    assert {s.sentiment for s in sentences if "angry" in s.text} == {"negative"}
    assert [s.start for s in store.utterances(calls["chat.jsonl"].id)] == [0.0, 20.0, 45.0, 65.0]  # from the timestamps

    log = said("billing.txt")
    assert [s for s, _ in log] == ["agent", "customer", "agent", "customer"]
    assert log[1][1] == "Hi. I was charged twice for my subscription! this is the second time it happens"
    assert log[3][1] == "Wonderful, thanks a lot. Write to [EMAIL] please."  # PII redacted like transcripts
    assert "maria.lopez" not in " ".join(s.text for s in store.sentences(calls["billing.txt"].id))

    kettle = said("kettle.eml: Re: Broken kettle")
    assert kettle == [("customer", "Thanks, the replacement arrived and works perfectly.")]

    invoice = said("support.mbox: Invoice missing")
    assert [s for s, _ in invoice] == ["customer", "agent"]  # help@shop.test matches @shop.test
    assert invoice[1][1] == "Here it is, attached. Have a nice day!"
    password = said("support.mbox: Password reset does not work")
    assert password[0] == ("customer", "The reset link is broken. This is very frustrating. "
                                       "Click the link to reset your password.")
    assert password[1] == ("agent", "We fixed the link. Please try again.")

    everything = " ".join(t for c in calls.values() for _, t in said(c.source_name))
    for quoted in ("QUOTEDSECRET", "SIGNATURELINE", "ORIGINALQUOTE", "wrote:", "Forwarded", "noreply@"):
        assert quoted not in everything

    reasons = {d.reason.split(":", 1)[0]: d.reason for d in store.dead_letters(100)}
    assert set(reasons) == {"broken.jsonl", "garbage.eml", "empty.eml"}, reasons
    assert "line 2: not JSON" in reasons["broken.jsonl"]
    assert "no From header" in reasons["garbage.eml"]
    assert "empty file" in reasons["empty.eml"]
    listed = cli(env, "dead-letters").stdout
    assert "broken.jsonl" in listed and "garbage.eml" in listed


# --------------------------------------------------------------------------- datasets

LINES = {
    "call_a": [("agent", "Hello, thank you for calling."), ("customer", "My internet is down."),
               ("agent", "Let me check that for you.")],
    "call_b": [("customer", "I want to cancel my order."), ("agent", "Sure, I can do that."),
               ("customer", "Thank you very much.")],
}


@pytest.fixture(scope="module")
def voices():
    from callsense.asr.tts.base import create_tts_engine

    tts = create_tts_engine(Settings())
    return {text: tts.synthesize(text, sample_rate=16000).wav() for conv in LINES.values() for _, text in conv}


def _utterance_texts(store, call_id):
    return [(u.speaker, u.text) for u in store.utterances(call_id)]


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum() or ch == " ").split()[0]


def test_folder_tree_dataset(tmp_path, env, voices):
    root = tmp_path / "dataset"
    for conv, lines in LINES.items():
        for i, (speaker, text) in enumerate(lines):
            # call_a: the speaker in the file name; call_b: in a sub-folder.
            f = root / conv / f"{i:03d}_{speaker}.wav" if conv == "call_a" else root / conv / speaker / f"{i:03d}.wav"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(voices[text])
    out = cli(env, "import-dataset", str(root))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    store = PipelineResources(Settings(data_dir=tmp_path / "data")).store
    calls = {c.source_name: c for c in store.list_calls(limit=10)}
    assert set(calls) == {"call_a", "call_b"}
    for name, lines in LINES.items():
        c = calls[name]
        assert c.mode == "dataset" and c.status == "done", (c.status, c.error)
        got = _utterance_texts(store, c.id)
        assert [s for s, _ in got] == [s for s, _ in lines]  # in file-name order
        assert [_norm(t) for _, t in got] == [_norm(t) for _, t in lines], got
        assert all(s.sentiment for s in store.sentences(c.id))


def test_manifest_dataset_and_paths_outside_are_refused(tmp_path, env, voices):
    root = tmp_path / "manifest"
    (root / "audio").mkdir(parents=True)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(voices["Thank you very much."])
    entries = []
    for conv, lines in LINES.items():
        for i, (speaker, text) in enumerate(lines):
            name = f"audio/{conv}_{i}.wav"
            (root / name).write_bytes(voices[text])
            entries.append({"audio_filepath": name, "duration": 30.0, "speaker": speaker, "conversation": conv, "text": text})
    entries.append({"audio_filepath": "../secret.wav", "duration": 1.0, "conversation": "call_a"})
    entries.append({"audio_filepath": str(outside), "duration": 1.0, "conversation": "call_b"})
    (root / "audio" / "link.wav").symlink_to(outside)
    entries.append({"audio_filepath": "audio/link.wav", "duration": 1.0, "conversation": "call_b"})
    (root / "train.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    out = cli(env, "import-dataset", str(root / "train.jsonl"))
    text = out.stdout + out.stderr
    assert out.returncode == 3, text  # the three entries outside the folder were refused
    assert "Word error rate" in text
    store = PipelineResources(Settings(data_dir=tmp_path / "data")).store
    calls = {c.source_name: c for c in store.list_calls(limit=10)}
    assert set(calls) == {"call_a", "call_b"}
    for name, lines in LINES.items():
        c = calls[name]
        assert c.mode == "dataset" and c.status == "done", (c.status, c.error)
        got = _utterance_texts(store, c.id)
        assert [s for s, _ in got] == [s for s, _ in lines]
        assert [_norm(t) for _, t in got] == [_norm(t) for _, t in lines], got
    reasons = [d.reason for d in store.dead_letters(100)]
    assert len(reasons) == 3, reasons
    assert any("'..'" in r for r in reasons) and sum("outside the manifest's folder" in r for r in reasons) == 2, reasons
