"""The layers of pyproject.toml's import-linter contracts hold.

import-linter (grimp) walks a package's folder on disk, but callsense's subpackages live in
sibling folders mapped by `[tool.setuptools.package-dir]`, so the check runs on a copy of
the sources laid out as installed (`callsense/core/...`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(dest: Path) -> Path:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):
        target = dest.joinpath(*package.split("."))
        for src in (ROOT / folder).rglob("*.py"):
            rel = src.relative_to(ROOT / folder)
            if rel.parts[0] in ("__pycache__",) or (package == "callsense" and len(rel.parts) > 1):
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    return dest


def test_import_contracts(tmp_path):
    tree = installed_layout(tmp_path / "src")
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).with_name("lint-imports")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSENSE_")}
    env["PYTHONPATH"] = str(tree)
    # -I-free run from the copy: the editable install's finder must not win over the copy.
    run = subprocess.run([sys.executable, "-c", "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
                          "if 'editable' not in getattr(f, '__module__', '') and 'Editable' not in type(f).__name__ "
                          "and 'Editable' not in getattr(f, '__name__', '')]; "
                          "from importlinter.cli import lint_imports_command; lint_imports_command()",
                          "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert lint.exists() or run.returncode == 0, "import-linter is not installed (pip install callsense[test])"
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
