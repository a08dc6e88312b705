"""ALQUIST's later dialect of the flow format: `conditional_equal`, `del_keys`, `error_text`
(loader, validator with file and line, engine), and a flow folder written in it with its
own conversation tests (tests/dialog/data/alquist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.dialog.conversation_tests import run_conversation_tests
from callsense.dialog.flows import load_flows

ALQUIST_DIR = Path(__file__).parent / "data" / "alquist"


def messages(result):
    return [str(i) for i in result.issues]


def test_the_alquist_flow_folder_loads_clean_and_its_conversations_pass(keywords_nlu, tmp_path):
    result = load_flows(ALQUIST_DIR)
    assert result.issues == [], messages(result)
    flows = result.flows
    assert flows.states["is_rain_question"].type == "conditional_equal"
    assert flows.states["forget_city"].properties["del_keys"] == ["location", "time"]  # '{{time}}' read as time
    assert flows.states["city_input"].properties["error_text"].startswith("I need a city")
    results = run_conversation_tests(ALQUIST_DIR / "tests", settings=Settings(data_dir=tmp_path), nlu=keywords_nlu)
    assert len(results) == 2
    for r in results:
        assert r.passed, "\n".join(r.failures)


def test_the_dialog_test_command_runs_the_alquist_folder(tmp_path):
    from typer.testing import CliRunner

    from callsense.cli import app

    env = {"CALLSENSE_DATA_DIR": str(tmp_path / "data"), "CALLSENSE_NLU_BACKEND": "keywords", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["dialog", "test", str(ALQUIST_DIR / "tests")], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2/2 conversations passed" in result.output


MAIN = """
name: M
intent_transitions:
  nomatch.none: compare
  weather.weather: ask
states:
  input_intent: {type: input_context}
  compare:
    type: conditional_equal
    properties:
      value1: '{{ count }}'
      value2: 3
    transitions: {equal: same, notequal: bump}
  bump:
    type: change_context
    properties:
      del_keys: [note]
      update_keys: {count: 3, note: "bumped {{user_text}}"}
    transitions: {next_state: said}
  said:
    type: message_text
    properties: {text: "bumped"}
    transitions: {next_state: input_intent}
  same:
    type: message_text
    properties: {text: "three already ({{note}})"}
    transitions: {next_state: input_intent}
  ask:
    type: message_text
    properties: {text: "Which city?"}
  city:
    type: input_user
    properties:
      entities: {slot: location, require_match: true}
      error_text: "A city, please (not {{user_text}})."
    transitions: {match: done}
  done:
    type: message_text
    properties: {text: "ok {{location}}"}
    transitions: {next_state: input_intent}
"""


def test_conditional_equal_del_keys_and_error_text_in_the_engine(write_flows, make_assistant):
    a = make_assistant(flows=write_flows(main=MAIN))
    assert a.reply("s", "go").text == "bumped"  # '' != '3'
    reply = a.reply("s", "go again")
    assert reply.text == "three already (bumped go)"  # 3 (a number) equals '3'
    assert reply.visited[-3:] == ["compare", "same", "input_intent"]
    assert a.reply("t", "what's the weather?").text == "Which city?"
    reply = a.reply("t", "blue")
    assert reply.text == "A city, please (not blue)." and reply.state == "city"
    reply = a.reply("t", "Seattle")
    assert reply.text == "ok seattle" and reply.state == "input_intent"


def test_del_keys_runs_before_update_keys(write_flows, make_assistant):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: change}
        states:
          input_intent: {type: input_context}
          change:
            type: change_context
            properties:
              del_keys: [a, b]
              update_keys: {a: "new"}
          show:
            type: message_text
            properties: {text: "a={{a}} b={{b}}"}
            transitions: {next_state: input_intent}
          """)
    a = make_assistant(flows=folder)
    reply = a.reply("s", "x")
    assert reply.text == "a=new b=" and "b" not in reply.context


def test_the_validator_names_file_and_line_for_the_new_constructs(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: eq, jarvis_error: input_intent}
        states:
          input_intent: {type: input_context}
          eq:
            type: conditional_equal
            properties:
              value1: '{{intent}}'
            transitions: {equal: input_intent, notequal: input_intent, same: input_intent}
          eq2:
            type: conditional_equal
            properties:
              value1: {a: b}
              value2: x
            transitions: {equal: input_intent}
          ctx:
            type: change_context
            properties:
              del_keys: {a: b}
            transitions: {next_state: input_intent}
          ctx2:
            type: change_context
            properties:
              del_keys: [ok, [nested], '{{ also_ok }}']
            transitions: {next_state: input_intent}
          ask:
            type: input_user
            properties:
              entities: {slot: location, require_match: true}
              error_text: ""
            transitions: {match: input_intent}
          ask2:
            type: input_user
            properties:
              entities: {slot: location, require_match: false}
              error_text: "never said"
            transitions: {match: input_intent}
          ask3:
            type: input_user
            properties:
              entities: {slot: location, require_match: true}
              error_text: "said"
            transitions: {match: input_intent, notmatch: input_intent}
    """)
    result = load_flows(folder)
    got = messages(result)

    def has(line: int, severity: str, text: str) -> bool:
        return any(f"main.yml:{line}: {severity}:" in m and text in m for m in got)

    assert has(7, "error", "needs `properties.value2`"), got
    assert has(9, "error", "unknown transition 'same'"), got
    assert has(13, "error", "`value1` must be one value"), got
    assert has(10, "warning", "no `notequal` transition"), got
    assert has(19, "error", "`del_keys` must be a list"), got
    assert has(24, "error", "`del_keys` entry ['nested'] is no context key"), got
    assert has(30, "error", "`error_text` must be a text"), got
    assert has(36, "warning", "`error_text` is never said"), got
    assert has(43, "warning", "transition 'notmatch' is never taken"), got
    assert result.flows.states["ctx2"].properties["del_keys"] == ["ok", "also_ok"]


def test_conditional_equal_counts_as_a_branch_for_the_loop_check(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: a, jarvis_error: input_intent}
        states:
          input_intent: {type: input_context}
          a:
            type: conditional_equal
            properties: {value1: '{{x}}', value2: "1"}
            transitions: {equal: input_intent, notequal: b}
          b:
            type: change_context
            properties: {update_keys: {x: "1"}}
            transitions: {next_state: a}
    """)
    result = load_flows(folder)
    assert result.errors == [], messages(result)


@pytest.mark.parametrize("raw,expected", [("{{x}}", "7"), (7, "7"), (7.0, "7"), (True, "true"), (None, "")])
def test_conditional_equal_values_as_compared(raw, expected):
    from callsense.dialog.engine import DialogEngine, _Turn

    assert DialogEngine._value(raw, {"x": 7}, _Turn()) == expected
