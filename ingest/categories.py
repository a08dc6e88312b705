"""Category rules over stored calls: the store's rows -> `nlp.categories` -> the store.

Used by the store stage (each batch: the calls it touched) and by `callsense categories
apply` (every stored call, read in batches)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from callsense.core.settings import Settings
from callsense.nlp.categories import CallView, RuleSet, load_rules
from callsense.nlp.characteristics import Spoken
from callsense.store.repository import ResultStore
from callsense.store.rows import CallForRules, CategoryRow

log = logging.getLogger("callsense.categories")


def rules_from_settings(settings: Settings) -> RuleSet:
    """CALLSENSE_CATEGORIES_FILE, or the rules shipped with callsense. Raises
    CategoryRulesError (file and line of each problem) on an invalid file."""
    return load_rules(settings.pipeline.categories_file)


def view_of(call: CallForRules, final: bool | None = None) -> CallView:
    done = call.status in ("done", "failed") if final is None else final
    return CallView([Spoken(*s) for s in call.sentences], call.duration_s if done else None, final=done)


def matches_of(rules: RuleSet, call: CallForRules, final: bool | None = None) -> list[CategoryRow]:
    return [CategoryRow(call.call_id, m.category, m.position, m.at) for m in rules.evaluate(view_of(call, final))]


class CategoryEvaluator:
    """Evaluates the calls a store batch touched. Recorded calls are evaluated once done;
    live calls as their sentences arrive (a category stored at once: the alert), and once
    more, finally, when done (categories that no longer hold then go)."""

    def __init__(self, rules: RuleSet, store: ResultStore):
        self.rules = rules
        self.store = store

    def after_batch(self, call_ids: Iterable[str]) -> list[CategoryRow]:
        ids = sorted(set(call_ids))
        if not ids or not self.rules.categories:
            return []
        new: list[CategoryRow] = []
        final_ids: list[str] = []
        final_rows: list[CategoryRow] = []
        live_rows: list[CategoryRow] = []
        for call in self.store.calls_for_rules(ids):
            if call.status == "done":
                final_ids.append(call.call_id)
                final_rows.extend(matches_of(self.rules, call, final=True))
            elif call.status == "processing" and call.mode == "live":
                live_rows.extend(matches_of(self.rules, call, final=False))
        if live_rows:
            new.extend(self.store.add_categories(live_rows))
        if final_ids:
            new.extend(self.store.set_categories(final_ids, final_rows))
        for row in new:
            log.info("call %s: category %s (at %.1f s)", row.call_id, row.category, row.start or 0.0)
        return new


@dataclass
class ApplyReport:
    calls: int = 0
    sentences: int = 0
    matched_calls: int = 0
    matches: dict[str, int] | None = None
    read_s: float = 0.0
    evaluate_s: float = 0.0
    write_s: float = 0.0
    total_s: float = 0.0


def apply_to_stored(rules: RuleSet, store: ResultStore, *, batch: int = 5000, since: float | None = None,
                    progress=None) -> ApplyReport:
    """Re-evaluate every stored call (final for calls that are no longer processing), `batch`
    calls per read and per write transaction."""
    report = ApplyReport(matches={c: 0 for c in rules.names})
    t0 = time.perf_counter()
    pages = store.iter_calls_for_rules(batch, since=since)
    while True:
        t = time.perf_counter()
        calls: Sequence[CallForRules] | None = next(pages, None)
        report.read_s += time.perf_counter() - t
        if calls is None:
            break
        t = time.perf_counter()
        rows: list[CategoryRow] = []
        for call in calls:
            found = matches_of(rules, call, final=call.status != "processing")
            rows.extend(found)
            report.sentences += len(call.sentences)
            report.matched_calls += bool(found)
            for r in found:
                report.matches[r.category] += 1
        report.evaluate_s += time.perf_counter() - t
        t = time.perf_counter()
        # Calls in progress keep what they have (their alerts); the others get exactly the new set.
        settled = [c.call_id for c in calls if c.status != "processing"]
        settled_set = set(settled)
        store.set_categories(settled, [r for r in rows if r.call_id in settled_set])
        store.add_categories([r for r in rows if r.call_id not in settled_set])
        report.write_s += time.perf_counter() - t
        report.calls += len(calls)
        if progress is not None:
            progress(report.calls)
    report.total_s = time.perf_counter() - t0
    return report
