"""`callsense categories`: check, list and apply category rule files (`nlp/categories.py`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

categories_app = typer.Typer(help="Call categories and alerts: rule files (YAML) checked, listed and applied to stored calls.",
                             no_args_is_help=True)
console = Console()
err = Console(stderr=True)

FILE_HELP = "Rule file (YAML). Default: CALLSENSE_CATEGORIES_FILE, else the rules shipped with callsense."


def _rules(file: Optional[Path]):
    from callsense.core.settings import Settings
    from callsense.nlp.categories import CategoryRulesError, load_rules

    path = file if file is not None else Settings().pipeline.categories_file
    try:
        return load_rules(path)
    except CategoryRulesError as e:
        for p in e.problems:
            err.print(f"[bold red]error:[/] {escape(str(p))}")
        raise typer.Exit(1)


@categories_app.command("validate")
def validate(file: Optional[Path] = typer.Argument(None, help=FILE_HELP)):
    """Check a rule file: every problem with its file, line and the nearest valid key; exit 1 on any."""
    rules = _rules(file)
    console.print(f"{escape(rules.source)}: {len(rules.categories)} categories, OK")


@categories_app.command("list")
def list_(file: Optional[Path] = typer.Argument(None, help=FILE_HELP)):
    """The categories of a rule file."""
    rules = _rules(file)
    table = Table("category", "line", "when", "description")
    for c in rules.categories:
        table.add_row(escape(c.name), str(c.line), "call end" if c.final_only else "live", escape(c.description))
    console.print(table)


@categories_app.command("apply")
def apply(
    file: Optional[Path] = typer.Argument(None, help=FILE_HELP),
    days: Optional[float] = typer.Option(None, help="Only calls started in the last DAYS days (default: every stored call)."),
    batch: int = typer.Option(5000, min=100, help="Calls read and written per transaction."),
):
    """Re-evaluate stored calls with the rules: each finished call's categories become exactly those
    that match now; calls in progress keep theirs and get any new ones."""
    from callsense.core.settings import Settings
    from callsense.ingest.categories import apply_to_stored
    from callsense.ingest.pipeline import PipelineResources

    rules = _rules(file)
    store = PipelineResources(Settings()).store
    since = time.time() - days * 86400 if days is not None else None
    report = apply_to_stored(rules, store, batch=batch, since=since)
    table = Table("category", "calls")
    for name, n in (report.matches or {}).items():
        table.add_row(escape(name), str(n))
    console.print(table)
    console.print(f"{report.calls} calls ({report.sentences} sentences), {report.matched_calls} with a category, "
                  f"in {report.total_s:.1f} s (read {report.read_s:.1f} s, rules {report.evaluate_s:.1f} s, "
                  f"write {report.write_s:.1f} s)")


def register(app: typer.Typer) -> None:
    app.add_typer(categories_app, name="categories")
