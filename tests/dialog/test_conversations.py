"""The assistant's conversation tests (dialog/flows/retail_assistant/tests/*.yml), one pytest
case per conversation, run with the default `embedded` NLU (the shipped model) and with the
rule-based `keywords` NLU; and the runner itself."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.dialog.conversation_tests import ConversationFileError, ConversationRunner, conversation_files
from callsense.dialog.flows import RETAIL_ASSISTANT_DIR
from callsense.dialog.flows.marked_yaml import load_marked

TEST_DIR = RETAIL_ASSISTANT_DIR / "tests"


def _cases() -> list:
    cases = []
    for file in conversation_files(TEST_DIR):
        data, _ = load_marked(file.read_text(encoding="utf-8"), file)
        for index, conv in enumerate(data["conversations"]):
            cases.append(pytest.param(file, index, id=f"{file.stem}:{conv['name']}"))
    return cases


def _runner(folder: Path, backend: str) -> ConversationRunner:
    from callsense.dialog.nlu.base import nlu_backends

    settings = Settings(data_dir=folder, nlu_backend=backend)
    return ConversationRunner(RETAIL_ASSISTANT_DIR, settings=settings, nlu=nlu_backends.get(backend)(settings),
                              database_url=f"sqlite:///{folder / 'c.db'}")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    with _runner(tmp_path_factory.mktemp("conversations"), "keywords") as r:
        yield r


@pytest.fixture(scope="module", params=["embedded", "keywords"])
def results(request, tmp_path_factory):
    with _runner(tmp_path_factory.mktemp(f"conversations-{request.param}"), request.param) as r:
        yield {file: r.run_file(file) for file in conversation_files(TEST_DIR)}


def test_there_are_conversations_for_every_flow():
    names = {p.stem for p in conversation_files(TEST_DIR)}
    assert {"weather", "retail", "errors", "followups", "smalltalk", "context", "time"} <= names
    assert len(_cases()) >= 40


@pytest.mark.parametrize("file,index", _cases())
def test_conversation(results, file: Path, index: int):
    result = results[file][index]
    assert result.passed, "\n".join(result.failures)


def test_a_wrong_expectation_fails_with_file_line_and_what_differed(runner, tmp_path):
    file = tmp_path / "wrong.yml"
    file.write_text(textwrap.dedent("""
        date: 2025-06-02
        conversations:
          - name: expects the wrong city
            steps:
              - user: what's the weather in Seattle?
                bot: In Miami today
              - user: never reached
                bot: anything
          - name: wrong state and slot
            steps:
              - user: how much is laptop memory
                state: input_intent
                slots: {item: ram}
    """).lstrip())
    first, second = runner.run_file(file)
    assert not first.passed and len(first.failures) == 1
    assert first.failures[0].startswith(f"{file}:5: [expects the wrong city] step 1 (user: \"what's the weather in Seattle?\")")
    assert "a reply containing 'In Miami today', got" in first.failures[0] and "In Seattle today" in first.failures[0]
    assert "state 'input_intent', got 'retail_input_location'" in second.failures[0]
    assert "slot item='ram', got 'laptop memory'" in second.failures[0]


def test_a_broken_test_file_is_reported_with_its_line(runner, tmp_path):
    file = tmp_path / "broken.yml"
    file.write_text("conversations:\n  - name: x\n    steps:\n      - user: [unclosed\n")
    with pytest.raises(ConversationFileError, match=r"broken.yml:\d+: invalid YAML"):
        runner.run_file(file)
    file.write_text("conversations:\n  - name: x\n    steps:\n      - usr: hello\n")
    (result,) = runner.run_file(file)
    assert "unknown key(s) usr" in result.failures[0]
