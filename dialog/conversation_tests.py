"""Conversation tests: user turns and what the assistant must answer, in YAML.

```yaml
date: 2025-06-02        # optional: "today" for the forecasts (day 0 of the offline table)
seed: 7                 # optional: message_text_random choices
conversations:
  - name: weather without a place asks for one
    steps:
      - bot: "Hi, I'm NARA"              # no `user`: the greeting of a new conversation
      - user: what's the weather?
        bot: For which location?          # text: the reply contains it (case-insensitive)
        state: weather_input_location     # the state the conversation waits in afterwards
        intent: weather.weather           # the NLU's label for this turn
      - user: Los Angeles
        bot: {regex: "Los Angeles today: .*°F"}
        slots: {location: los angeles}    # the NLU found at least these slots
        context: {location: los angeles}  # the context holds these (null: the key is absent)
        visits: [weather_lookup]          # states passed during the turn
      - user: and in Seattle?
        follow_up: weather.weather        # taken as a follow-up of that question (true/false: whether)
      - user: will it rain tomorrow?
        nlu: down                         # the NLU service fails on this turn
        bot: not answering
```

`bot` is a text (contains), `{contains: ...}`, `{regex: ...}`, `{equals: ...}`,
`{not_contains: ...}`, or a list of these (all must hold). Each conversation runs in a new
session. Failures name the file, the line of the step and what differed.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from callsense.core.settings import Settings
from callsense.dialog.engine import Reply
from callsense.dialog.flows import RETAIL_ASSISTANT_DIR
from callsense.dialog.flows.marked_yaml import MarkedDict, MarkedList, MarkedYamlError, load_marked
from callsense.dialog.nlu.base import NluBackend, NluResult, NluUnavailable

STEP_KEYS = {"user", "bot", "state", "intent", "slots", "context", "visits", "nlu", "asr_confidence", "follow_up"}


class ConversationFileError(ValueError):
    """A conversation test file that cannot be read (with file and line)."""


@dataclass
class ConversationResult:
    file: str
    name: str
    line: int
    failures: list[str] = field(default_factory=list)
    turns: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures


class SwitchableNlu(NluBackend):
    """Wraps the real backend; `down = True` makes it fail like an unreachable service."""

    def __init__(self, inner: NluBackend):
        self.inner = inner
        self.name = getattr(inner, "name", "?")
        self.down = False

    def parse(self, text: str) -> NluResult:
        if self.down:
            raise NluUnavailable("NLU service unavailable (simulated by the conversation test)")
        return self.inner.parse(text)


def conversation_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    return [path]


def flows_for(path: Path, settings: Settings) -> Path:
    """Tests in `<flows>/tests/` belong to `<flows>`; otherwise the configured flows."""
    path = Path(path).resolve()
    for parent in [path] + list(path.parents):
        if parent.name == "tests" and any(parent.parent.glob("*.yml")):
            return parent.parent
    return Path(settings.dialog.flows_dir) if settings.dialog.flows_dir else RETAIL_ASSISTANT_DIR


def _check_text(expected: Any, actual: str) -> str | None:
    """None when `actual` satisfies `expected`, else what was expected."""
    if isinstance(expected, list):
        for e in expected:
            problem = _check_text(e, actual)
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        for kind, value in expected.items():
            value = str(value)
            if kind == "contains" and value.lower() not in actual.lower():
                return f"a reply containing {value!r}"
            if kind == "not_contains" and value.lower() in actual.lower():
                return f"a reply not containing {value!r}"
            if kind == "equals" and actual.strip() != value.strip():
                return f"the reply {value!r}"
            if kind == "regex" and not re.search(value, actual, re.IGNORECASE | re.DOTALL):
                return f"a reply matching /{value}/"
            if kind not in ("contains", "not_contains", "equals", "regex"):
                return f"a known check (contains, regex, equals, not_contains), not {kind!r}"
        return None
    if str(expected).lower() not in actual.lower():
        return f"a reply containing {str(expected)!r}"
    return None


class ConversationRunner:
    """Runs conversation files against one assistant (one throw-away database, one
    catalog seeding), each conversation in its own session."""

    def __init__(self, flows: Path | None = None, *, settings: Settings | None = None,
                 nlu: NluBackend | None = None, database_url: str | None = None):
        from callsense.dialog.assistant import Assistant, build_nlu

        self.settings = settings or Settings()
        self._tmp = None
        if database_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="callsense-dialog-test-")
            database_url = f"sqlite:///{Path(self._tmp.name) / 'conversations.db'}"
        self.today = date.today()
        self.nlu = SwitchableNlu(nlu or build_nlu(self.settings, notice=lambda _msg: None))
        self.assistant = Assistant(self.settings.model_copy(update={"database_url": database_url}),
                                   flows=flows, nlu=self.nlu, seed=0, today=lambda: self.today)

    def close(self) -> None:
        self.assistant.close()
        self.assistant.db.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run_file(self, path: Path) -> list[ConversationResult]:
        path = Path(path)
        display = str(path)
        try:
            data, problems = load_marked(path.read_text(encoding="utf-8"), path)
        except (OSError, UnicodeDecodeError) as e:
            raise ConversationFileError(f"{display}: cannot read: {e}") from None
        except MarkedYamlError as e:
            raise ConversationFileError(f"{display}:{e.problem.line}: {e.problem.message}") from None
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise ConversationFileError(f"{display}:{errors[0].line}: {errors[0].message}")
        if not isinstance(data, MarkedDict) or not isinstance(data.get("conversations"), MarkedList):
            raise ConversationFileError(f"{display}:1: a conversation test file has `conversations:`, a list")
        day = data.get("date")
        self.today = day if isinstance(day, date) else date.fromisoformat(str(day)) if day else date.today()
        self.assistant.engine.seed = int(data.get("seed", 0))
        results = []
        for index, conv in enumerate(data["conversations"]):
            line = data["conversations"].line_of(index)
            if not isinstance(conv, MarkedDict) or not isinstance(conv.get("steps"), MarkedList):
                raise ConversationFileError(f"{display}:{line}: a conversation has `name` and `steps` (a list)")
            results.append(self._run(display, str(conv.get("name") or f"conversation {index + 1}"), line, conv))
        return results

    def _run(self, file: str, name: str, line: int, conv: MarkedDict) -> ConversationResult:
        result = ConversationResult(file, name, line)
        session = f"test-{uuid.uuid4().hex[:12]}"
        steps: MarkedList = conv["steps"]
        for n, step in enumerate(steps, start=1):
            step_line = steps.line_of(n - 1)
            where = f"{file}:{step_line}: [{name}] step {n}"
            if not isinstance(step, MarkedDict):
                result.failures.append(f"{where}: a step is a mapping (user, bot, state, ...)")
                break
            unknown = set(step) - STEP_KEYS
            if unknown:
                result.failures.append(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                       f"a step has {', '.join(sorted(STEP_KEYS))}")
                break
            self.nlu.down = str(step.get("nlu", "")).lower() in ("down", "fail", "error", "unavailable")
            try:
                if "user" in step:
                    text = "" if step["user"] is None else str(step["user"])
                    where += f" (user: {text!r})"
                    asr = step.get("asr_confidence")
                    reply = self.assistant.reply(session, text, asr_confidence=float(asr) if asr is not None else None,
                                                 channel="voice" if asr is not None else "text")
                    result.turns += 1
                else:
                    reply = self.assistant.start(session)
            finally:
                self.nlu.down = False
            problems = self._check(step, reply)
            if problems:
                result.failures.append(f"{where}: expected {'; '.join(problems)}")
                break  # later steps depend on this one
        return result

    @staticmethod
    def _check(step: MarkedDict, reply: Reply) -> list[str]:
        problems = []
        if "bot" in step:
            expected = _check_text(step["bot"], reply.text)
            if expected:
                problems.append(f"{expected}, got {reply.text!r}")
        if "state" in step and reply.state != str(step["state"]):
            problems.append(f"state {step['state']!r}, got {reply.state!r}")
        if "intent" in step and reply.intent != str(step["intent"]):
            problems.append(f"intent {step['intent']!r}, got {reply.intent!r}")
        for key, want in (step.get("slots") or {}).items():
            got = reply.slots.get(str(key))
            if str(got).lower() != str(want).lower():
                problems.append(f"slot {key}={want!r}, got {got!r} (slots: {reply.slots})")
        for key, want in (step.get("context") or {}).items():
            got = reply.context.get(str(key))
            if want is None and got is not None:
                problems.append(f"no context key {key!r}, got {got!r}")
            elif want is not None and str(got).lower() != str(want).lower():
                problems.append(f"context {key}={want!r}, got {got!r}")
        if "follow_up" in step:
            want = step["follow_up"]
            if isinstance(want, bool) or want is None:
                if bool(reply.follow_up) != bool(want):
                    problems.append(f"{'a' if want else 'no'} follow-up, got "
                                    f"{'a follow-up of ' + repr(reply.follow_up) if reply.follow_up else 'none'}")
            elif reply.follow_up != str(want):
                problems.append(f"a follow-up of {str(want)!r}, got {reply.follow_up!r}")
        for state in step.get("visits") or []:
            if str(state) not in reply.visited:
                problems.append(f"a visit to state {state!r}, visited {reply.visited}")
        return problems


def run_conversation_tests(path: Path, *, flows: Path | None = None, settings: Settings | None = None,
                           nlu: NluBackend | None = None) -> list[ConversationResult]:
    """Every conversation of a file or folder; raises ConversationFileError for unreadable files."""
    settings = settings or Settings()
    files = conversation_files(path)
    with ConversationRunner(flows or flows_for(Path(path), settings), settings=settings, nlu=nlu) as runner:
        results: list[ConversationResult] = []
        for file in files:
            results += runner.run_file(file)
        return results
