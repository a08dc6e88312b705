"""Scripted support calls as pipeline events, for tests, benchmarks and trying the
dashboard without processing audio. Written through `ResultStore.apply`, exactly as the
pipeline's store stage writes them."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Iterator, Sequence

from callsense.ingest.categories import CategoryEvaluator
from callsense.ingest.results import result_rows
from callsense.nlp.categories import RuleSet, load_rules
from callsense.core.events import CallOpened, CallSegmented, EventModel, ScoredUtterance, Sentence, SentenceSentiment

# (speaker, text, sentiment) turns; a customer's sentiment may be re-drawn per agent.
SCRIPTS: dict[str, list[tuple[str, str, str]]] = {
    "billing": [
        ("agent", "Thank you for calling, this is the billing team. How can I help you today?", "positive"),
        ("customer", "I was charged twice for my subscription this month.", "negative"),
        ("customer", "This is the second time it has happened.", "negative"),
        ("agent", "I am sorry about that. Let me look at your account.", "neutral"),
        ("customer", "I have been waiting on hold for twenty minutes already.", "negative"),
        ("agent", "I can see the duplicate payment on the third of the month.", "neutral"),
        ("agent", "I have issued a refund for the second charge.", "positive"),
        ("customer", "How long will the refund take?", "neutral"),
        ("agent", "It should reach your card within three to five business days.", "neutral"),
        ("customer", "Okay, that is helpful, thank you.", "positive"),
        ("agent", "Is there anything else I can help you with?", "neutral"),
        ("customer", "No, that was all. Thanks for sorting it out.", "positive"),
    ],
    "delivery": [
        ("agent", "Good morning, you are through to customer support.", "neutral"),
        ("customer", "My order was supposed to arrive on Monday and it still has not come.", "negative"),
        ("agent", "I understand, let me check the tracking for you.", "neutral"),
        ("customer", "Nobody told me anything about a delay.", "negative"),
        ("customer", "I took a day off work to wait for it.", "negative"),
        ("agent", "The parcel is at the local depot and goes out for delivery tomorrow morning.", "neutral"),
        ("agent", "I have added a voucher for the inconvenience.", "positive"),
        ("customer", "Fine, but I expect it to actually arrive this time.", "negative"),
        ("agent", "You will get a text message with a one hour delivery window.", "neutral"),
        ("customer", "All right. Thank you.", "neutral"),
    ],
    "router": [
        ("agent", "Hello, technical support, what can I do for you?", "neutral"),
        ("customer", "I just got the new router and I cannot get it online.", "negative"),
        ("agent", "No problem, we will set it up together. Is the power light on?", "positive"),
        ("customer", "Yes, the power light is green.", "neutral"),
        ("agent", "Great. Please connect the grey cable to the port marked internet.", "neutral"),
        ("customer", "Done. Now the globe light is blinking.", "neutral"),
        ("agent", "Give it a minute, it is downloading its settings.", "neutral"),
        ("customer", "Oh, it is solid now and my laptop is connected!", "positive"),
        ("customer", "That was much easier than I expected.", "positive"),
        ("agent", "Wonderful. Enjoy your new connection.", "positive"),
    ],
}


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    sentiment: str
    start: float
    end: float


def script_turns(script: str, rng: random.Random, *, mood: float = 0.0) -> list[Turn]:
    """Timed turns of a script. `mood` in [-1, 1] shifts customer sentences toward negative
    (-1) or positive (+1), so agents in the demo differ."""
    t = rng.uniform(0.3, 1.2)
    out: list[Turn] = []
    for speaker, text, label in SCRIPTS[script]:
        if speaker == "customer" and mood and rng.random() < abs(mood) * 0.5:
            label = "negative" if mood < 0 else ("positive" if label != "negative" else "neutral")
        length = 0.3 * len(text.split()) + rng.uniform(0.3, 0.8)
        if out and out[-1].speaker != speaker and rng.random() < 0.15:
            start = out[-1].end - rng.uniform(0.3, 0.9)  # speaks over the other
        else:
            start = t + rng.uniform(0.2, 1.0)
        out.append(Turn(speaker, text, label, round(start, 2), round(start + length, 2)))
        t = max(t, start + length)
    return out


def call_events(call_id: str, turns: Sequence[Turn], *, agent_id: str | None, started_at: float, mode: str = "recorded",
                source_name: str = "", model: str = "demo", rng: random.Random | None = None) -> list[EventModel]:
    """CallOpened, one ScoredUtterance per turn, CallSegmented: what the pipeline stores."""
    rng = rng or random.Random(0)
    speakers = ["agent", "customer"]
    events: list[EventModel] = [CallOpened(call_id=call_id, source_name=source_name or f"{call_id}.mp3", mode=mode,
                                           channels=2, speakers=speakers, agent_id=agent_id, started_at=started_at)]
    events.extend(utterance_events(call_id, turns, agent_id=agent_id, model=model, rng=rng,
                                   live_started_at=started_at if mode == "live" else None))
    per_channel = {c: sum(1 for t in turns if t.speaker == sp) for c, sp in enumerate(speakers)}
    events.append(CallSegmented(call_id=call_id, utterances_per_channel=per_channel,
                                duration_s=max((t.end for t in turns), default=0.0) + 1.0))
    return events


def utterance_events(call_id: str, turns: Sequence[Turn], *, agent_id: str | None, model: str = "demo",
                     rng: random.Random | None = None, live_started_at: float | None = None) -> list[ScoredUtterance]:
    rng = rng or random.Random(0)
    index = {"agent": 0, "customer": 0}
    out = []
    for t in turns:
        channel = 0 if t.speaker == "agent" else 1
        confidence = round(rng.uniform(0.42, 0.99), 3)
        sentence = Sentence(index=0, text=t.text, start=t.start, end=t.end,
                            sentiment=SentenceSentiment(label=t.sentiment, confidence=confidence, model=model))
        out.append(ScoredUtterance(call_id=call_id, channel=channel, speaker=t.speaker, agent_id=agent_id,
                                   index=index[t.speaker], start=t.start, end=t.end, text=t.text, confidence=0.9,
                                   asr_model="demo-asr", sentences=[sentence], sentiment_model=model,
                                   live_started_at=live_started_at))
        index[t.speaker] += 1
    return out


def _write(store, events: Sequence[EventModel], rules: RuleSet | None) -> None:
    """What the store stage does with a batch: the rows, then the category rules over the calls it touched."""
    batch = result_rows(events)
    store.apply(batch)
    if rules is not None and rules.categories:
        CategoryEvaluator(rules, store).after_batch({u.call_id for u in batch.utterances} | {s.call_id for s in batch.segmented})


def _rules(rules: RuleSet | None | bool) -> RuleSet | None:
    """True (the default): the rules shipped with callsense; False/None: no categories."""
    if rules is True:
        return load_rules()
    return rules or None


AGENT_MOODS = {"ag-1": -0.4, "ag-2": 0.5, "ag-3": 0.0, "ag-4": 0.2}


def seed_history(store, *, days: int = 60, calls_per_day: float = 3.0, agents: dict[str, float] | None = None,
                 now: float | None = None, seed: int = 7, rules: RuleSet | bool | None = True) -> list[str]:
    """Fill a store with finished recorded calls spread over the last `days` (categorised by
    `rules`: by default the rules shipped with callsense)."""
    rules = _rules(rules)
    rng = random.Random(seed)
    now = now or time.time()
    agents = agents or AGENT_MOODS
    ids = []
    batch: list[EventModel] = []
    for day in range(days):
        for agent_id, mood in agents.items():
            for _ in range(int(calls_per_day) + (rng.random() < calls_per_day % 1)):
                script = rng.choice(list(SCRIPTS))
                started = now - day * 86400 - rng.uniform(600, 8 * 3600)
                call_id = f"{script}-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
                batch.extend(call_events(call_id, script_turns(script, rng, mood=mood), agent_id=agent_id,
                                         started_at=started, source_name=f"{script}-{time.strftime('%m%d-%H%M', time.localtime(started))}.mp3",
                                         rng=rng))
                ids.append(call_id)
                if len(batch) > 400:
                    _write(store, batch, rules)
                    batch = []
    if batch:
        _write(store, batch, rules)
    return ids


def play_live_call(store, call_id: str, script: str = "billing", *, agent_id: str | None = "ag-1", speed: float = 1.0,
                   mood: float = -1.0, seed: int = 3, source_name: str | None = None,
                   stop=None, rules: RuleSet | bool | None = True) -> Iterator[ScoredUtterance]:
    """Write a scripted call as a live call, each sentence when its turn ends (scaled by
    `speed`), the way the store stage writes a live call's results (categories included: an
    alert is stored with the sentence that makes a rule match). Yields each one written."""
    rules = _rules(rules)
    rng = random.Random(seed)
    turns = script_turns(script, rng, mood=mood)
    started = time.time()
    opened, *utterances, segmented = call_events(call_id, turns, agent_id=agent_id, started_at=started, mode="live",
                                                 source_name=source_name or f"{script} (live)", rng=rng)
    _write(store, [opened], rules)
    for ev in utterances:
        due = started + ev.end / speed
        delay = due - time.time()
        if delay > 0:
            if stop is not None and stop.wait(delay):
                return
            if stop is None:
                time.sleep(delay)
        _write(store, [ev], rules)
        yield ev
    _write(store, [segmented], rules)
