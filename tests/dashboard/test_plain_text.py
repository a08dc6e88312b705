"""Names and texts from calls are shown as typed: a source file named like Markdown must not
become an image, a link or a heading on the dashboard's pages (`ui.plain`)."""

import pytest
from markdown_it import MarkdownIt

from callsense.dashboard.ui import ZWSP, plain

HOSTILE = [
    "![pixel](http://tracker.invalid/p.png).wav",
    "[click](javascript:alert(1)).mp3",
    "# heading *bold* _it_ `code` <b>x</b>.wav",
    ":red[alarm] :material/warning: $x^2$ | a | b |",
    "call\\with\\backslashes~~strike~~.wav",
    "see https://tracker.invalid/x and www.example.org or write to eve@example.org",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_markdown_in_a_name_renders_as_the_name(name):
    md = MarkdownIt("commonmark")
    html = md.render(plain(name))
    assert "<img" not in html and "<a " not in html and "<h1" not in html and "<em" not in html and "<strong" not in html
    # What a person sees is the name itself.
    text = "".join(t.content for t in md.parseInline(plain(name))[0].children if t.type == "text")
    assert text.replace(ZWSP, "") == name
    # No bare URL or address is left whole for GFM's autolinks to find.
    assert not any(needle in text for needle in ("://", "www.", "eve@"))


def test_whitespace_is_folded():
    assert plain("a\n\n# b") == "a \\# b"
