"""Dataset versions: content addressing, fixed splits by conversation, the leak check,
lineage from files, dashboard reviews and the assistant's archive, formats out, diff, and
the decoded-audio cache."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from callsense.finetune.audio_cache import AudioCache
from callsense.finetune.datasets import DatasetStore, SplitPlan, text_key
from callsense.finetune.workspace import FinetuneError

from finetune_helpers import write_meld_slice, write_seq_slice


def test_same_content_same_id_and_splits_keep_conversations_whole(workspace, meld_dir, tmp_path):
    train = write_meld_slice(meld_dir / "train.csv", tmp_path / "train.csv", 60)
    store = DatasetStore(workspace)
    first = store.build("sentiment", [f"meld:{train}"], name="a", plan=SplitPlan(0.2, 0.2, seed=5))
    again = store.build("sentiment", [f"meld:{train}"], name="a", plan=SplitPlan(0.2, 0.2, seed=5))
    other_seed = store.build("sentiment", [f"meld:{train}"], plan=SplitPlan(0.2, 0.2, seed=6))
    assert first.created and not again.created and again.version.id == first.version.id
    assert other_seed.version.id != first.version.id
    v = first.version
    rows = v.rows()
    assert {r["split"] for r in rows} == {"train", "dev", "test"}
    split_of_group: dict[str, set[str]] = {}
    for r in rows:
        split_of_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values()), "a conversation straddles two splits"
    # lineage: file and line of every row; context: the earlier turns of the same dialogue
    r = next(r for r in rows if r["position"] >= 2)
    assert r["lineage"]["source"] == "files" and r["lineage"]["ref"].startswith("train.csv:")
    assert len(r["context"]) == min(r["position"], 8)
    assert v.verify() == []
    assert store.get("a").id == v.id and store.get(v.id[:6]).id == v.id


def test_leak_check_drops_test_texts_from_train(workspace, meld_dir, tmp_path):
    train = write_meld_slice(meld_dir / "train.csv", tmp_path / "train.csv", 30)
    test = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 10)
    with open(test, encoding="utf-8", newline="") as fh:
        test_texts = [row["Utterance"] for row in csv.DictReader(fh)]
    # Plant two test utterances into train (different punctuation and case: still the same text).
    with open(train, "a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([99001, test_texts[3].upper() + "!!", "X", "neutral", "neutral", 9999, 0, 1, 1, "", ""])
        w.writerow([99002, test_texts[5], "X", "neutral", "neutral", 9999, 1, 1, 1, "", ""])
    store = DatasetStore(workspace)
    v = store.build("sentiment", [f"meld:{train}", f"meld:{test}@test"], plan=SplitPlan(0.1, 0.0)).version
    test_keys = {text_key(r) for r in v.rows("test")}
    assert not any(text_key(r) in test_keys for r in v.rows("train") + v.rows("dev"))
    assert sum(v.manifest["leak_check"]["dropped"].values()) >= 2
    with pytest.raises(FinetuneError, match="test text also in"):
        store.build("sentiment", [f"meld:{train}", f"meld:{test}@test"], plan=SplitPlan(0.1, 0.0), on_leak="error")
    kept = store.build("sentiment", [f"meld:{train}", f"meld:{test}@test"], plan=SplitPlan(0.1, 0.0), on_leak="keep").version
    assert kept.manifest["leak_check"]["remaining_overlap"] >= 2 and kept.id != v.id


def test_versions_are_immutable_and_tampering_is_detected(workspace, meld_dir, tmp_path):
    train = write_meld_slice(meld_dir / "train.csv", tmp_path / "train.csv", 10)
    v = DatasetStore(workspace).build("sentiment", [f"meld:{train}"]).version
    path = v.path / "train.jsonl"
    assert not path.stat().st_mode & 0o222, "split files must be written read-only"
    path.chmod(0o644)
    path.write_text(path.read_text().replace('"neutral"', '"positive"', 1))
    assert any("modified" in p for p in v.verify())


def test_diff_reports_relabelled_added_and_removed_rows(workspace, meld_dir, tmp_path):
    a_csv = write_meld_slice(meld_dir / "train.csv", tmp_path / "a.csv", 12)
    rows = list(csv.DictReader(open(a_csv, encoding="utf-8")))
    rows[0]["Sentiment"] = "positive" if rows[0]["Sentiment"] != "positive" else "negative"
    rows = rows[:-3]  # three removed
    b_csv = tmp_path / "b" / "a.csv"
    b_csv.parent.mkdir()
    with open(b_csv, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    store = DatasetStore(workspace)
    a = store.build("sentiment", [f"meld:{a_csv}"], name="a").version
    b = store.build("sentiment", [f"meld:{b_csv}"], name="b").version
    d = store.diff("a", "b")
    assert d["relabelled"] == 1 and d["removed"] == 3 and d["added"] == 0
    assert a.id != b.id


def test_snips_becomes_nemo_files_that_read_back(workspace, snips_dir, tmp_path):
    from callsense.dialog.nlu.data.nemo_files import read_split

    train = write_seq_slice(snips_dir / "train", tmp_path / "snips" / "train", 80)
    dev = write_seq_slice(snips_dir / "dev", tmp_path / "snips" / "dev", 30)
    v = DatasetStore(workspace).build("intent-slot", [f"seq:{train}", f"seq:{dev}@test"], plan=SplitPlan(0.2, 0.0)).version
    assert v.counts()["test"] == 30 and v.counts()["dev"] > 0
    folder = v.export()
    back = read_split(folder, "test")
    assert [ex.words for ex in back.examples] == [r["words"] for r in v.rows("test")]
    assert back.slots[-1] == "O" and set(back.intents) == {r["intent"] for r in v.rows()}
    # NeMo folders are a source too, and their dictionaries keep their order
    again = DatasetStore(workspace).build("intent-slot", [f"nemo:{folder}"], plan=SplitPlan(0.0, 0.0)).version
    assert again.dictionaries["intents"] == v.dictionaries["intents"]
    assert again.counts()["test"] == 30  # a NeMo test prefix stays test


def test_asr_manifests_and_the_decoded_audio_cache(workspace, audio_manifest):
    store = DatasetStore(workspace)
    v = store.build("asr", [f"audio-manifest:{audio_manifest}"], plan=SplitPlan(0.2, 0.3)).version
    assert sum(v.counts().values()) == 10
    stereo = [r for r in v.rows() if r["audio"].endswith("stereo_diarization.wav")]
    assert sorted(r["channel"] for r in stereo) == [0, 1] and len({r["audio_sha256"] for r in stereo}) == 1

    cold = AudioCache(workspace.audio_cache_dir)
    folder = v.export(cache=cold)
    cached = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in workspace.audio_cache_dir.rglob("*.wav")}
    assert len(cached) == 10
    warm = AudioCache(workspace.audio_cache_dir)
    warm._decode = lambda *args, **kw: pytest.fail(f"decoded again on a warm cache: {args}")
    v.export(cache=warm)
    assert cold.stats.misses == 10 and cold.stats.hits == 0
    assert warm.stats.misses == 0 and warm.stats.hits == 10 and warm.stats.decode_s == 0
    # The warm export read the cached files as they were: none written again.
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in workspace.audio_cache_dir.rglob("*.wav")} == cached
    lines = [json.loads(l) for split in ("train", "dev", "test") if (folder / f"{split}_manifest.json").exists()
             for l in (folder / f"{split}_manifest.json").read_text().splitlines()]
    assert len(lines) == 10 and all(Path(l["audio_filepath"]).is_file() and l["duration"] > 0.5 for l in lines)
    # the two channels of the call were cut apart: different cached files, same length
    ch = [l for l in lines if l["text"].startswith(("he began", "the horizon"))]
    assert len({l["audio_filepath"] for l in ch}) == 2 and abs(ch[0]["duration"] - ch[1]["duration"]) < 0.01


def _seed_reviews(engine) -> None:
    from callsense.store.review import LabelReview
    from callsense.store.schema import Sentence

    texts = ["hello thanks for calling", "my order never arrived", "this is ridiculous", "i can fix that for you",
             "oh great thank you so much"]
    now = time.time()
    with Session(engine) as s:
        for i, (text, channel) in enumerate(zip(texts, [0, 1, 1, 0, 0])):
            s.add(Sentence(call_id="call-1", channel=channel, utterance_idx=i, idx=0, speaker=["agent", "customer"][channel],
                           start=float(i), end=i + 0.9, text=text, sentiment="neutral", confidence=0.4))
        s.add(LabelReview(call_id="call-1", channel=1, utterance_idx=2, idx=0, original_text=texts[2],
                          original_sentiment="neutral", original_confidence=0.4, text=texts[2], sentiment="negative",
                          action="corrected", reviewer="rita", reviewed_at=now - 50))
        s.add(LabelReview(call_id="call-1", channel=0, utterance_idx=4, idx=0, original_text=texts[4],
                          original_sentiment="neutral", original_confidence=0.4, text="oh great thank you so much",
                          sentiment="positive", action="corrected", reviewer="sam", reviewed_at=now - 10))
        s.commit()


def test_dashboard_reviews_become_rows_with_who_and_when(workspace):
    _seed_reviews(workspace.engine)
    v = DatasetStore(workspace).build("sentiment", ["review"], plan=SplitPlan(0.0, 0.0)).version
    rows = sorted(v.rows(), key=lambda r: r["position"])
    assert [(r["text"], r["label"], r["lineage"]["who"]) for r in rows] == [
        ("this is ridiculous", "negative", "rita"), ("oh great thank you so much", "positive", "sam")]
    assert rows[0]["lineage"]["source"] == "dashboard-review" and rows[0]["lineage"]["when"].endswith("Z")
    assert rows[0]["context"] == ["hello thanks for calling", "my order never arrived"]
    assert rows[1]["context"][-1] == "i can fix that for you" and rows[1]["context"][2] == "this is ridiculous"
    assert v.manifest["lineage"]["who"] == {"rita": 1, "sam": 1}


def test_reviewed_assistant_turns_become_intent_rows(workspace):
    from callsense.store.dialog_tables import DialogTurn

    with Session(workspace.engine) as s:
        s.add(DialogTurn(session_id="s1", turn=1, at=time.time(), text="will it rain in boston", tokens="will it rain in boston",
                         tags="O O O O B-location", intent="weather.rainfall_yes_no", reviewed=True))
        s.add(DialogTurn(session_id="s1", turn=2, at=time.time(), text="where is the store", tokens="where is the store",
                         tags="O O O O", intent="nomatch.none", reviewed=True, reviewed_intent="store_location",
                         reviewed_tags="B-interrogative.location O B-article B-store.type"))
        s.add(DialogTurn(session_id="s2", turn=1, at=time.time(), text="unreviewed", tokens="unreviewed", tags="O"))
        s.commit()
    v = DatasetStore(workspace).build("intent-slot", ["dialog"], plan=SplitPlan(0.0, 0.0)).version
    rows = {r["lineage"]["ref"]: r for r in v.rows()}
    assert set(rows) == {"s1/1", "s1/2"}
    assert rows["s1/2"]["intent"] == "find_the_store" and rows["s1/2"]["tags"][0] == "B-interrogative.location"


def test_bad_sources_are_one_line_errors(workspace, tmp_path):
    store = DatasetStore(workspace)
    bad = tmp_path / "bad.csv"
    bad.write_text("Utterance,Sentiment\nhello,happy\n")
    with pytest.raises(FinetuneError, match=r"bad.csv:2: Sentiment 'happy'"):
        store.build("sentiment", [f"meld:{bad}"])
    with pytest.raises(FinetuneError, match="takes meld, review"):
        store.build("sentiment", [f"seq:{tmp_path}"])
    with pytest.raises(FinetuneError, match="does not exist"):
        store.build("asr", [f"nemo-asr:{tmp_path / 'none.json'}"])
