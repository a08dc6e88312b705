"""Loading Jarvis/Riva flow files as users have them, and validation with file and line."""

from __future__ import annotations

import pytest

from callsense.dialog.flows import RETAIL_ASSISTANT_DIR, FlowValidationError, load_flows

# A main flow written the way WP-7328's files come out of a PDF: `delay` beside
# `properties` and inside them, `properties:` with no value, a greeting without transitions
# that continues with the next state of the file, a `flow:` transition, a quoted
# '{{location}}' key, `jarvis_error` routed like any intent, capitalised fulfillment types.
NARA_MAIN = """
name: JarvisRetail
intent_transitions:
  jarvis_error: error_route
  weather.weather: weather_intent
  weather.rainfall_yes_no: weather_intent
  nomatch.none: fallback
states:
  init:
    type: message_text
    properties:
      text: "Hello, how can I help?"
  input_intent:
    type: input_context
    properties:
     nlp_type: jarvis
     entities:
       intent: dontcare
  fallback:
    type: message_text_random
    delay: 0.5
    properties:
      responses:
        - "Sorry?"
        - "Say again?"
    transitions:
      next_state: input_intent
  error_route:
    type: change_context
    properties:
      update_keys:
        intent: error
    transitions:
      flow: ErrorFlow
  unused_reset:
    type: reset
    properties:
    transitions:
      next_state: input_intent
"""
NARA_WEATHER = """
name: WeatherFlow
states:
  weather_intent:
    type: change_context
    properties:
      update_keys:
        intent: weather
  check_location:
    type: conditional_exists
    properties:
      key: '{{location}}'
    transitions:
      exists: weather
      notexists: ask_location
  ask_location:
    type: message_text
    properties:
      text: For which location?
      delay: 0.25
  input_location:
    type: input_user
    properties:
      nlp_type: jarvis
      entities:
        slot: location
        require_match: true
    transitions:
      match: weather
      notmatch: input_intent
  weather:
    type: Weather
    properties:
    transitions:
      next_state: weather_say
  weather_say:
    type: message_text
    properties:
      text: {{weather_status}}
    transitions:
      next_state: input_intent
"""
NARA_ERROR = """
name: ErrorFlow
states:
  error_check:
    type: conditional_exists
    properties:
      key: '{{jarvis_error}}'
    transitions:
      exists: error_down
      notexists: fallback
  error_down:
    type: message_text
    properties:
      text: The service is down.
    transitions:
      next_state: input_intent
"""


def messages(result):
    return [str(i) for i in result.issues]


def test_nara_style_files_load_with_every_construct(write_flows):
    folder = write_flows(main=NARA_MAIN, weather=NARA_WEATHER, error=NARA_ERROR)
    result = load_flows(folder)
    assert result.errors == [], messages(result)
    flows = result.flows
    assert flows.main.name == "JarvisRetail" and flows.start_state == "init"
    # delay beside properties and inside them
    assert flows.states["fallback"].delay == 0.5
    assert flows.states["ask_location"].delay == 0.25
    assert "delay" not in flows.states["ask_location"].properties
    # null properties
    assert flows.states["weather"].properties == {} and flows.states["weather"].is_fulfillment
    # no transitions: the next state of the file
    assert flows.target(flows.states["init"]) == "input_intent"
    assert flows.target(flows.states["weather_intent"]) == "check_location"
    # flow: NAME goes to that flow's first state; names are global across files
    assert flows.target(flows.states["error_route"]) == "error_check"
    assert flows.target(flows.states["error_check"], "notexists") == "fallback"
    # the unquoted template is read back as a template, with a warning
    assert flows.states["weather_say"].properties["text"] == "{{weather_status}}"
    assert any("unquoted template" in m and "weather.yml:" in m for m in messages(result))
    # the reset state nothing reaches: a warning, not an error
    assert any("'unused_reset' is unreachable" in m for m in messages(result))
    assert flows.intent_transitions["jarvis_error"] == "error_route"


def test_shipped_retail_assistant_flows_are_clean():
    result = load_flows(RETAIL_ASSISTANT_DIR)
    assert result.issues == [], messages(result)
    assert set(result.flows.flows) == {"RetailAssistant", "RetailFlow", "WeatherFlow", "ErrorFlow"}
    types = {st.type for st in result.flows.states.values()}
    assert {"message_text", "message_text_random", "input_context", "input_user", "change_context",
            "conditional_exists", "Weather", "Retail"} <= types


