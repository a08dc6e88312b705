"""Checks over a whole set of flows: references, reachability, templates, endless loops."""

from __future__ import annotations

from callsense.dialog.flows import model as m
from callsense.dialog.flows.loader import nearest
from callsense.dialog.nlu import labels


def edges(flows: m.FlowSet, st: m.State) -> list[tuple[str, str]]:
    """(outcome, target state) for every way out of `st`, as the engine would follow them."""
    out: list[tuple[str, str]] = []
    if st.type == m.INPUT_CONTEXT:
        return [(f"intent {label}", target) for label, target in flows.intent_transitions.items()
                if target in flows.states]
    outcomes: tuple[str | None, ...]
    if st.type == m.INPUT_USER:
        entities = st.properties.get("entities") if isinstance(st.properties.get("entities"), dict) else {}
        asks_again = bool(st.properties.get("error_text")) and bool(entities.get("require_match", False))
        outcomes = ("match",) if asks_again else ("match", "notmatch")  # error_text: no notmatch
        if labels.NLU_ERROR in flows.intent_transitions:
            out.append(("jarvis_error", flows.intent_transitions[labels.NLU_ERROR]))
    elif st.type == m.CONDITIONAL_EXISTS:
        outcomes = ("exists", "notexists")
    elif st.type == m.CONDITIONAL_EQUAL:
        outcomes = ("equal", "notequal")
    elif st.is_fulfillment:
        outcomes = ("error", None)
    else:
        outcomes = (None,)
    for outcome in outcomes:
        target = flows.target(st, outcome)
        if target is not None and target in flows.states:
            out.append((outcome or "next", target))
    return out


def reachable(flows: m.FlowSet) -> set[str]:
    """The states some path from the start state leads to."""
    seen: set[str] = set()
    todo = [flows.start_state]
    while todo:
        name = todo.pop()
        if name in seen or name not in flows.states:
            continue
        seen.add(name)
        todo.extend(target for _, target in edges(flows, flows.states[name]))
    return seen


