"""The spoken evaluation set (MELD dev dialogues read by espeak-ng as two-channel calls) and
`callsense eval pipeline` on recorded calls with turn files: the real pipeline (a `callsense
process` subprocess with Whisper and the shipped sentiment model) on a tiny generated set."""

from __future__ import annotations

import hashlib
import json
import shutil
import wave

import pytest
from typer.testing import CliRunner

from callsense.finetune.call_eval import StoredSentence, map_sentences, turn_label
from callsense.finetune.spoken_set import Turn, build, read_turns, turns_path

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "set.json"}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("spoken") / "dev-s7"
    info = build("dev", out, dialogues=2, seed=7, max_turns=4, source_dir=shared_data / "sentiment" / "meld")
    return out, info


def test_the_set_is_two_channel_calls_with_turn_files_in_three_variants(tiny_set, shared_data):
    out, info = tiny_set
    assert info["split"] == "dev" and info["dialogues"] == 2 and info["source_sha256"] == hashlib.sha256(
        (shared_data / "sentiment/meld/dev.csv").read_bytes()).hexdigest()
    for variant, rate in (("clean", 16000), ("noisy", 16000)):
        wavs = sorted((out / variant).glob("*.wav"))
        assert len(wavs) == 2
        for w in wavs:
            with wave.open(str(w)) as f:
                assert (f.getnchannels(), f.getframerate(), f.getsampwidth()) == (2, rate, 2)
                duration = f.getnframes() / rate
            turns = read_turns(turns_path(w))
            assert 2 <= len(turns) <= 4 and {t.channel for t in turns} == {0, 1} and turns[0].channel == 0
            assert all(t.sentiment in ("negative", "neutral", "positive") and t.text for t in turns)
            assert all(0 < t.start < t.end <= duration for t in turns)
            assert all(b.start - a.end >= 0.25 - 1e-3 for a, b in zip(turns, turns[1:])), "a gap between turns"
    tel = sorted((out / "telephony").glob("*.wav"))[0]
    head = tel.read_bytes()[:40]
    assert head[:4] == b"RIFF" and int.from_bytes(head[20:22], "little") == 7, "G.711 mu-law format tag"
    assert int.from_bytes(head[22:24], "little") == 2 and int.from_bytes(head[24:28], "little") == 8000
    from callsense.audio.decode import decode_audio

    decoded = decode_audio(tel.read_bytes())
    assert decoded.channels.shape[0] == 2 and decoded.source_rate == 8000
    # voices and rates vary between speakers
    casts = [c["cast"] for c in info["calls"]]
    assert len({v["voice"] for c in casts for v in c.values()}) >= 2


def test_the_noise_is_about_15_db_below_the_speech(tiny_set):
    import numpy as np

    out, _ = tiny_set
    w = sorted((out / "clean").glob("*.wav"))[0]
    def read(p):
        with wave.open(str(p)) as f:
            return np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2).T.astype(np.float64)
    clean, noisy = read(w), read(out / "noisy" / w.name)
    turns = [t for t in read_turns(turns_path(w)) if t.channel == 0]
    idx = np.concatenate([np.arange(int(t.start * 16000), int(t.end * 16000)) for t in turns])
    snr = 10 * np.log10(np.mean(clean[0, idx] ** 2) / np.mean((noisy[0] - clean[0]) ** 2))
    assert 13 < snr < 17, snr


def test_the_same_seed_gives_the_same_files_and_train_works_too(tiny_set, tmp_path, shared_data):
    out, _ = tiny_set
    again = build("dev", tmp_path / "again", dialogues=2, seed=7, max_turns=4, source_dir=shared_data / "sentiment" / "meld")
    assert _digests(tmp_path / "again") == _digests(out)
    other = build("dev", tmp_path / "other", dialogues=2, seed=8, max_turns=4, source_dir=shared_data / "sentiment" / "meld")
    assert [c["dialogue_id"] for c in other["calls"]] != [c["dialogue_id"] for c in again["calls"]] or \
        _digests(tmp_path / "other") != _digests(out)
    train = build("train", tmp_path / "train", dialogues=1, seed=7, max_turns=2, source_dir=shared_data / "sentiment" / "meld")
    assert train["split"] == "train" and len(list((tmp_path / "train" / "clean").glob("*.turns.csv"))) == 1
    with pytest.raises(ValueError, match="test split is kept apart"):
        build("test", tmp_path / "x", dialogues=1)


def test_the_module_command_builds_a_set(tmp_path):
    from callsense.finetune.spoken_set import main

    assert main(["build", "--split", "dev", "--out", str(tmp_path / "s"), "--dialogues", "1", "--max-turns", "2"]) == 0
    assert json.loads((tmp_path / "s" / "set.json").read_text())["dialogues"] == 1


def _t(ch, start, end, label="neutral"):
    return Turn(ch, "", "", start, end, "x", label, "0", "0")


