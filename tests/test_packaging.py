"""The install layout: every package folder is installed under the callsense namespace,
and every CLI command explains itself."""

import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def _commands(cmd, prefix=()):
    for name, sub in getattr(cmd, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(sub, (*prefix, name))


def _all_commands():
    import typer.main

    return list(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.output)
    assert "Usage:" in text and len(text) > 120
