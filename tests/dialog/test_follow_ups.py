"""The `follow_up` construct of input_context states (any flow may use it), context hygiene,
small talk only where routed, cut input said to the user; and flows that do not use the new
constructs behave as before (NARA's context rules)."""

from __future__ import annotations

from callsense.dialog.engine import INPUT_CUT
from callsense.dialog.flows import load_flows

# The same small flow with and without `follow_up`.
FLOW = """
name: M
intent_transitions:
  weather.weather: say_weather
  price_check: say_price
  inventory_check: say_stock
  nomatch.none: sorry
  jarvis_error: sorry
states:
  input_intent:
    type: input_context
    properties:
      entities: {intent: dontcare}
FOLLOW_UP
  say_weather:
    type: message_text
    properties: {text: "weather [{{location}}] [{{time}}]"}
    transitions: {next_state: input_intent}
  say_price:
    type: message_text
    properties: {text: "price [{{item}}] [{{location}}] [{{sort}}]"}
    transitions: {next_state: input_intent}
  say_stock:
    type: message_text
    properties: {text: "stock [{{item}}] [{{location}}]"}
    transitions: {next_state: input_intent}
  sorry:
    type: message_text
    properties: {text: "sorry"}
    transitions: {next_state: input_intent}
"""
WITH_FOLLOW_UP = FLOW.replace("FOLLOW_UP", """      follow_up:
        slots:
          weather: [location, time]
          price_check: [location, item, sort]
          inventory_check: [location, item]
        keep: [location]
        refer:
          item: [it, them]""")
WITHOUT = FLOW.replace("FOLLOW_UP\n", "")


def test_a_follow_up_repeats_the_previous_question_with_its_slots_changed(write_flows, make_assistant):
    a = make_assistant(flows=write_flows(main=WITH_FOLLOW_UP))
    assert a.reply("s", "what's the weather in Seattle tomorrow?").text == "weather [seattle] [tomorrow]"
    reply = a.reply("s", "and in Paris?")
    assert reply.text == "weather [paris] [tomorrow]" and reply.follow_up == "weather.weather"
    assert reply.intent == "nomatch.none" and reply.context["nlu_intent"] == "weather.weather"
    assert reply.context["follow_up"] == ["location"]
    reply = a.reply("s", "what about on friday?")
    assert reply.text == "weather [paris] [on friday]" and reply.follow_up == "weather.weather"
    # an item is no slot of a weather question: not a follow-up of it
    assert a.reply("s", "and the headphones?").follow_up is None


def test_a_new_question_replaces_the_slots_of_the_last_one(write_flows, make_assistant):
    a = make_assistant(flows=write_flows(main=WITH_FOLLOW_UP))
    assert a.reply("s", "what are the cheapest jeans in Austin").text == "price [jeans] [austin] [cost.low]"
    reply = a.reply("s", "what's the weather tomorrow?")
    assert reply.text == "weather [austin] [tomorrow]"  # the place is kept (keep: [location])
    assert "item" not in reply.context and "sort" not in reply.context
    # "it" refers to the item of the last question that had one
    assert a.reply("s", "do you have it in stock?").text == "stock [jeans] [austin]"
    assert a.reply("s", "how much is laptop memory").text == "price [laptop memory] [austin] []"
    # a turn that is not understood changes no slot
    reply = a.reply("s", "tell me a joke about Chicago")
    assert reply.text == "sorry" and reply.context["location"] == "austin"


def test_a_question_made_of_slots_is_not_taken_for_a_follow_up(write_flows, make_assistant):
    a = make_assistant(flows=write_flows(main=WITH_FOLLOW_UP))
    a.reply("s", "do you have airpods in stock in Seattle")
    reply = a.reply("s", "jeans with the lowest price")  # the NLU reads a price question in it
    assert reply.follow_up is None and reply.text == "price [jeans] [seattle] [cost.low]"
    reply = a.reply("s", "and the headphones?")  # "and": a follow-up even of a price-like phrase
    assert reply.follow_up == "price_check" and reply.text == "price [headphones] [seattle] [cost.low]"


