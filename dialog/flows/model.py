"""What a loaded set of Jarvis/Riva-style flow files is: flows, states and their transitions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MESSAGE_TEXT = "message_text"
MESSAGE_TEXT_RANDOM = "message_text_random"
INPUT_CONTEXT = "input_context"
INPUT_USER = "input_user"
CHANGE_CONTEXT = "change_context"
CONDITIONAL_EXISTS = "conditional_exists"
RESET = "reset"

BUILTIN_TYPES = (MESSAGE_TEXT, MESSAGE_TEXT_RANDOM, INPUT_CONTEXT, INPUT_USER, CHANGE_CONTEXT, CONDITIONAL_EXISTS, RESET)
INPUT_TYPES = (INPUT_CONTEXT, INPUT_USER)

#: The transition keys each type understands. `delay` is tolerated in transitions too
#: (loose indentation in files extracted from PDFs puts it there).
TRANSITION_KEYS: dict[str, tuple[str, ...]] = {
    MESSAGE_TEXT: ("next_state",),
    MESSAGE_TEXT_RANDOM: ("next_state",),
    INPUT_CONTEXT: (),
    INPUT_USER: ("match", "notmatch", "next_state"),
    CHANGE_CONTEXT: ("next_state", "flow"),
    CONDITIONAL_EXISTS: ("exists", "notexists", "next_state"),
    RESET: ("next_state",),
}
#: Fulfillment states (a capitalised type such as `Weather`): `error` is a callsense
#: addition, taken when the provider fails; without it the apology goes on to next_state.
FULFILLMENT_TRANSITION_KEYS = ("next_state", "error")

PROPERTY_KEYS: dict[str, tuple[str, ...]] = {
    MESSAGE_TEXT: ("text", "delay"),
    MESSAGE_TEXT_RANDOM: ("responses", "delay"),
    INPUT_CONTEXT: ("nlp_type", "entities", "delay"),
    INPUT_USER: ("nlp_type", "entities", "delay"),
    CHANGE_CONTEXT: ("update_keys", "delay"),
    CONDITIONAL_EXISTS: ("key", "delay"),
    RESET: ("delay",),
}
STATE_KEYS = ("type", "properties", "transitions", "delay")

#: Context keys the engine itself writes on every input turn or failure.
ENGINE_KEYS = frozenset({
    "intent", "nlu_intent", "nlu_confidence", "user_text", "jarvis_error", "fulfillment_error", "session_id",
})

TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
TEMPLATE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def is_fulfillment_type(type_name: str) -> bool:
    """Fulfillment types are a capitalised word: `Weather`, `Retail`."""
    return bool(type_name) and type_name[0].isupper() and type_name.replace("_", "").isalnum()


def template_key(value: object) -> str | None:
    """`'{{location}}'` -> `location`; a bare `location` is accepted as well."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    m = TEMPLATE.fullmatch(text)
    if m:
        text = m.group(1)
    return text if TEMPLATE_NAME.match(text) else None


@dataclass
class Issue:
    severity: str  # "error" | "warning"
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


@dataclass
class State:
    name: str
    type: str
    flow: str
    file: str
    line: int
    properties: dict = field(default_factory=dict)
    transitions: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fall_through: str | None = None  # the next state of the same file, when no transition applies
    key_lines: dict[str, int] = field(default_factory=dict)  # "transitions.next_state" -> line

    @property
    def is_input(self) -> bool:
        return self.type in INPUT_TYPES

    @property
    def is_fulfillment(self) -> bool:
        return self.type not in BUILTIN_TYPES and is_fulfillment_type(self.type)

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


@dataclass
class Flow:
    name: str
    file: str
    line: int
    state_names: list[str] = field(default_factory=list)
    intent_transitions: dict[str, str] = field(default_factory=dict)
    intent_lines: dict[str, int] = field(default_factory=dict)
    is_main: bool = False

    @property
    def first_state(self) -> str | None:
        return self.state_names[0] if self.state_names else None


@dataclass
class FlowSet:
    flows: dict[str, Flow]
    states: dict[str, State]
    main: Flow
    flow_aliases: dict[str, str] = field(default_factory=dict)  # file stem -> flow name

    @property
    def start_state(self) -> str:
        return self.main.state_names[0]

    @property
    def intent_transitions(self) -> dict[str, str]:
        return self.main.intent_transitions

    def flow_named(self, name: str) -> Flow | None:
        return self.flows.get(name) or self.flows.get(self.flow_aliases.get(name, ""))

    def target(self, state: State, outcome: str | None = None) -> str | None:
        """The state after `state` for `outcome` (match, exists, error, ...): that transition,
        else `next_state`, else `flow:` (the first state of that flow), else the next state
        of the file."""
        t = state.transitions
        if outcome and outcome in t:
            return t[outcome]
        if "next_state" in t:
            return t["next_state"]
        if "flow" in t:
            flow = self.flow_named(t["flow"])
            return flow.first_state if flow else None
        return state.fall_through

    def first_input_state(self) -> str | None:
        """Where to wait for the user when a path ends nowhere: the main flow's input_context."""
        for name in self.main.state_names:
            if self.states[name].type == INPUT_CONTEXT:
                return name
        for st in self.states.values():
            if st.type == INPUT_CONTEXT:
                return st.name
        return None


class FlowValidationError(Exception):
    """The flows have errors; the engine refuses to start. `issues` lists all of them."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        errors = [i for i in issues if i.severity == "error"]
        lines = "\n".join(f"  {i}" for i in errors)
        super().__init__(f"the dialog flows have {len(errors)} error(s); fix them and run "
                         f"`callsense dialog validate`:\n{lines}")
