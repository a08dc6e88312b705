"""The turn archive as training material: daily CSV, reviews, NeMo intent/slot files."""

from __future__ import annotations

import csv

from callsense.dialog.archive import export_csv, export_nemo, import_reviews
from callsense.dialog.conversation_tests import SwitchableNlu
from callsense.dialog.nlu import labels


def talk(assistant, session, *texts, **kw):
    return [assistant.reply(session, t, **kw) for t in texts]


def test_daily_csv_review_and_nemo_export(make_assistant, dialog_db, tmp_path, keywords_nlu):
    nlu = SwitchableNlu(keywords_nlu)
    a = make_assistant(nlu=nlu)
    talk(a, "alice", "what's the weather?", "Los Angeles", "where can I get the best pasta in Seattle")
    talk(a, "bob", "how much is laptop memory in Austin", asr_confidence=0.91, channel="voice")
    nlu.down = True
    talk(a, "bob", "this turn hits an NLU outage")
    nlu.down = False

    (path,) = export_csv(dialog_db, tmp_path / "exports")
    assert path.name.startswith("turns-") and path.suffix == ".csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["text"] for r in rows] == ["what's the weather?", "Los Angeles", "where can I get the best pasta in Seattle",
                                         "how much is laptop memory in Austin", "this turn hits an NLU outage"]
    voice = rows[3]
    assert voice["channel"] == "voice" and voice["asr_confidence"] == "0.910" and voice["intent"] == "price_check"
    assert rows[4]["intent"] == "jarvis_error" and rows[1]["state"] == "input_intent"
    assert export_csv(dialog_db, tmp_path / "exports") == [path]  # idempotent: same file rewritten

    # An annotator accepts two turns, corrects two, and makes two mistakes.
    rows[0]["reviewed"] = "yes"
    rows[1]["review_intent"] = "unknown"
    rows[1]["review_tags"] = "B-location I-location"
    rows[2]["review_intent"] = "find_the_store"
    rows[2]["review_tags"] = ("B-interrogative.location O O B-verb B-article B-rating.high B-item.type O B-location")
    rows[3]["review_intent"] = "price_chek"
    rows[4]["review_tags"] = "O O"
    reviewed = tmp_path / "reviewed.csv"
    with reviewed.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = import_reviews(dialog_db, reviewed)
    assert result.updated == 3
    assert any(":5: unknown intent 'price_chek' (did you mean \"price_check\"?)" in p for p in result.problems)
    assert any(":6: 2 tags for 6 tokens" in p for p in result.problems)

    out = tmp_path / "nemo"
    summary = export_nemo(dialog_db, out)
    assert summary.train == 3 and summary.test == 0
    assert (out / "dict.intents.csv").read_text().splitlines() == labels.TRAINING_INTENTS
    slots = (out / "dict.slots.csv").read_text().splitlines()
    assert len(slots) == 53 and slots[52] == "O"
    train = (out / "train.tsv").read_text().splitlines()
    assert train[0] == "sentence\tlabel"
    intents = labels.TRAINING_INTENTS
    assert train[1:] == [f"what's the weather\t{intents.index('weather.weather')}",
                         f"los angeles\t{intents.index('unknown')}",
                         f"where can i get the best pasta in seattle\t{intents.index('find_the_store')}"]
    slot_lines = (out / "train_slots.tsv").read_text().splitlines()
    assert len(slot_lines) == 3
    pasta = [slots[int(i)] for i in slot_lines[2].split()]
    assert pasta == ["B-interrogative.location", "O", "O", "B-verb", "B-article", "B-rating.high", "B-item.type", "O",
                     "B-location"]
    for tsv_line, slot_line in zip(train[1:], slot_lines):
        assert len(tsv_line.split("\t")[0].split()) == len(slot_line.split())

    everything = export_nemo(dialog_db, tmp_path / "all", include_unreviewed=True, test_fraction=0.5)
    assert everything.train + everything.test == 4  # the NLU outage is no training example
    assert (tmp_path / "all" / "test.tsv").exists() and (tmp_path / "all" / "test_slots.tsv").exists()