def test_flows_without_follow_up_keep_naras_context_rules(write_flows, make_assistant):
    a = make_assistant(flows=write_flows(main=WITHOUT))
    assert a.reply("s", "what are the cheapest jeans in Austin").text == "price [jeans] [austin] [cost.low]"
    reply = a.reply("s", "and in Paris?")
    assert reply.text == "sorry" and reply.follow_up is None
    assert reply.context["location"] == "paris"  # NARA: slots of every turn are remembered
    reply = a.reply("s", "what's the weather tomorrow?")
    assert reply.text == "weather [paris] [tomorrow]" and reply.context["item"] == "jeans"
    assert "last_question" not in reply.context and "slot_memory" not in reply.context
    # small talk is not routed by this flow: "hello" is not understood, as before
    reply = a.reply("s", "hello")
    assert reply.intent == "nomatch.none" and reply.text == "sorry"


def test_the_follow_up_rules_are_validated_with_file_and_line(write_flows):
    folder = write_flows(main=FLOW.replace("FOLLOW_UP", """      follow_up:
        slots:
          weathr: [location]
          price_check: location
          inventory_check: {a: b}
        keep: 3
        refer: [it]
        alternatives: [item]
        extra: 1"""))
    got = [str(i) for i in load_flows(folder).issues]

    def has(line: int, severity: str, text: str) -> bool:
        return any(f"main.yml:{line}: {severity}:" in m and text in m for m in got)

    assert has(17, "error", "`follow_up.slots.inventory_check` must be a list of slot names"), got
    assert has(18, "error", "`follow_up.keep` must be a list"), got
    assert has(19, "error", "`follow_up.refer` must map a slot"), got
    assert has(20, "error", "`follow_up.alternatives` must be a list of slot groups"), got
    assert has(21, "warning", "unknown `follow_up` key 'extra'"), got
    assert has(13, "warning", "follow_up.slots names 'weathr', which is no routed intent"), got
    assert any("did you mean \"weather.weather\"" in m for m in got) or has(13, "warning", "weathr"), got
    # `follow_up: true`: any slot, keep the place
    flows = load_flows(write_flows(main=FLOW.replace("FOLLOW_UP", "      follow_up: true"))).require()
    rules = flows.follow_up()
    assert rules.keep == ("location",) and {"location", "item", "time"} <= rules.slots_for("anything")


def test_an_input_over_the_limit_is_cut_and_the_reply_says_so(make_assistant):
    a = make_assistant(dialog_max_input_chars=60)
    text = "I am planning a long trip with my family and I would like to know: will it rain tomorrow in Seattle"
    reply = a.reply("s", text)
    assert reply.truncated
    assert reply.text.startswith(INPUT_CUT.format(limit=60))
    assert len(reply.context["user_text"]) <= 60 and not reply.context["user_text"].endswith("wo")  # no half word
    reply = a.reply("s", "will it rain tomorrow in Seattle")
    assert not reply.truncated and "read only" not in reply.text
    # blanks beyond the limit cut nothing worth saying
    assert not a.reply("t", "will it rain in Seattle" + " " * 100).truncated


def test_small_talk_in_the_shipped_flows(make_assistant):
    a = make_assistant()
    assert a.reply("s", "hello").intent == "smalltalk.greeting"
    a.reply("s", "will it rain tomorrow in Seattle?")
    reply = a.reply("s", "thanks, goodbye")
    assert reply.intent == "smalltalk.goodbye" and reply.context.get("location") is None
    assert a.reply("s", "help").intent == "smalltalk.help"
    assert a.reply("s", "start over").intent == "smalltalk.start_over"


def test_the_archive_keeps_the_words_as_written_with_the_tags_of_their_spelling(make_assistant, dialog_db):
    from sqlalchemy import select

    from callsense.store.dialog_tables import DialogTurn

    a = make_assistant()
    reply = a.reply("w", "is it gonna rain in sf tmrw")
    assert reply.context["location"] == "san francisco" and reply.context["time"] == "tomorrow"
    with dialog_db.connect() as conn:
        row = conn.execute(select(DialogTurn).where(DialogTurn.session_id == "w")).one()
    assert row.tokens == "is it gonna rain in sf tmrw"
    assert row.tags.split()[-2:] == ["B-location", "B-time.period_of_time"]
