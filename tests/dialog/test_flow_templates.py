"""`{{key}}` templates: filled from the context, never evaluated, unknown keys reported."""

from __future__ import annotations

from callsense.dialog.templates import render


def test_keys_are_filled_and_unknown_keys_render_empty_and_are_reported():
    text, missing = render("In {{location}}: {{ weather_status }} {{nope}}!", {"location": "Seattle",
                                                                               "weather_status": "rain"})
    assert text == "In Seattle: rain !" and missing == ["nope"]


def test_values_are_inserted_once_and_never_rendered_again():
    context = {"user_text": "{{secret}}", "secret": "s3cr3t"}
    text, missing = render("You said: {{user_text}}", context)
    assert text == "You said: {{secret}}" and missing == []


def test_expressions_are_not_evaluated():
    context = {"a": 1}
    for template in ("{{ a + 1 }}", "{{ __import__('os').getcwd() }}", "{{a.__class__}}", "{{ [].__class__ }}"):
        text, _ = render(template, context)
        assert "1" not in text.replace(template, "") and "/" not in text and "class '" not in text
    assert render("{{ a + 1 }}", context)[0] == "{{ a + 1 }}"  # not a template: said as written
    assert render("{{a.__class__}}", context) == ("", ["a.__class__"])  # a key that is not there


def test_numbers_read_naturally():
    assert render("{{price}} / {{count}}", {"price": 40.0, "count": 3})[0] == "40 / 3"