def test_yaml_syntax_error_names_file_and_line(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: a}
        states:
          a:
            type: message_text
            properties: {text: "unclosed
    """)
    result = load_flows(folder)
    assert not result.ok
    (error,) = result.errors
    assert error.file.endswith("main.yml") and error.line >= 6 and "invalid YAML" in error.message


def test_unknown_type_and_dangling_transitions_name_the_nearest_state(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions:
          nomatch.none: input_intnt
        states:
          input_intent:
            type: input_context
          say:
            type: mesage_text
            properties: {text: hi}
          ask:
            type: message_text
            properties: {text: "Where?"}
            transitions:
              next_state: input_intetn
          go:
            type: change_context
            properties: {update_keys: {a: b}}
            transitions:
              flow: WeatherFlw
    """, weather="""
        name: WeatherFlow
        states:
          w:
            type: Wether
    """)
    result = load_flows(folder)
    errs = messages(result)
    assert any("main.yml:8:" in m and "unknown state type 'mesage_text'" in m and 'did you mean "message_text"' in m
               for m in errs), errs
    assert any("main.yml:14:" in m and "state 'ask'" in m and "transition 'next_state'" in m
               and "'input_intetn'" in m and 'did you mean "input_intent"' in m for m in errs), errs
    assert any("main.yml:3:" in m and "intent 'nomatch.none' goes to 'input_intnt'" in m
               and 'did you mean "input_intent"' in m for m in errs), errs
    assert any("main.yml:19:" in m and "names no flow 'WeatherFlw'" in m and 'did you mean "WeatherFlow"' in m
               for m in errs), errs
    assert any("weather.yml:4:" in m and "no fulfillment provider is registered for type 'Wether'" in m
               and 'did you mean "Weather"' in m for m in errs), errs


def test_warnings_for_unreachable_states_and_unset_templates(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions:
          nomatch.none: answer
          jarvis_error: answer
        states:
          input_intent:
            type: input_context
          answer:
            type: message_text
            properties:
              text: "The weather is {{weather_staus}} and {{ location }}"
            transitions:
              next_state: input_intent
          orphan:
            type: message_text
            properties: {text: never said}
            transitions: {next_state: input_intent}
    """)
    result = load_flows(folder)
    assert result.ok, messages(result)
    warnings = [str(w) for w in result.warnings]
    assert any("'orphan' is unreachable" in w for w in warnings)
    assert any("template '{{weather_staus}}' is never set" in w and 'did you mean "weather_status"' in w
               for w in warnings), warnings
    assert not any("{{location}}" in w or "'location'" in w for w in warnings)  # an NLU slot is set


def test_duplicate_state_names_across_files_and_endless_loops_are_errors(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: a}
        states:
          input_intent:
            type: input_context
          a:
            type: message_text
            properties: {text: one}
            transitions: {next_state: b}
          b:
            type: message_text
            properties: {text: two}
            transitions: {next_state: a}
    """, other="""
        name: Other
        states:
          a:
            type: reset
    """)
    errs = messages(load_flows(folder))
    assert any("other.yml:3:" in m and "state 'a' is already defined in" in m and "main.yml" in m for m in errs), errs
    assert any("form a loop that never waits for the user" in m for m in errs), errs


def test_missing_properties_and_bad_delay_are_errors(write_flows):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: r}
        states:
          input_intent:
            type: input_context
          r:
            type: message_text_random
            properties:
              delay: soon
            transitions: {next_state: u}
          u:
            type: input_user
            properties: {nlp_type: jarvis}
            transitions: {match: input_intent, nomatch: input_intent}
          c:
            type: conditional_exists
            properties: {key: "{{ not a key }}"}
    """)
    errs = messages(load_flows(folder))
    assert any("`delay` must be a number" in m and "'soon'" in m for m in errs), errs
    assert any("needs `properties.responses`" in m for m in errs), errs
    assert any("needs `properties.entities.slot`" in m for m in errs), errs
    assert any("unknown transition 'nomatch'" in m and 'did you mean "notmatch"' in m for m in errs), errs
    assert any("`key` must name one context key" in m for m in errs), errs


def test_no_main_flow_is_an_error(write_flows):
    folder = write_flows(only="""
        name: Lonely
        states:
          a: {type: message_text, properties: {text: hi}}
    """)
    result = load_flows(folder)
    assert result.flows is None
    assert any("no main flow" in m for m in messages(result))


def test_engine_refuses_to_start_on_errors(write_flows, make_assistant):
    folder = write_flows(main="""
        name: M
        intent_transitions: {nomatch.none: nowhere}
        states:
          input_intent: {type: input_context}
    """)
    with pytest.raises(FlowValidationError) as info:
        make_assistant(flows=folder)
    assert "nowhere" in str(info.value) and "callsense dialog validate" in str(info.value)
