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
CONDITIONAL_EQUAL = "conditional_equal"  # ALQUIST: compare two (templated) values
RESET = "reset"

BUILTIN_TYPES = (MESSAGE_TEXT, MESSAGE_TEXT_RANDOM, INPUT_CONTEXT, INPUT_USER, CHANGE_CONTEXT, CONDITIONAL_EXISTS,
                 CONDITIONAL_EQUAL, RESET)
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
    CONDITIONAL_EQUAL: ("equal", "notequal", "next_state"),
    RESET: ("next_state",),
}
#: Fulfillment states (a capitalised type such as `Weather`): `error` is a callsense
#: addition, taken when the provider fails; without it the apology goes on to next_state.
FULFILLMENT_TRANSITION_KEYS = ("next_state", "error")

PROPERTY_KEYS: dict[str, tuple[str, ...]] = {
    MESSAGE_TEXT: ("text", "delay"),
    MESSAGE_TEXT_RANDOM: ("responses", "delay"),
    # follow_up: a callsense addition (see FollowUp); error_text, del_keys: ALQUIST's later dialect
    INPUT_CONTEXT: ("nlp_type", "entities", "delay", "follow_up"),
    INPUT_USER: ("nlp_type", "entities", "delay", "error_text"),
    CHANGE_CONTEXT: ("update_keys", "del_keys", "delay"),
    CONDITIONAL_EXISTS: ("key", "delay"),
    CONDITIONAL_EQUAL: ("value1", "value2", "delay"),
    RESET: ("delay",),
}
STATE_KEYS = ("type", "properties", "transitions", "delay")

#: Context keys the engine itself writes on every input turn or failure.
ENGINE_KEYS = frozenset({
    "intent", "nlu_intent", "nlu_confidence", "user_text", "jarvis_error", "fulfillment_error", "session_id",
    "last_question", "slot_memory", "follow_up", "input_truncated",
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


#: Words a follow-up may have besides the slots it brings ("and what about in Paris?").
FOLLOW_UP_WORDS = frozenset({
    "and", "what", "what's", "whats", "about", "how", "how's", "also", "then", "so", "ok", "okay", "now", "same",
    "for", "in", "at", "on", "the", "a", "an", "please", "instead", "too", "as", "well", "near", "around", "of",
    "with", "thanks", "thank", "you", "but", "or", "maybe", "to", "by", "some", "any", "if", "one", "ones", "try",
    "let's", "lets", "again", "actually", "hmm", "um", "oh", "cool", "great", "alright", "yes", "yeah", "sure",
    "there", "is", "are", "it", "that",
})


#: Words that make an utterance of slots a follow-up even when the NLU reads a question in it.
FOLLOW_UP_CUES = frozenset({"and", "about", "also", "instead", "same", "too", "then", "again", "what's", "whats"})


@dataclass
class FollowUp:
    """`follow_up` of an input_context state (a callsense addition to the format).

    A follow-up ("and in Paris?", "what about tomorrow?", "and the headphones?") brings only
    slots: the previous question is asked again with them changed. Besides, every new
    question replaces the slots of the one before (`keep`: the ones it inherits when it does
    not name them, NARA's remembered place; `refer`: slots carried over when the question
    refers to them, "do you have *it* in stock?")."""

    slots: dict[str, tuple[str, ...]]  # intent or intent prefix ("weather", "*": any) -> slots a follow-up may bring
    keep: tuple[str, ...] = ("location",)
    refer: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)  # slot -> phrases (token tuples)
    alternatives: tuple[frozenset[str], ...] = ()  # slots that stand for one another (item / store_type)

    def slots_for(self, intent: str) -> set[str]:
        out: set[str] = set()
        for key, names in self.slots.items():
            if key in ("*", intent) or intent.startswith(key + "."):
                out.update(names)
        return out

    @property
    def all_slots(self) -> set[str]:
        out = set(self.keep) | set(self.refer)
        for names in self.slots.values():
            out.update(names)
        return out


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
    follow_up: FollowUp | None = None  # input_context only: `properties.follow_up`, parsed
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

    def follow_up(self) -> FollowUp | None:
        """The follow-up rules of the flows: those of the first input_context state that has them."""
        for st in self.states.values():
            if st.follow_up is not None:
                return st.follow_up
        return None

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
