"""The test suite's own rules (tests/conftest.py): no developer CALLSENSE_* variable reaches a
test or the processes it starts, missing reference data fails under CI instead of
skipping, and Ctrl+C during an in-process CLI command stops pytest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from callsense.core.settings import Settings


TEST_TOOL_VARS = {"CALLSENSE_PG_BIN", "CALLSENSE_CHROMIUM"}  # kept by conftest: where this machine's test tools are


def test_no_callsense_variable_reaches_a_test_or_its_subprocesses():
    assert [name for name in os.environ if name.startswith("CALLSENSE_") and name not in TEST_TOOL_VARS] == []
    out = subprocess.run([sys.executable, "-c", "import os; print(' '.join(k for k in os.environ if k.startswith('CALLSENSE_')))"],
                         capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) <= TEST_TOOL_VARS
    assert Settings().pipeline.topic_prefix == "callsense"  # the default, whatever the developer's shell says


def test_the_test_tool_variables_are_no_settings():
    names = {f"CALLSENSE_{field.upper()}" for field in Settings.model_fields}
    assert names & TEST_TOOL_VARS == set()


def test_a_variable_set_by_the_test_itself_still_applies(monkeypatch):
    monkeypatch.setenv("CALLSENSE_TOPIC_PREFIX", "set-by-the-test")
    assert Settings().pipeline.topic_prefix == "set-by-the-test"
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ['CALLSENSE_TOPIC_PREFIX'])"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set-by-the-test"


def test_missing_shared_data_skips_on_a_clone_and_fails_under_ci(shared_data_rule, tmp_path, monkeypatch):
    missing = tmp_path / "no-shared-data"
    assert shared_data_rule(tmp_path) == tmp_path
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="reference data not found"):
        shared_data_rule(missing)
    for value in ("false", "0", ""):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.skip.Exception):
            shared_data_rule(missing)
    for value in ("true", "1", "yes"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI is set"):
            shared_data_rule(missing)



# --------------------------------------------------------------------------- Ctrl+C

interrupting_app = typer.Typer()


@interrupting_app.command()
def interrupted(swallow: bool = False) -> None:
    """Ctrl+C arriving during a command; `--swallow`: a command that turns it into exit 1."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        if swallow:
            raise typer.Exit(1)
        raise


@interrupting_app.command()
def fails() -> None:
    raise typer.Exit(3)


def test_ctrl_c_during_an_in_process_cli_command_stops_pytest():
    for args in (["interrupted"], ["interrupted", "--swallow"]):
        with pytest.raises(KeyboardInterrupt):
            CliRunner().invoke(interrupting_app, args)
    assert CliRunner().invoke(interrupting_app, ["fails"]).exit_code == 3  # other exits are results, as before


def test_the_worker_command_gives_the_signal_handlers_back(monkeypatch, tmp_path):
    import callsense.cli as cli
    import callsense.ingest.transports.kafka as kafka_transport

    ran = []
    monkeypatch.setattr(kafka_transport, "run_worker", lambda settings, stages, stop: ran.append([s.name for s in stages]))
    monkeypatch.setattr(cli, "_setup_logging", lambda level: None)  # the test's logging stays as it is
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = CliRunner().invoke(cli.app, ["worker", "--stages", "store"], env={"CALLSENSE_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert ran == [["store"]]
    assert {sig: signal.getsignal(sig) for sig in before} == before
