"""Jarvis/Riva-style YAML dialog flows: loading, validation, and the assistant's own flows."""

from __future__ import annotations

from pathlib import Path

from callsense.dialog.flows.loader import LoadResult, load_flows
from callsense.dialog.flows.model import FlowSet, FlowValidationError, Issue

#: The retail assistant's own four flows (main, retail, weather, error).
RETAIL_ASSISTANT_DIR = Path(__file__).parent / "retail_assistant"

__all__ = ["FlowSet", "FlowValidationError", "Issue", "LoadResult", "RETAIL_ASSISTANT_DIR", "load_flows"]
