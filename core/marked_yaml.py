"""YAML loading that remembers where things are, for error messages with file and line
(flow files of the dialog engine, category rule files).

`load_marked(text, path)` returns plain Python data in which every mapping is a
`MarkedDict` (a dict that knows its own line and the line of each key) and every list is
a `MarkedList` (a list that knows its line and the line of each item). Duplicate keys in
one mapping, which PyYAML silently overwrites, are reported instead.

Flow files extracted from PDFs sometimes carry unquoted templates (`text: {{weather_status}}`),
which YAML reads as a nested flow mapping; such values are turned back into the template
string `"{{weather_status}}"` and reported as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class MarkedDict(dict):
    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class MarkedList(list):
    line: int = 0
    item_lines: list

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


@dataclass
class YamlProblem:
    line: int  # 1-based
    column: int  # 1-based
    message: str
    severity: str = "error"  # error | warning


class MarkedYamlError(Exception):
    def __init__(self, problem: YamlProblem):
        super().__init__(problem.message)
        self.problem = problem


class _Converter:
    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.problems: list[YamlProblem] = []

    def convert(self, node: Node):
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node, deep=True)
        if isinstance(node, SequenceNode):
            out = MarkedList(self.convert(child) for child in node.value)
            out.line = node.start_mark.line + 1
            out.item_lines = [child.start_mark.line + 1 for child in node.value]
            return out
        if isinstance(node, MappingNode):
            template = _unquoted_template(node)
            if template is not None:
                self.problems.append(YamlProblem(
                    node.start_mark.line + 1, node.start_mark.column + 1,
                    f"unquoted template {template}: YAML reads it as a mapping; write it in quotes: '{template}'",
                    "warning",
                ))
                return template
            self.loader.flatten_mapping(node)  # merge keys (<<)
            out = MarkedDict()
            out.line = node.start_mark.line + 1
            out.key_lines = {}
            for key_node, value_node in node.value:
                key = self.convert(key_node)
                if isinstance(key, (dict, list)):
                    raise MarkedYamlError(YamlProblem(
                        key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                        "a mapping or list cannot be a key (is a template missing its quotes?)",
                    ))
                line = key_node.start_mark.line + 1
                if key in out:
                    self.problems.append(YamlProblem(
                        line, key_node.start_mark.column + 1,
                        f"duplicate key '{key}' (first at line {out.key_lines[key]}); the later value wins",
                    ))
                out[key] = self.convert(value_node)
                out.key_lines[key] = line
            return out
        raise MarkedYamlError(YamlProblem(node.start_mark.line + 1, node.start_mark.column + 1,
                                          f"unsupported YAML node {type(node).__name__}"))


def _unquoted_template(node: MappingNode) -> str | None:
    """`{{name}}` unquoted parses as {{name: null}: null}; give back '{{name}}'."""
    if node.flow_style and len(node.value) == 1:
        key, value = node.value[0]
        if (isinstance(key, MappingNode) and key.flow_style and len(key.value) == 1
                and isinstance(value, ScalarNode) and value.value in ("", "~", "null")):
            inner_key, inner_value = key.value[0]
            if (isinstance(inner_key, ScalarNode) and isinstance(inner_value, ScalarNode)
                    and inner_value.value in ("", "~", "null")):
                return "{{" + inner_key.value.strip() + "}}"
    return None


def load_marked(text: str, path: Path | str = "<string>") -> tuple[object, list[YamlProblem]]:
    """Parse one YAML document. Raises MarkedYamlError (with a line) on invalid YAML."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            message = " ".join(p for p in (e.context, e.problem) if p) or str(e)
            line = mark.line + 1 if mark else 1
            column = mark.column + 1 if mark else 1
            raise MarkedYamlError(YamlProblem(line, column, f"invalid YAML: {message}")) from None
        except yaml.YAMLError as e:
            raise MarkedYamlError(YamlProblem(1, 1, f"invalid YAML: {e}")) from None
        if node is None:
            return None, []
        converter = _Converter(loader)
        try:
            data = converter.convert(node)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise MarkedYamlError(YamlProblem(mark.line + 1 if mark else 1, mark.column + 1 if mark else 1,
                                              f"invalid YAML value: {e.problem or e}")) from None
        return data, converter.problems
    finally:
        loader.dispose()
