"""`callsense dialog validate|test|export-csv|import-reviews|export-nemo` and `callsense chat`."""

from __future__ import annotations

import csv
import textwrap

import pytest
from typer.testing import CliRunner

from callsense.cli import app
from callsense.dialog.flows import RETAIL_ASSISTANT_DIR


@pytest.fixture
def cli(tmp_path):
    env = {"CALLSENSE_DATA_DIR": str(tmp_path / "data"), "CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "CALLSENSE_NLU_BACKEND": "keywords", "COLUMNS": "200"}
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


def test_validate_the_shipped_flows(cli):
    result = cli("dialog", "validate")
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output and "main flow 'RetailAssistant'" in result.output


def test_validate_reports_errors_with_file_and_line_and_fails(cli, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.yml").write_text(textwrap.dedent("""
        name: Main
        intent_transitions:
          nomatch.none: fallbak
        states:
          input_intent:
            type: input_context
          fallback:
            type: message_text
            properties: {text: "Sorry? {{nothing}}"}
            transitions: {next_state: input_intent}
    """).lstrip())
    result = cli("dialog", "validate", str(bad))
    assert result.exit_code == 1
    assert "main.yml:3: intent_transitions: intent 'nomatch.none' goes to 'fallbak'" in result.output
    assert 'did you mean "fallback"?' in result.output
    assert "warning" in result.output and "'{{nothing}}' is never set" in result.output


def test_validate_strict_fails_on_warnings(cli, tmp_path):
    folder = tmp_path / "warn"
    folder.mkdir()
    (folder / "main.yml").write_text(
        "name: M\nintent_transitions: {nomatch.none: input_intent, jarvis_error: input_intent}\n"
        "states:\n  input_intent: {type: input_context}\n  lost: {type: reset, transitions: {next_state: input_intent}}\n")
    assert cli("dialog", "validate", str(folder)).exit_code == 0
    assert cli("dialog", "validate", "--strict", str(folder)).exit_code == 1


def test_conversation_tests_from_the_command_line(cli, tmp_path):
    result = cli("dialog", "test", str(RETAIL_ASSISTANT_DIR / "tests" / "retail.yml"))
    assert result.exit_code == 0, result.output
    assert "PASS nearest Thai food (WP-7328)" in result.output and "conversations passed" in result.output
    wrong = RETAIL_ASSISTANT_DIR / "tests" / "retail.yml"
    broken = tmp_path / "wrong.yml"
    broken.write_text(wrong.read_text().replace("Silom Thai Express", "Some Other Place"))
    result = cli("dialog", "test", "--flows", str(RETAIL_ASSISTANT_DIR), str(broken))
    assert result.exit_code == 1 and "FAIL nearest Thai food" in result.output and "Some Other Place" in result.output


def test_chat_then_export_and_retrain_files(cli, tmp_path):
    result = cli("chat", "--no-delays", "--session", "cli-1", input="what's the weather?\nAustin\n\n")
    assert result.exit_code == 0, result.output
    assert "For which location?" in result.output and "In Austin today" in result.output
    assert "--session cli-1" in result.output
    result = cli("dialog", "export-csv", "--out", str(tmp_path / "csv"))
    assert result.exit_code == 0 and "turns-" in result.output
    (csv_file,) = (tmp_path / "csv").glob("turns-*.csv")
    with csv_file.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["reviewed"] = "yes"
    with csv_file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = cli("dialog", "import-reviews", str(csv_file))
    assert result.exit_code == 0 and "2 turn(s) reviewed" in result.output
    result = cli("dialog", "export-nemo", str(tmp_path / "nemo"))
    assert result.exit_code == 0 and "2 training" in result.output
    assert (tmp_path / "nemo" / "train.tsv").read_text().splitlines()[1:] == ["what's the weather\t3", "austin\t18"]


def test_export_csv_rejects_a_bad_day(cli):
    result = cli("dialog", "export-csv", "--day", "June 2nd")
    assert result.exit_code == 1 and "--day must look like" in result.output


def test_chat_ends_when_the_user_says_goodbye(cli):
    result = cli("chat", "--no-delays", "--session", "cli-bye", input="goodbye\nwhat's the weather?\n\n")
    assert result.exit_code == 0, result.output
    assert "assistant:" in result.output and "For which location?" not in result.output, "the chat went on after goodbye"
    assert "--session cli-bye" in result.output
