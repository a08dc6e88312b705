"""Training text as the pipeline hears it: the stored sentences of a spoken *train* set, per turn, with the turn's label.

    python -m callsense.finetune.spoken_transcripts SET_DIR/VARIANT --out FILE.csv

Runs the configured pipeline (`callsense process` in a scratch data dir, as `callsense eval
pipeline` does) over the calls of a spoken set built from MELD **train**
(`python -m callsense.finetune.spoken_set build --split train`), maps the stored sentences to
the reference turns (`call_eval.map_sentences`: same channel, largest overlap) and writes a
MELD-layout CSV (Dialogue_ID, Utterance_ID, Speaker, Utterance, Sentiment) whose Utterance
is what the recognizer wrote for the turn and whose Sentiment is MELD's label for it. Use it
as one more training source: ``--source meld:FILE.csv@train``.

A set built from dev or test is refused: its transcripts are for scoring, never for training.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import typer

from callsense.finetune.workspace import FinetuneError

FIELDS = ["Dialogue_ID", "Utterance_ID", "Speaker", "Utterance", "Sentiment"]


def set_split(variant_dir: Path) -> str:
    info = variant_dir.parent / "set.json"
    if not info.is_file():
        raise FinetuneError(f"{variant_dir}: not a variant folder of a spoken set (no set.json in {variant_dir.parent})")
    return str(json.loads(info.read_text(encoding="utf-8")).get("split"))


def transcribe_set(variant_dir: Path, out: Path, *, scratch: Path | None = None) -> dict:
    """Write the CSV; returns counts (calls, turns, written, missed)."""
    from callsense.finetune.call_eval import find_calls, map_sentences, pipeline_env, read_stored, run_process
    from callsense.finetune.spoken_set import read_turns

    split = set_split(variant_dir)
    if split != "train":
        raise FinetuneError(f"{variant_dir}: built from MELD {split}; only a set built from train may become training text")
    pairs = find_calls(variant_dir)
    with tempfile.TemporaryDirectory(prefix="callsense-spoken-") as tmp:
        work = scratch or Path(tmp)
        run_process([a for a, _ in pairs], work, pipeline_env(work))
        stored = read_stored(work, [a.name for a, _ in pairs])
    written = missed = turns_total = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for audio, tfile in pairs:
            turns = read_turns(tfile)
            turns_total += len(turns)
            got = stored.get(audio.name)
            by_turn, _ = map_sentences(turns, got["sentences"]) if got else ({}, [])
            for i, turn in enumerate(turns):
                text = " ".join(s.text for s in sorted(by_turn.get(i, []), key=lambda s: s.start)).strip()
                if not text:
                    missed += 1
                    continue
                writer.writerow({"Dialogue_ID": f"{variant_dir.name}-{audio.stem}", "Utterance_ID": i,
                                 "Speaker": turn.speaker, "Utterance": text, "Sentiment": turn.sentiment})
                written += 1
    return {"calls": len(pairs), "turns": turns_total, "written": written, "missed": missed, "out": str(out)}


def main(variant_dir: Path = typer.Argument(..., help="A variant folder of a spoken set built from MELD train (e.g. .../train-s13/clean)."),
         out: Path = typer.Option(..., help="The MELD-layout CSV to write."),
         scratch: Path = typer.Option(None, help="Keep the pipeline's scratch store here (default: a temporary folder).")) -> None:
    """Transcribe a spoken train set with the configured pipeline into a MELD-layout training CSV."""
    try:
        info = transcribe_set(variant_dir, out, scratch=scratch)
    except FinetuneError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{info['written']} of {info['turns']} turns of {info['calls']} calls written to {info['out']} "
               f"({info['missed']} turns had no stored sentence)")


if __name__ == "__main__":
    typer.run(main)
