"""Draw a flow folder: Mermaid and Graphviz DOT text, and SVG when Graphviz's `dot` is installed.

One box per state (grouped by flow, shaped by type), one arrow per way out of it as the
engine follows them (`validator.edges`: transitions, intent routes, the next state of the
file), labelled with the outcome; intents routed to the same state share one arrow.
States that nothing reaches from the start state are drawn dashed in red and labelled
"unreachable"; the start state is drawn bold.

    callsense dialog graph dialog/flows/retail_assistant --out build/flows
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from callsense.dialog.flows import model as m
from callsense.dialog.flows.validator import edges, reachable

#: Arrow labels longer than this are shortened ("weather.sunny, weather.cloudy, +3").
MAX_LABEL = 60


@dataclass
class Graph:
    flows: list[tuple[str, str, list[str]]]  # (flow name, file, state names)
    states: dict[str, m.State]
    edges: list[tuple[str, str, str]]  # (from, label, to)
    unreachable: set[str] = field(default_factory=set)
    start: str = ""


def build_graph(flows: m.FlowSet) -> Graph:
    seen = reachable(flows)
    out: list[tuple[str, str, str]] = []
    for st in flows.states.values():
        grouped: dict[str, list[str]] = {}
        for outcome, target in edges(flows, st):
            label = outcome[len("intent "):] if outcome.startswith("intent ") else outcome
            grouped.setdefault(target, []).append("" if label == "next" else label)
        if st.type == m.INPUT_USER and st.properties.get("error_text"):
            grouped.setdefault(st.name, []).append("error_text")
        for target, names in grouped.items():
            names = [n for n in dict.fromkeys(names) if n]
            label = ", ".join(names)
            if len(label) > MAX_LABEL:
                shown: list[str] = []
                for n in names:
                    if len(", ".join(shown + [n])) > MAX_LABEL - 6:
                        break
                    shown.append(n)
                label = ", ".join(shown) + f", +{len(names) - len(shown)}"
            out.append((st.name, label, target))
    ordered = [flows.main] + [f for f in flows.flows.values() if f is not flows.main]  # the main flow first
    groups = [(f.name, f.file, list(f.state_names)) for f in ordered]
    return Graph(groups, dict(flows.states), out, set(flows.states) - seen, flows.start_state)


def _kind(st: m.State) -> str:
    if st.is_fulfillment:
        return f"{st.type} (fulfillment)"
    extra = " + follow-ups" if st.follow_up is not None else ""
    return st.type + extra


# ------------------------------------------------------------------------------ Mermaid


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(flows: m.FlowSet) -> str:
    g = build_graph(flows)
    ids = {name: f"s{i}" for i, name in enumerate(g.states)}
    lines = ["flowchart TD"]
    for i, (flow, file, names) in enumerate(g.flows):
        lines.append(f'  subgraph f{i}["{_mermaid_text(flow)} ({_mermaid_text(Path(file).name)})"]')
        for name in names:
            st = g.states[name]
            label = f"{_mermaid_text(name)}<br/><small>{_mermaid_text(_kind(st))}</small>"
            if name in g.unreachable:
                label += "<br/><b>unreachable</b>"
            shape = ('(["', '"])') if st.is_input else ('{"', '"}') if st.type in (
                m.CONDITIONAL_EXISTS, m.CONDITIONAL_EQUAL) else ('[["', '"]]') if st.is_fulfillment else ('["', '"]')
            lines.append(f"    {ids[name]}{shape[0]}{label}{shape[1]}")
        lines.append("  end")
    for src, label, dst in g.edges:
        if src not in ids or dst not in ids:
            continue
        arrow = f'-->|"{_mermaid_text(label)}"|' if label else "-->"
        lines.append(f"  {ids[src]} {arrow} {ids[dst]}")
    lines.append("  classDef unreachable fill:#ffe5e5,stroke:#cc0000,stroke-dasharray:5 5,color:#990000")
    lines.append("  classDef start stroke-width:3px")
    if g.unreachable:
        lines.append("  class " + ",".join(ids[n] for n in g.states if n in g.unreachable) + " unreachable")
    if g.start in ids:
        lines.append(f"  class {ids[g.start]} start")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- DOT


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(flows: m.FlowSet) -> str:
    g = build_graph(flows)
    lines = ["digraph flows {", "  rankdir=TB;",
             '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for i, (flow, file, names) in enumerate(g.flows):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_id(f'{flow} ({Path(file).name})')}; style=dashed; color=gray;")
        for name in names:
            st = g.states[name]
            label = f"{name}\n{_kind(st)}" + ("\nunreachable" if name in g.unreachable else "")
            attrs = [f"label={_dot_id(label)}"]
            if st.is_input:
                attrs.append("shape=oval")
            elif st.type in (m.CONDITIONAL_EXISTS, m.CONDITIONAL_EQUAL):
                attrs.append("shape=diamond")
            elif st.is_fulfillment:
                attrs.append("shape=box3d")
            if name in g.unreachable:
                attrs.append('style="dashed,filled", fillcolor="#ffe5e5", color="#cc0000", fontcolor="#990000"')
            if name == g.start:
                attrs.append("penwidth=3")
            lines.append(f"    {_dot_id(name)} [{', '.join(attrs)}];")
        lines.append("  }")
    for src, label, dst in g.edges:
        if src in g.states and dst in g.states:
            attr = f" [label={_dot_id(label)}]" if label else ""
            lines.append(f"  {_dot_id(src)} -> {_dot_id(dst)}{attr};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_binary() -> str | None:
    return shutil.which("dot")


def to_svg(dot_text: str, *, binary: str | None = None, timeout_s: float = 60.0) -> bytes | None:
    """The DOT text rendered by Graphviz (`dot -Tsvg`), or None when `dot` is not installed."""
    binary = binary or dot_binary()
    if binary is None:
        return None
    done = subprocess.run([binary, "-Tsvg"], input=dot_text.encode("utf-8"), capture_output=True,
                          timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot -Tsvg failed: {done.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return done.stdout


def write_graph(flows: m.FlowSet, out: Path, *, name: str = "flows", svg: bool = True) -> dict[str, Path]:
    """Write NAME.mmd and NAME.dot (and NAME.svg when `dot` is there) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "flows"
    written = {}
    mermaid = out / f"{safe}.mmd"
    mermaid.write_text(to_mermaid(flows), encoding="utf-8")
    written["mermaid"] = mermaid
    dot_text = to_dot(flows)
    dot = out / f"{safe}.dot"
    dot.write_text(dot_text, encoding="utf-8")
    written["dot"] = dot
    if svg:
        image = to_svg(dot_text)
        if image is not None:
            path = out / f"{safe}.svg"
            path.write_bytes(image)
            written["svg"] = path
    return written
