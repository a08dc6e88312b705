"""YAML with line numbers: moved to `callsense.core.marked_yaml` (the category rules use it too)."""

from callsense.core.marked_yaml import (  # noqa: F401
    MarkedDict, MarkedList, MarkedYamlError, YamlProblem, load_marked,
)