def validate(flows: m.FlowSet, issues: list[m.Issue], fulfillment: dict[str, frozenset[str]],
             *, known_intents: list[str]) -> None:
    def error(st_or_file, line: int, message: str) -> None:
        issues.append(m.Issue("error", st_or_file, line, message))

    def warn(file: str, line: int, message: str) -> None:
        issues.append(m.Issue("warning", file, line, message))

    state_names = list(flows.states)
    flow_names = list(flows.flows) + list(flows.flow_aliases)

    # Dangling references: transitions and intent targets that name no state or flow.
    for st in flows.states.values():
        for key, target in st.transitions.items():
            line = st.line_of(f"transitions.{key}")
            if key == "flow":
                flow = flows.flow_named(target)
                if flow is None:
                    error(st.file, line, f"state '{st.name}': transition 'flow' names no flow '{target}'"
                          f"{nearest(target, flow_names)}; flows: {', '.join(flows.flows)}")
                elif not flow.state_names:
                    error(st.file, line, f"state '{st.name}': flow '{target}' has no states to go to")
            elif target not in flows.states:
                error(st.file, line, f"state '{st.name}': transition '{key}' goes to '{target}', which is no state"
                      f"{nearest(target, state_names)}")
        if not st.transitions and st.fall_through is None and st.type != m.INPUT_CONTEXT:
            warn(st.file, st.line, f"state '{st.name}' is the last state of its file and has no transitions: "
                 f"the conversation goes back to the main input state after it (add transitions.next_state)")
    main = flows.main
    for label, target in main.intent_transitions.items():
        line = main.intent_lines.get(label, main.line)
        if target not in flows.states:
            error(main.file, line, f"intent_transitions: intent '{label}' goes to '{target}', which is no state"
                  f"{nearest(target, state_names)}")
        if known_intents and label not in known_intents:
            warn(main.file, line, f"intent_transitions: '{label}' is not an intent label the NLU produces"
                 f"{nearest(label, known_intents)}; it is routed only if a backend returns it")
    has_input_context = any(st.type == m.INPUT_CONTEXT for st in flows.states.values())
    if not has_input_context:
        warn(main.file, main.line, "no input_context state: the main flow's intent_transitions are never used")
    else:
        for label, what in ((labels.NO_MATCH, "inputs the NLU cannot place get a built-in apology"),
                            (labels.NLU_ERROR, "an NLU outage gets a built-in apology")):
            if label not in main.intent_transitions:
                warn(main.file, main.line, f"intent_transitions has no '{label}': {what}")

    # follow_up: the intents it names.
    for st in flows.states.values():
        if st.follow_up is None:
            continue
        routed = list(main.intent_transitions)
        for key in st.follow_up.slots:
            if key != "*" and not any(label == key or label.startswith(key + ".") for label in routed):
                warn(st.file, st.line_of("properties.follow_up"), f"state '{st.name}': follow_up.slots names '{key}', "
                     f"which is no routed intent (nor the start of one){nearest(key, routed)}; it is never used")

    # Reachability from the start state.
    seen = reachable(flows)
    for st in flows.states.values():
        if st.name not in seen:
            warn(st.file, st.line, f"state '{st.name}' is unreachable: no transition, intent or file order leads to it")

    # Endless loops: a cycle of states that never waits for the user and never branches.
    _check_loops(flows, error)

    # Templates that nothing sets.
    settable = set(m.ENGINE_KEYS) | labels.CONTEXT_SLOT_KEYS
    for keys in fulfillment.values():
        settable |= keys
    for st in flows.states.values():
        if st.type == m.CHANGE_CONTEXT:
            settable |= {str(k) for k in (st.properties.get("update_keys") or {})}
        if st.type == m.INPUT_USER:
            entities = st.properties.get("entities")
            if isinstance(entities, dict) and isinstance(entities.get("slot"), str):
                settable.add(entities["slot"].strip())
    for st in flows.states.values():
        for where, text in _texts(st):
            for raw in m.TEMPLATE.findall(text):
                line = st.line_of(f"properties.{where}")
                if not m.TEMPLATE_NAME.match(raw):
                    warn(st.file, line, f"state '{st.name}': '{{{{{raw}}}}}' is not a template (a template names one "
                         f"context key); it is said as written")
                elif raw not in settable:
                    warn(st.file, line, f"state '{st.name}': template '{{{{{raw}}}}}' is never set by any flow, slot "
                         f"or provider{nearest(raw, settable)}; it renders empty")
        if st.type == m.CONDITIONAL_EXISTS:
            key = m.template_key(st.properties.get("key"))
            if key and key not in settable:
                warn(st.file, st.line_of("properties.key"), f"state '{st.name}': key '{key}' is never set by any "
                     f"flow, slot or provider{nearest(key, settable)}; 'exists' is never taken")


def _texts(st: m.State):
    p = st.properties
    if st.type == m.MESSAGE_TEXT and isinstance(p.get("text"), str):
        yield "text", p["text"]
    elif st.type == m.MESSAGE_TEXT_RANDOM:
        for r in p.get("responses") or []:
            yield "responses", r
    elif st.type == m.CHANGE_CONTEXT:
        for v in (p.get("update_keys") or {}).values():
            if isinstance(v, str):
                yield "update_keys", v
    elif st.type == m.CONDITIONAL_EQUAL:
        for key in ("value1", "value2"):
            if isinstance(p.get(key), str):
                yield key, p[key]
    elif st.type == m.INPUT_USER and isinstance(p.get("error_text"), str):
        yield "error_text", p["error_text"]


def _check_loops(flows: m.FlowSet, error) -> None:
    """Strongly connected components of the non-input states; a component with a cycle and
    no state that can leave it by a decision (conditional, fulfillment error) loops forever."""
    graph = {name: [t for _, t in edges(flows, st) if not flows.states[t].is_input]
             for name, st in flows.states.items() if not st.is_input}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = [0]
    components: list[list[str]] = []

    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                components.append(comp)

    for comp in components:
        cyclic = len(comp) > 1 or comp[0] in graph[comp[0]]
        if not cyclic:
            continue
        branching = any(flows.states[n].type in (m.CONDITIONAL_EXISTS, m.CONDITIONAL_EQUAL)
                        or flows.states[n].is_fulfillment for n in comp)
        if not branching:
            first = flows.states[sorted(comp, key=lambda n: (flows.states[n].file, flows.states[n].line))[0]]
            error(first.file, first.line, f"states {', '.join(sorted(comp))} form a loop that never waits for the "
                  f"user: the conversation would never end; route one of them to an input state")