def test_mapping_rule_on_a_hand_made_case():
    turns = [_t(0, 0.0, 2.0), _t(1, 1.5, 4.0), _t(0, 4.5, 8.0)]
    s = [StoredSentence(0, 0.1, 1.9, "a", "positive"),       # turn 0
         StoredSentence(1, 1.0, 3.0, "b", "negative"),       # channel 1: only turn 1 counts, though turn 0 overlaps more in time
         StoredSentence(0, 3.9, 5.0, "c", "negative"),       # overlaps turn 2 only (0.5 s); nothing of turn 0
         StoredSentence(0, 5.0, 6.0, "d", "positive"),       # turn 2
         StoredSentence(0, 6.0, 7.9, "e", "neutral"),        # turn 2
         StoredSentence(0, 9.0, 9.5, "f", "positive")]       # overlaps no turn: unmatched
    by_turn, unmatched = map_sentences(turns, s)
    assert [x.text for x in by_turn[0]] == ["a"] and [x.text for x in by_turn[1]] == ["b"]
    assert [x.text for x in by_turn[2]] == ["c", "d", "e"] and [x.text for x in unmatched] == ["f"]
    # a sentence spanning two turns goes to the one it overlaps most
    by_turn, _ = map_sentences(turns, [StoredSentence(0, 1.0, 6.0, "g", "neutral")])
    assert list(by_turn) == [2]
    # majority; a tie goes to the longest tied sentence
    assert turn_label([StoredSentence(0, 0, 1, "", "negative"), StoredSentence(0, 1, 2, "", "negative"),
                       StoredSentence(0, 2, 9, "", "positive")]) == "negative"
    assert turn_label(s[2:5]) == "neutral"  # 1 each: "e" (1.9 s) is the longest


def test_eval_pipeline_runs_the_pipeline_on_the_calls(tiny_set, tmp_path, monkeypatch):
    from callsense.cli import app

    out, info = tiny_set
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALLSENSE_BOOTSTRAP_SAMPLES", "200")
    report = tmp_path / "report"
    res = CliRunner().invoke(app, ["eval", "pipeline", str(out / "clean"), "--report", str(report)])
    assert res.exit_code == 0, res.output
    result = json.loads((report / "result.json").read_text())
    assert result["calls"] == 2 and result["turns"] == info["turns"] and result["process"]["returncode"] == 0
    for ch in ("agent", "customer"):
        w = result["wer"][ch]["wer"]
        assert 0.0 <= w["low"] <= w["value"] <= w["high"] and w["value"] < 0.8, result["wer"]
    assert result["matched_turns"] >= result["turns"] - 1
    for key in ("reference_text", "stored_sentences"):
        f1 = result[key]["macro_f1"]
        assert 0.0 <= f1["low"] <= f1["value"] <= f1["high"] <= 1.0
        assert sum(map(sum, result[key]["confusion_matrix"])) == result["matched_turns"]
    assert 0.0 <= result["agreement"]["agreement"]["value"] <= 1.0
    assert "whisper" in result["asr_model"].lower() or result["asr_model"]
    md = (report / "report.md").read_text()
    assert "Word error rate per channel" in md and "Confusion matrices" in md and (report / "report.html").is_file()
    assert (report / "wer_channels.png").is_file() and (report / "confusion_stored.png").is_file()
    # the same transcripts scored again (another sentiment model would be compared on them)
    again = tmp_path / "again"
    res = CliRunner().invoke(app, ["eval", "pipeline", str(out / "clean"), "--reuse", str(report), "--report", str(again)])
    assert res.exit_code == 0, res.output
    second = json.loads((again / "result.json").read_text())
    assert second["process"]["reused_from"] == str(report) and second["matched_turns"] == result["matched_turns"]
    assert [r["stored"] for r in second["turn_rows"]] == [r["stored"] for r in result["turn_rows"]]
    res = CliRunner().invoke(app, ["eval", "pipeline", str(out / "clean"), "--reuse", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "no result.json" in " ".join(res.output.split()) and "Traceback" not in res.output
    # the real store never saw the calls: they went to a scratch data dir
    assert not (tmp_path / "data" / "callsense.db").exists() or "meld-dev" not in (tmp_path / "data" / "callsense.db").read_bytes().decode("latin-1")


def test_spoken_transcripts_refuse_a_set_built_from_dev(tiny_set, tmp_path):
    from callsense.finetune.spoken_transcripts import transcribe_set
    from callsense.finetune.workspace import FinetuneError

    out, _ = tiny_set
    with pytest.raises(FinetuneError, match="only a set built from train"):
        transcribe_set(out / "clean", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_spoken_transcripts_of_a_train_set_are_a_meld_training_source(tmp_path, shared_data, workspace):
    import csv

    from callsense.finetune.datasets import DatasetStore, SplitPlan
    from callsense.finetune.spoken_transcripts import transcribe_set

    build("train", tmp_path / "train", dialogues=1, seed=7, max_turns=3, source_dir=shared_data / "sentiment" / "meld")
    info = transcribe_set(tmp_path / "train" / "clean", tmp_path / "spoken.csv")
    rows = list(csv.DictReader(open(tmp_path / "spoken.csv", encoding="utf-8")))
    turns = read_turns(next((tmp_path / "train" / "clean").glob("*.turns.csv")))
    assert info["written"] == len(rows) >= len(turns) - 1 and rows
    assert all(r["Sentiment"] in ("negative", "neutral", "positive") and r["Utterance"] for r in rows)
    assert [r["Sentiment"] for r in rows] == [turns[int(r["Utterance_ID"])].sentiment for r in rows]
    version = DatasetStore(workspace).build("sentiment", [f"meld:{tmp_path / 'spoken.csv'}@train"], plan=SplitPlan(0.0, 0.0)).version
    assert version.counts()["train"] == len(rows)
