"""`callsense eval asr` and `callsense eval pipeline` on the shared audio with the real
embedded engines (Whisper tiny.en, the shipped sentiment model), and the data commands."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from callsense.cli import app

from finetune_helpers import shipped_sentiment_dir


def flat(text: str) -> str:
    return " ".join(text.split())


def test_eval_asr_compares_plain_and_boosted_whisper(workspace, audio_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    report = tmp_path / "asr"
    res = CliRunner().invoke(app, ["eval", "asr", str(audio_manifest), "-e", "whisper", "-e", "whisper+boost",
                                   "--boost", "thereunder", "--report", str(report)])
    assert res.exit_code == 0, res.output
    result = json.loads((report / "result.json").read_text())
    plain, boosted = result["systems"]["whisper"], result["systems"]["whisper+boost"]
    assert result["n"] == 10 and plain["words"] == boosted["words"] == 103
    assert plain["wer"]["value"] < 0.10 and plain["wer"]["low"] <= plain["wer"]["value"] <= plain["wer"]["high"]
    assert boosted["model_id"].endswith("+hotwords")
    assert (report / "wer.png").is_file() and "WER" in (report / "report.md").read_text()
    # the audio was decoded once: a second run reads every clip from the cache
    res = CliRunner().invoke(app, ["eval", "asr", str(audio_manifest), "--report", str(tmp_path / "again")])
    assert res.exit_code == 0 and "0 decoded" in flat(res.output)


def test_eval_pipeline_sentiment_metric(workspace, audio_manifest, tmp_path, monkeypatch):
    shipped_sentiment_dir()
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    report = tmp_path / "pipe"
    res = CliRunner().invoke(app, ["eval", "pipeline", str(audio_manifest), "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "PIPELINE_SENTIMENT_METRIC" in flat(res.output) and "agreement" in flat(res.output)
    result = json.loads((report / "result.json").read_text())
    assert result["n"] == 10 and len(result["sentences"]) == 10
    assert sum(map(sum, result["confusion_matrix"])) == 10
    agree = sum(s["reference_sentiment"] == s["asr_sentiment"] for s in result["sentences"]) / 10
    assert abs(result["agreement"]["value"] - agree) < 1e-9
    assert (report / "pipeline_confusion.png").is_file()


def test_data_commands(workspace, audio_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    runner = CliRunner()
    res = runner.invoke(app, ["data", "build", "asr", "--source", f"audio-manifest:{audio_manifest}", "--name", "audio"])
    assert res.exit_code == 0 and "built:" in flat(res.output), res.output
    res = runner.invoke(app, ["data", "build", "asr", "--source", f"audio-manifest:{audio_manifest}", "--name", "audio"])
    assert "already there" in flat(res.output)
    assert runner.invoke(app, ["data", "list"]).output.count("asr") >= 1
    res = runner.invoke(app, ["data", "show", "audio"])
    assert res.exit_code == 0 and "intact" in flat(res.output)
    res = runner.invoke(app, ["data", "export", "audio"])
    assert res.exit_code == 0 and "decoded" in flat(res.output)
    res = runner.invoke(app, ["data", "show", "nope"])
    assert res.exit_code == 1 and "no dataset version 'nope'" in flat(res.output) and "Traceback" not in flat(res.output)
    res = runner.invoke(app, ["data", "build", "asr", "--source", "meld:/x.csv"])
    assert res.exit_code == 1 and "takes nemo-asr" in flat(res.output)
