"""Load Jarvis/Riva-style flow files as users have them, and say precisely what is wrong.

Accepted as WP-7328's files write them: `delay` inside `properties`, beside it at state
level (or, with loose indentation, under `transitions`); `properties:` with no value; states
without `transitions` that continue with the next state of their file; state names global
across files; `flow: NAME` transitions; `'{{key}}'` keys of `conditional_exists`; the
`jarvis_error` intent; fulfillment types named by a capitalised word.

Problems are `Issue`s with the file and line: errors stop the engine, warnings do not.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from callsense.dialog.flows import model as m
from callsense.dialog.flows.marked_yaml import MarkedDict, MarkedList, MarkedYamlError, load_marked
from callsense.dialog.nlu import labels

FLOW_SUFFIXES = (".yml", ".yaml")


@dataclass
class LoadResult:
    flows: m.FlowSet | None
    issues: list[m.Issue]

    @property
    def errors(self) -> list[m.Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[m.Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.flows is not None and not self.errors

    def require(self) -> m.FlowSet:
        """The flows, or FlowValidationError listing every error."""
        if not self.ok:
            raise m.FlowValidationError(self.issues)
        return self.flows


def nearest(name: str, candidates) -> str:
    """' (did you mean "x"?)' or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def flow_files(path: Path) -> list[Path]:
    """A flow file, or every *.yml / *.yaml directly in a folder (sub-folders such as
    `tests/` are not flows), in name order."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in FLOW_SUFFIXES)
    return [path]


def default_fulfillment_types() -> dict[str, frozenset[str]]:
    """Registered fulfillment state types -> the context keys each writes."""
    from callsense.dialog.fulfillment.base import fulfillment_providers

    out: dict[str, frozenset[str]] = {}
    for name in fulfillment_providers.names():
        try:
            out[name] = frozenset(getattr(fulfillment_providers.get(name), "writes", ()))
        except ImportError:
            out[name] = frozenset()
    return out


class _FileLoader:
    def __init__(self, path: Path, display: str, issues: list[m.Issue], fulfillment: dict[str, frozenset[str]]):
        self.path = path
        self.file = display
        self.issues = issues
        self.fulfillment = fulfillment

    def error(self, line: int, message: str) -> None:
        self.issues.append(m.Issue("error", self.file, line, message))

    def warn(self, line: int, message: str) -> None:
        self.issues.append(m.Issue("warning", self.file, line, message))

    def load(self) -> tuple[m.Flow, list[m.State]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.error(1, f"cannot read the file: {e}")
            return None
        try:
            data, problems = load_marked(text, self.path)
        except MarkedYamlError as e:
            self.error(e.problem.line, f"{e.problem.message} (column {e.problem.column})")
            return None
        for p in problems:
            (self.error if p.severity == "error" else self.warn)(p.line, p.message)
        if data is None:
            self.error(1, "the file is empty; a flow file has `name` and `states`")
            return None
        if not isinstance(data, MarkedDict):
            self.error(getattr(data, "line", 1), "a flow file is a mapping with `name` and `states` at the top")
            return None
        for key in data:
            if key not in ("name", "states", "intent_transitions"):
                self.warn(data.line_of(key), f"unknown top-level key '{key}' is ignored"
                          f"{nearest(key, ('name', 'states', 'intent_transitions'))}")
        name = data.get("name")
        if not isinstance(name, (str, int)) or str(name).strip() == "":
            self.error(data.line_of("name") if "name" in data else 1,
                       f"missing `name:`; other flows refer to a flow by its name (e.g. name: {self.path.stem})")
            name = self.path.stem
        flow = m.Flow(name=str(name).strip(), file=self.file, line=data.line_of("name"))
        states_data = data.get("states")
        if not isinstance(states_data, MarkedDict) or not states_data:
            self.error(data.line_of("states") if "states" in data else 1,
                       "`states:` must be a mapping of state name -> state, with at least one state")
            states_data = MarkedDict()
            states_data.line, states_data.key_lines = 1, {}
        if "intent_transitions" in data:
            flow.is_main = True
            self._intent_transitions(flow, data)
        states: list[m.State] = []
        for state_name, body in states_data.items():
            st = self._state(str(state_name), body, states_data.line_of(state_name), flow.name)
            if st is not None:
                states.append(st)
                flow.state_names.append(st.name)
        for a, b in zip(states, states[1:]):
            a.fall_through = b.name
        return flow, states

    def _intent_transitions(self, flow: m.Flow, data: MarkedDict) -> None:
        it = data["intent_transitions"]
        if it is None:
            self.error(data.line_of("intent_transitions"), "`intent_transitions:` is empty; map NLU intent labels to states")
            return
        if not isinstance(it, MarkedDict):
            self.error(data.line_of("intent_transitions"), "`intent_transitions:` must map intent labels to state names")
            return
        for label, target in it.items():
            line = it.line_of(label)
            if not isinstance(target, str) or not target.strip():
                self.error(line, f"intent '{label}' must name a state")
                continue
            flow.intent_transitions[str(label)] = target.strip()
            flow.intent_lines[str(label)] = line

    def _state(self, name: str, body, line: int, flow_name: str) -> m.State | None:
        if not isinstance(body, MarkedDict):
            self.error(line, f"state '{name}' must be a mapping with at least `type:`")
            return None
        for key in body:
            if key not in m.STATE_KEYS:
                self.warn(body.line_of(key), f"state '{name}': unknown key '{key}' is ignored{nearest(key, m.STATE_KEYS)}")
        type_name = body.get("type")
        if not isinstance(type_name, str) or not type_name.strip():
            self.error(body.line_of("type") if "type" in body else line,
                       f"state '{name}' has no `type:` (one of {', '.join(m.BUILTIN_TYPES)}, or a fulfillment "
                       f"type such as {', '.join(sorted(self.fulfillment)) or 'Weather'})")
            return None
        type_name = type_name.strip()
        st = m.State(name=name, type=type_name, flow=flow_name, file=self.file, line=line)
        st.key_lines["type"] = body.line_of("type")
        known = type_name in m.BUILTIN_TYPES or type_name in self.fulfillment
        if not known:
            hint = nearest(type_name, list(m.BUILTIN_TYPES) + list(self.fulfillment))
            if m.is_fulfillment_type(type_name):
                self.error(st.line_of("type"), f"state '{name}': no fulfillment provider is registered for type "
                           f"'{type_name}'{hint}; registered: {', '.join(sorted(self.fulfillment)) or 'none'}")
            else:
                self.error(st.line_of("type"), f"state '{name}': unknown state type '{type_name}'{hint}")

        props = body.get("properties")
        if props is None:
            props = {}
        elif not isinstance(props, MarkedDict):
            self.error(body.line_of("properties"), f"state '{name}': `properties:` must be a mapping (or empty)")
            props = {}
        transitions = body.get("transitions")
        if transitions is None:
            transitions = {}
        elif not isinstance(transitions, MarkedDict):
            self.error(body.line_of("transitions"), f"state '{name}': `transitions:` must be a mapping of "
                       f"outcome -> state (e.g. next_state: some_state)")
            transitions = {}

        # delay: in properties, beside them, or (loose indentation) under transitions.
        for where, holder in (("properties", props), ("state", body), ("transitions", transitions)):
            if "delay" in holder:
                value = holder["delay"]
                dline = holder.line_of("delay") if isinstance(holder, MarkedDict) else line
                try:
                    delay = float(value)
                    if delay < 0 or delay != delay:
                        raise ValueError
                    st.delay = delay
                except (TypeError, ValueError):
                    self.error(dline, f"state '{name}': `delay` must be a number of seconds >= 0, not {value!r}")

        st.properties = {k: v for k, v in props.items() if k != "delay"}
        if isinstance(props, MarkedDict):
            for k in props:
                st.key_lines[f"properties.{k}"] = props.line_of(k)
            st.key_lines.setdefault("properties", body.line_of("properties"))
        if known and type_name in m.PROPERTY_KEYS:
            for k in st.properties:
                if k not in m.PROPERTY_KEYS[type_name]:
                    self.warn(st.line_of(f"properties.{k}"), f"state '{name}' ({type_name}): unknown property '{k}' "
                              f"is ignored{nearest(k, m.PROPERTY_KEYS[type_name])}")

        allowed = m.TRANSITION_KEYS.get(type_name, m.FULFILLMENT_TRANSITION_KEYS)
        for key, target in transitions.items():
            tline = transitions.line_of(key)
            st.key_lines[f"transitions.{key}"] = tline
            if key == "delay":
                continue
            if not known:
                pass
            elif type_name == m.INPUT_CONTEXT:
                self.warn(tline, f"state '{name}' (input_context): transition '{key}' is ignored; input_context "
                          f"states are routed by the main flow's intent_transitions")
                continue
            elif key not in allowed:
                self.error(tline, f"state '{name}' ({type_name}): unknown transition '{key}'{nearest(key, allowed)}; "
                           f"this type has: {', '.join(allowed)}")
                continue
            if not isinstance(target, (str, int)) or str(target).strip() == "":
                self.error(tline, f"state '{name}': transition '{key}' must name a {'flow' if key == 'flow' else 'state'}")
                continue
            st.transitions[str(key)] = str(target).strip()
        if "next_state" in st.transitions and "flow" in st.transitions:
            self.warn(st.line_of("transitions.flow"), f"state '{name}': both `next_state` and `flow` are given; "
                      f"`next_state` is followed")
        if known:
            self._check_properties(st)
        return st

    def _check_properties(self, st: m.State) -> None:
        p, name = st.properties, st.name
        pline = st.line_of("properties")
        if st.type == m.MESSAGE_TEXT:
            if "text" not in p or p["text"] is None:
                self.error(pline, f"state '{name}' (message_text) needs `properties.text`")
            elif not isinstance(p["text"], str):
                p["text"] = str(p["text"])
        elif st.type == m.MESSAGE_TEXT_RANDOM:
            responses = p.get("responses")
            if isinstance(responses, str):
                p["responses"] = [responses]
            elif not isinstance(responses, list) or not responses:
                self.error(st.line_of("properties.responses") if "responses" in p else pline,
                           f"state '{name}' (message_text_random) needs `properties.responses`, a list of texts")
                p["responses"] = []
            else:
                bad = [r for r in responses if r is None or isinstance(r, (dict, list))]
                if bad:
                    self.error(st.line_of("properties.responses"), f"state '{name}': every response must be a text")
                p["responses"] = [str(r) for r in responses if r is not None and not isinstance(r, (dict, list))]
        elif st.type == m.INPUT_USER:
            entities = p.get("entities")
            slot = entities.get("slot") if isinstance(entities, dict) else None
            if not isinstance(slot, str) or not slot.strip():
                self.error(st.line_of("properties.entities") if "entities" in p else pline,
                           f"state '{name}' (input_user) needs `properties.entities.slot`, the slot to fill")
            if "error_text" in p:
                self._error_text(st)
        elif st.type == m.CHANGE_CONTEXT:
            keys = p.get("update_keys")
            if keys is None:
                if "del_keys" not in p:
                    self.warn(pline, f"state '{name}' (change_context) has no `properties.update_keys` "
                              f"(or `del_keys`): it changes nothing")
                p["update_keys"] = {}
            elif not isinstance(keys, dict):
                self.error(st.line_of("properties.update_keys"), f"state '{name}': `update_keys` must be a mapping key -> value")
                p["update_keys"] = {}
            if "del_keys" in p:
                p["del_keys"] = self._del_keys(st)
        elif st.type == m.CONDITIONAL_EQUAL:
            for key in ("value1", "value2"):
                if key not in p:
                    self.error(pline, f"state '{name}' (conditional_equal) needs `properties.{key}`, e.g. "
                               f"value1: '{{{{intent}}}}' and value2: greeting")
                elif isinstance(p[key], (dict, list)):
                    kind = "mapping" if isinstance(p[key], dict) else "list"
                    self.error(st.line_of(f"properties.{key}"), f"state '{name}': `{key}` must be one value (a text, "
                               f"a number or a '{{{{key}}}}' template), not a {kind}")
            for outcome in ("equal", "notequal"):
                if outcome not in st.transitions and "next_state" not in st.transitions:
                    self.warn(st.line, f"state '{name}' (conditional_equal) has no `{outcome}` transition: the "
                              f"conversation continues with the next state of the file when the values are "
                              f"{'equal' if outcome == 'equal' else 'not equal'}")
        elif st.type == m.CONDITIONAL_EXISTS:
            raw = p.get("key")
            if raw is None:
                self.error(pline, f"state '{name}' (conditional_exists) needs `properties.key`, e.g. key: '{{{{location}}}}'")
            elif m.template_key(raw) is None:
                self.error(st.line_of("properties.key"), f"state '{name}': `key` must name one context key, "
                           f"written '{{{{name}}}}', not {raw!r}")
        elif st.type == m.INPUT_CONTEXT:
            entities = p.get("entities")
            if entities is not None and not isinstance(entities, dict):
                self.warn(st.line_of("properties.entities"), f"state '{name}': `entities` should be a mapping "
                          f"(NARA writes `intent: dontcare`); it is ignored")
            if "follow_up" in p:
                st.follow_up = self._follow_up(st)

    # ---- ALQUIST's later dialect and callsense's additions ---------------------------

    def _error_text(self, st: m.State) -> None:
        p, name = st.properties, st.name
        line = st.line_of("properties.error_text")
        text = p.get("error_text")
        if text is None or isinstance(text, (dict, list)) or str(text).strip() == "":
            self.error(line, f"state '{name}': `error_text` must be a text, said when the answer does not fill "
                       f"the slot (then the state asks again)")
            p.pop("error_text", None)
            return
        p["error_text"] = str(text)
        entities = p.get("entities") if isinstance(p.get("entities"), dict) else {}
        if not entities.get("require_match", False):
            self.warn(line, f"state '{name}': `error_text` is never said: without `require_match: true` every "
                      f"answer fills the slot")
        elif "notmatch" in st.transitions:
            self.warn(st.line_of("transitions.notmatch"), f"state '{name}': transition 'notmatch' is never taken: "
                      f"with `error_text` an answer that does not fill the slot is asked again")

    def _del_keys(self, st: m.State) -> list[str]:
        raw = st.properties.get("del_keys")
        line = st.line_of("properties.del_keys")
        if raw is None:
            self.warn(line, f"state '{st.name}': `del_keys` is empty; it deletes nothing")
            return []
        items = [raw] if isinstance(raw, (str, int)) else raw
        if not isinstance(items, list):
            self.error(line, f"state '{st.name}': `del_keys` must be a list of context keys, e.g. [item, store_type]")
            return []
        keys: list[str] = []
        for i, item in enumerate(items):
            key = m.template_key(str(item)) if isinstance(item, (str, int)) else None
            if key is None:
                iline = raw.line_of(i) if isinstance(raw, MarkedList) else line
                self.error(iline, f"state '{st.name}': `del_keys` entry {item!r} is no context key (write a name such "
                           f"as item, or '{{{{item}}}}')")
                continue
            keys.append(key)
        return keys

    def _follow_up(self, st: m.State) -> m.FollowUp | None:
        raw = st.properties.get("follow_up")
        line = st.line_of("properties.follow_up")
        name = st.name
        default_slots = tuple(sorted(labels.CONTEXT_SLOT_KEYS))
        if raw is True or raw is None:
            return m.FollowUp(slots={"*": default_slots})
        if raw is False:
            return None
        if not isinstance(raw, MarkedDict):
            self.error(line, f"state '{name}': `follow_up` must be `true` or a mapping with `slots` (and optionally "
                       f"`keep`, `refer`, `alternatives`)")
            return None
        for key in raw:
            if key not in ("slots", "keep", "refer", "alternatives"):
                self.warn(raw.line_of(key), f"state '{name}': unknown `follow_up` key '{key}' is ignored"
                          f"{nearest(key, ('slots', 'keep', 'refer', 'alternatives'))}")

        def names(value, where: str, wline: int) -> tuple[str, ...] | None:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
                self.error(wline, f"state '{name}': `follow_up.{where}` must be a list of slot names, e.g. "
                           f"[location, time]")
                return None
            return tuple(v.strip() for v in items)

        slots: dict[str, tuple[str, ...]] = {}
        raw_slots = raw.get("slots", None)
        if raw_slots is None:
            slots = {"*": default_slots}
        elif isinstance(raw_slots, MarkedDict):
            for intent, value in raw_slots.items():
                got = names(value, f"slots.{intent}", raw_slots.line_of(intent))
                if got is not None:
                    slots[str(intent)] = got
        else:
            got = names(raw_slots, "slots", raw.line_of("slots"))
            if got is None:
                return None
            slots = {"*": got}
        keep = ("location",)
        if "keep" in raw:
            got = names(raw["keep"] if raw["keep"] is not None else [], "keep", raw.line_of("keep"))
            keep = got if got is not None else keep
        refer: dict[str, tuple[tuple[str, ...], ...]] = {}
        if "refer" in raw:
            r = raw["refer"]
            if not isinstance(r, MarkedDict):
                self.error(raw.line_of("refer"), f"state '{name}': `follow_up.refer` must map a slot to the words that "
                           f"refer to it, e.g. item: [it, them, that one]")
            else:
                for slot, phrases in r.items():
                    got = names(phrases, f"refer.{slot}", r.line_of(slot))
                    if got is not None:
                        refer[str(slot)] = tuple(tuple(labels.tokenize(p)) for p in got if labels.tokenize(p))
        alternatives: list[frozenset[str]] = []
        if "alternatives" in raw:
            a = raw["alternatives"]
            groups = a if isinstance(a, list) else None
            if groups is None or not all(isinstance(g, list) and len(g) >= 2 for g in groups):
                self.error(raw.line_of("alternatives"), f"state '{name}': `follow_up.alternatives` must be a list of "
                           f"slot groups, e.g. [[item, store_type]]")
            else:
                alternatives = [frozenset(str(x) for x in g) for g in groups]
        return m.FollowUp(slots=slots, keep=keep, refer=refer, alternatives=tuple(alternatives))


def load_flows(path: Path | str, fulfillment_types: dict[str, frozenset[str]] | None = None,
               *, known_intents: list[str] | None = None) -> LoadResult:
    """Load and validate a flow folder (or one file). Never raises for a bad flow: every
    problem is an Issue in the result; `result.require()` gives the flows or raises."""
    from callsense.dialog.flows.validator import validate

    path = Path(path)
    fulfillment = default_fulfillment_types() if fulfillment_types is None else fulfillment_types
    issues: list[m.Issue] = []
    if not path.exists():
        return LoadResult(None, [m.Issue("error", str(path), 0, "no such file or folder")])
    files = flow_files(path)
    if not files:
        return LoadResult(None, [m.Issue("error", str(path), 0, "no flow files (*.yml, *.yaml) in this folder")])

    flows: dict[str, m.Flow] = {}
    aliases: dict[str, str] = {}
    states: dict[str, m.State] = {}
    for file in files:
        display = _display(file)
        loaded = _FileLoader(file, display, issues, fulfillment).load()
        if loaded is None:
            continue
        flow, flow_states = loaded
        if flow.name in flows:
            other = flows[flow.name]
            issues.append(m.Issue("error", display, flow.line, f"flow name '{flow.name}' is already used by "
                                  f"{other.file}:{other.line}; flow names must be unique"))
            continue
        flows[flow.name] = flow
        aliases.setdefault(file.stem, flow.name)
        for st in flow_states:
            if st.name in states:
                other = states[st.name]
                issues.append(m.Issue("error", display, st.line, f"state '{st.name}' is already defined in "
                                      f"{other.file}:{other.line}; state names are global across flow files"))
                continue
            states[st.name] = st

    mains = [f for f in flows.values() if f.is_main]
    if not flows:
        return LoadResult(None, issues)
    if not mains:
        issues.append(m.Issue("error", str(path), 0, "no main flow: one flow file must have `intent_transitions` "
                              "(the map from NLU intent labels to states)"))
        return LoadResult(None, issues)
    if len(mains) > 1:
        for extra in mains[1:]:
            issues.append(m.Issue("error", extra.file, extra.line, f"flow '{extra.name}' also has `intent_transitions`; "
                                  f"only the main flow ({mains[0].file}) may have them"))
    main = mains[0]
    if not main.state_names:
        issues.append(m.Issue("error", main.file, main.line, "the main flow has no states; the conversation starts "
                              "at its first state"))
        return LoadResult(None, issues)
    flowset = m.FlowSet(flows=flows, states=states, main=main, flow_aliases=aliases)
    if known_intents is None:
        known_intents = labels.FLOW_INTENTS + labels.RULE_INTENTS + [labels.NLU_ERROR]
    validate(flowset, issues, fulfillment, known_intents=known_intents)
    issues.sort(key=lambda i: (i.file, i.line, i.severity))
    return LoadResult(flowset, issues)


def _display(file: Path) -> str:
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)
