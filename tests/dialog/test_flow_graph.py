"""`callsense dialog graph`: the flows as Mermaid and Graphviz DOT (and SVG with `dot`),
unreachable states marked; and the Assistant page's "Conversation flows" expander."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.cli import app
from callsense.dialog.flows import RETAIL_ASSISTANT_DIR, load_flows
from callsense.dialog.flows.graph import build_graph, to_dot, to_mermaid, to_svg

FLOWS = """
name: M
intent_transitions: {nomatch.none: hello, jarvis_error: hello, weather.weather: ask}
states:
  init:
    type: message_text
    properties: {text: "hi"}
  input_intent: {type: input_context}
  hello:
    type: message_text
    properties: {text: 'say "hello"'}
    transitions: {next_state: input_intent}
  ask:
    type: input_user
    properties: {entities: {slot: location, require_match: true}, error_text: "a city?"}
    transitions: {match: check}
  check:
    type: conditional_equal
    properties: {value1: '{{location}}', value2: paris}
    transitions: {equal: hello, notequal: input_intent}
  lost:
    type: reset
    transitions: {next_state: input_intent}
"""


@pytest.fixture
def flows(write_flows):
    return load_flows(write_flows(main=FLOWS)).require()


def test_every_state_and_way_out_is_drawn_and_unreachable_ones_are_marked(flows):
    g = build_graph(flows)
    assert g.unreachable == {"lost"} and g.start == "init"
    arrows = {(a, label, b) for a, label, b in g.edges}
    assert ("input_intent", "nomatch.none, jarvis_error", "hello") in arrows  # intents to one state share an arrow
    assert ("ask", "error_text", "ask") in arrows and ("ask", "match", "check") in arrows
    assert ("check", "equal", "hello") in arrows and ("init", "", "input_intent") in arrows

    mermaid = to_mermaid(flows)
    assert mermaid.startswith("flowchart TD\n")
    assert 'subgraph f0["M (main.yml)"]' in mermaid
    assert "#quot;hello#quot;" not in mermaid  # texts are not drawn, names are
    ids = {line.split("[")[0].split("(")[0].split("{")[0].strip(): line for line in mermaid.splitlines()
           if line.startswith("    s")}
    lost_id = next(i for i, line in ids.items() if "lost<br/>" in line)
    assert "<b>unreachable</b>" in ids[lost_id] and f"class {lost_id} unreachable" in mermaid
    assert '-->|"error_text"|' in mermaid

    dot = to_dot(flows)
    assert dot.startswith("digraph flows {") and dot.rstrip().endswith("}")
    assert '"lost" [label="lost\\nreset\\nunreachable"' in dot and 'fillcolor="#ffe5e5"' in dot
    assert '"input_intent" -> "hello" [label="nomatch.none, jarvis_error"];' in dot
    assert '"check" [label="check\\nconditional_equal", shape=diamond];' in dot


def test_the_shipped_flows_have_no_unreachable_state():
    flows = load_flows(RETAIL_ASSISTANT_DIR).require()
    g = build_graph(flows)
    assert g.unreachable == set()
    assert g.flows[0][0] == "RetailAssistant"  # the main flow first
    assert "input_context + follow-ups" in to_mermaid(flows)


def _fake_dot(folder: Path) -> Path:
    """A `dot` that answers -Tsvg with a fixed SVG (the real one is optional)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "dot"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        cat > /dev/null
        echo '<svg xmlns="http://www.w3.org/2000/svg"><text>fake</text></svg>'
    """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def test_the_command_writes_mermaid_dot_and_svg_when_dot_is_installed(tmp_path, write_flows):
    folder = write_flows(main=FLOWS)
    fake = _fake_dot(tmp_path / "bin")
    env = {"CALLSENSE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
           "PATH": f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = CliRunner().invoke(app, ["dialog", "graph", str(folder), "--out", str(tmp_path / "out")], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "flows.mmd").read_text().startswith("flowchart TD")
    assert (tmp_path / "out" / "flows.dot").read_text().startswith("digraph flows")
    assert "fake" in (tmp_path / "out" / "flows.svg").read_text()
    assert "1 unreachable: lost" in result.output

    # without `dot`: the text formats only, and a word on how to get the picture
    env["PATH"] = str(tmp_path / "empty")
    result = CliRunner().invoke(app, ["dialog", "graph", str(folder), "--out", str(tmp_path / "out2")], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["flows.dot", "flows.mmd"]
    assert "Graphviz" in result.output


def test_a_folder_with_errors_is_still_drawn_and_the_command_fails(tmp_path, write_flows):
    folder = write_flows(main=FLOWS.replace("transitions: {match: check}", "transitions: {match: chek}"))
    result = CliRunner().invoke(app, ["dialog", "graph", str(folder), "--out", str(tmp_path / "o"), "--no-svg"],
                                env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 1 and "'chek', which is no state" in result.output
    assert (tmp_path / "o" / "flows.mmd").is_file()


def test_svg_from_graphviz(flows):
    svg = to_svg(to_dot(flows))
    if svg is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg and b"unreachable" in svg


def test_the_assistant_page_shows_the_flows(tmp_path):
    from streamlit.testing.v1 import AppTest

    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.yml").write_text(textwrap.dedent(FLOWS))
    script = f"FOLDER = {str(folder)!r}\n" + textwrap.dedent("""
        import streamlit as st
        from callsense.dialog.dashboard_page import show_flow_graph
        from callsense.dialog.flows import load_flows
        with st.expander("Conversation flows"):
            show_flow_graph(load_flows(FOLDER).require())
    """)
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Graph", "Mermaid", "Graphviz DOT"]
    assert "unreachable (dashed red): lost" in at.caption[0].value
    assert at.code[0].value.startswith("flowchart TD") and at.code[1].value.startswith("digraph flows")
