"""The dialog engine: state walking, context, persistence, sessions, failures."""

from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from callsense.dialog.conversation_tests import SwitchableNlu
from callsense.dialog.engine import FALLBACK_ENGINE_FAULT, FALLBACK_NLU_DOWN
from callsense.store.db import make_engine
from callsense.store.dialog_tables import DialogTurn

RANDOM_FLOWS = """
name: M
intent_transitions:
  nomatch.none: pick
  jarvis_error: error_check
states:
  hello:
    type: message_text
    properties:
      text: "hello {{nobody_set_this}}"
  input_intent:
    type: input_context
    properties: {nlp_type: jarvis, entities: {intent: dontcare}}
  pick:
    type: message_text_random
    delay: 0.75
    properties:
      responses: [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9]
    transitions: {next_state: input_intent}
  error_check:
    type: conditional_exists
    properties: {key: '{{jarvis_error}}'}
    transitions: {exists: down, notexists: pick}
  down:
    type: message_text
    properties: {text: "service down"}
    transitions: {next_state: input_intent}
"""


def test_random_responses_are_deterministic_given_a_seed(write_flows, make_assistant, tmp_path, keywords_nlu):
    from callsense.dialog.assistant import Assistant

    folder = write_flows(main=RANDOM_FLOWS)

    def run(seed: int, db_name: str) -> list[str]:
        db = make_engine(f"sqlite:///{tmp_path / db_name}")
        a = Assistant(flows=folder, nlu=keywords_nlu, db=db, seed=seed)
        try:
            return [a.reply("same-session", "blah").text.split()[-1] for _ in range(20)]
        finally:
            db.dispose()

    first, again, other = run(3, "a.db"), run(3, "b.db"), run(4, "c.db")
    assert first == again
    assert first != other
    assert len(set(first)) > 3  # it does choose among the responses


def test_delay_and_unknown_template_keys_are_reported(write_flows, make_assistant):
    a = make_assistant(flows=write_flows(main=RANDOM_FLOWS))
    greeting = a.start("s")
    assert greeting.text == "hello" and greeting.missing_keys == ["nobody_set_this"]
    reply = a.reply("s", "blah")
    assert reply.messages[-1].delay_s == 0.75 and reply.messages[-1].state == "pick"
    assert a.start("s").text == ""  # an ongoing conversation gets no second greeting


def test_nlu_failure_sets_jarvis_error_and_routes_it(write_flows, make_assistant, keywords_nlu):
    nlu = SwitchableNlu(keywords_nlu)
    a = make_assistant(flows=write_flows(main=RANDOM_FLOWS), nlu=nlu)
    nlu.down = True
    reply = a.reply("s", "anything")
    assert reply.intent == "jarvis_error" and reply.text.endswith("service down")
    assert "jarvis_error" in reply.context and reply.error.startswith("nlu:")
    nlu.down = False
    reply = a.reply("s", "anything")
    assert "jarvis_error" not in reply.context and reply.text.split()[-1].startswith("r")


