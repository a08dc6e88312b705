"""`{{key}}` templates filled from the conversation context, safely.

Only `{{name}}` is recognised: a context key, looked up as a plain dictionary key. Nothing
is evaluated, values are inserted once and never rendered again (a user who types
"{{jarvis_error}}" gets those characters back, not the context), unknown keys render empty
and are reported to the caller.
"""

from __future__ import annotations

from callsense.dialog.flows.model import TEMPLATE, TEMPLATE_NAME


def render(text: str, context: dict) -> tuple[str, list[str]]:
    """(the rendered text, the keys that were missing from the context)."""
    missing: list[str] = []

    def fill(match) -> str:
        name = match.group(1)
        if not TEMPLATE_NAME.match(name):
            return match.group(0)  # not a template: said as written
        value = context.get(name)
        if value is None:
            missing.append(name)
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)

    if "{{" not in text:
        return text, missing
    return TEMPLATE.sub(fill, text), missing