def test_nlu_failure_without_a_route_gets_a_builtin_apology(write_flows, make_assistant, keywords_nlu):
    nlu = SwitchableNlu(keywords_nlu)
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: input_intent}
        states:
          input_intent: {type: input_context}
    """)
    a = make_assistant(flows=folder, nlu=nlu)
    nlu.down = True
    reply = a.reply("s", "hello")
    assert reply.text == FALLBACK_NLU_DOWN and reply.state == "input_intent"


def test_context_and_state_survive_a_restart(make_assistant, dialog_settings, dialog_db, keywords_nlu):
    from datetime import date

    from callsense.dialog.assistant import Assistant

    first = make_assistant()
    assert first.reply("user-1", "what's the weather?").state == "weather_input_location"
    first.close()
    second = Assistant(dialog_settings, nlu=keywords_nlu, db=dialog_db, seed=1, today=lambda: date(2025, 6, 2))
    reply = second.reply("user-1", "Seattle")
    assert reply.text.startswith("In Seattle today: light rain")
    assert second.reply("user-1", "will it snow tomorrow?").text == "No, no snow is expected in Seattle tomorrow."


def test_many_sessions_at_once_stay_apart(make_assistant, dialog_db):
    a = make_assistant()
    cities = ["Seattle", "Austin", "Chicago", "Denver", "Miami", "Boston", "Phoenix", "London"]
    errors: list[str] = []

    def talk(city: str) -> None:
        session = f"s-{city}"
        for _ in range(6):
            r = a.reply(session, "what's the temperature?")
            expected_state = "weather_input_location" if r.turn == 1 else "input_intent"
            if r.state != expected_state:
                errors.append(f"{session}: {r.state}")
            if r.turn == 1:
                r = a.reply(session, city)
            if city not in r.text:
                errors.append(f"{session}: {r.text}")

    threads = [threading.Thread(target=talk, args=(c,)) for c in cities]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with dialog_db.connect() as conn:
        counts = dict(conn.execute(select(DialogTurn.session_id, func.count()).group_by(DialogTurn.session_id)).all())
    assert counts == {f"s-{c}": 7 for c in cities}


def test_reset_flow_end_and_raw_slot_values(write_flows, make_assistant):
    folder = write_flows(main="""
        name: M
        intent_transitions:
          nomatch.none: ask_name
          weather.weather: forget
        states:
          input_intent: {type: input_context}
          ask_name:
            type: message_text
            properties: {text: "Your name?"}
          name_input:
            type: input_user
            properties: {entities: {slot: name, require_match: false}}
            transitions: {match: greet, notmatch: input_intent}
          forget:
            type: reset
            transitions: {next_state: check}
          check:
            type: conditional_exists
            properties: {key: "{{name}}"}
            transitions: {exists: still, notexists: gone}
          still:
            type: message_text
            properties: {text: "still there"}
            transitions: {next_state: input_intent}
          gone:
            type: message_text
            properties: {text: "forgotten"}
            transitions: {next_state: input_intent}
          greet:
            type: message_text
            properties: {text: "Hi {{name}}, from {{location}}."}
    """)
    a = make_assistant(flows=folder)
    assert a.reply("s", "hello in Seattle").text == "Your name?"
    reply = a.reply("s", "Ada Lovelace")
    # a name is no NLU slot: require_match false takes the answer as it is; the last
    # state of the file has no transitions, so the conversation goes back to input_intent
    assert reply.text == "Hi Ada Lovelace, from seattle." and reply.state == "input_intent"
    reply = a.reply("s", "what's the weather")
    assert reply.text == "forgotten" and reply.context.get("name") is None and "location" not in reply.context


def test_a_loop_that_never_settles_gets_an_apology_not_a_hang(write_flows, make_assistant):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: spin}
        states:
          input_intent: {type: input_context}
          spin:
            type: conditional_exists
            properties: {key: "{{never}}"}
            transitions: {exists: input_intent, notexists: say}
          say:
            type: message_text
            properties: {text: "again"}
            transitions: {next_state: spin}
    """)
    a = make_assistant(flows=folder, dialog_max_steps=20)
    reply = a.reply("s", "go")
    assert reply.text.endswith(FALLBACK_ENGINE_FAULT) and reply.state == "input_intent"
    assert reply.error.startswith("engine:")


def test_every_turn_is_archived(make_assistant, dialog_db):
    a = make_assistant()
    a.reply("v", "what's the weather?", asr_confidence=0.87, channel="voice")
    a.reply("v", "Los Angeles", asr_confidence=0.93, channel="voice")
    with dialog_db.connect() as conn:
        rows = conn.execute(select(DialogTurn).order_by(DialogTurn.turn)).all()
    assert [(r.turn, r.text, r.intent, r.channel, r.asr_confidence) for r in rows] == [
        (1, "what's the weather?", "weather.weather", "voice", 0.87),
        (2, "Los Angeles", "nomatch.none", "voice", 0.93),
    ]
    assert rows[0].state == "weather_input_location"
    assert rows[0].reply.startswith("Hi, I'm NARA") and rows[0].reply.endswith("For which location?")
    assert json.loads(rows[1].slots_json) == {"location": "los angeles"}
    assert rows[1].tokens == "los angeles" and rows[1].tags == "B-location I-location"
    assert rows[1].reply.startswith("In Los Angeles today") and rows[1].latency_ms > 0
    assert rows[1].day == "%04d-%02d-%02d" % tuple(__import__("time").gmtime(rows[1].at)[:3])


def test_long_and_control_character_input_is_cut_and_cleaned(make_assistant):
    a = make_assistant(dialog_max_input_chars=40)
    reply = a.reply("s", "will it rain in Seattle\x00\x1b[31m tomorrow" + "?" * 10_000)
    assert reply.intent == "weather.rainfall_yes_no"
    assert len(reply.context["user_text"]) <= 40 and "\x00" not in reply.context["user_text"]


def test_a_reset_session_goes_on_under_the_same_id(make_assistant, dialog_db):
    """`Assistant.reset` forgets the conversation, not the id: the archive's turn numbers go on."""
    from sqlalchemy import select

    from callsense.store.dialog_tables import DialogTurn

    a = make_assistant()
    a.reply("s-reset", "what's the weather in seattle")
    a.reply("s-reset", "thanks")
    a.reset("s-reset")
    reply = a.reply("s-reset", "how much is the coffee maker in seattle")
    assert reply.text and "coffee maker" in reply.text.lower()
    a.reset("never-seen")  # nothing to forget: no error, no row
    with dialog_db.connect() as conn:
        turns = [r.turn for r in conn.execute(select(DialogTurn).where(DialogTurn.session_id == "s-reset")
                                              .order_by(DialogTurn.turn))]
    assert turns == [1, 2, 3]
