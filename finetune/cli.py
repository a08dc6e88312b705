"""Commands of the fine-tuning loop, mounted on `callsense` by `register(app)`:

    callsense data build|list|show|diff|export
    callsense finetune sentiment|intent-slot|asr
    callsense eval sentiment|asr|intent|pipeline
    callsense models list|runs|promote|rollback
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from callsense.core.settings import Settings

console = Console()
err = Console(stderr=True)

data_app = typer.Typer(help="Versioned datasets: build immutable, content-addressed versions from reviews, archives and files.",
                       no_args_is_help=True)
finetune_app = typer.Typer(help="Fine-tune models (sentiment, intent-slot, asr) on a dataset version; each run is recorded.",
                           no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models with bootstrap confidence intervals; writes Markdown/HTML reports with plots.",
                       no_args_is_help=True)
models_app = typer.Typer(help="The model registry: versions, runs, promotion through the gate, rollback.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.add_typer(finetune_app, name="finetune")
    app.add_typer(eval_app, name="eval")
    app.add_typer(models_app, name="models")


# ------------------------------------------------------------------------------ helpers


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _known_errors() -> tuple:
    from callsense.asr.base import AsrUnavailable
    from callsense.finetune.workspace import FinetuneError
    from callsense.core.errors import BadInput
    from callsense.nlp.sentiment.base import SentimentUnavailable
    from callsense.core.registry import UnknownBackend

    errors = [FinetuneError, AsrUnavailable, SentimentUnavailable, UnknownBackend, BadInput, FileNotFoundError]
    try:
        from callsense.dialog.nlu.base import NluUnavailable

        errors.append(NluUnavailable)
    except ImportError:
        pass
    return tuple(errors)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def friendly(fn):
    """People get one line, never a traceback. SIGTERM (a scheduler, `kill`) ends a command
    like Ctrl+C, so a fine-tuning run is recorded as failed and resumes with --resume."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal
        import threading

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            _fail("interrupted (a fine-tuning run resumes with --resume last)")
        except _known_errors() as e:
            _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        except Exception as e:  # noqa: BLE001 - anything else: still one line, with its type
            from sqlalchemy.exc import OperationalError

            if isinstance(e, OperationalError):
                _fail(f"the store is unreachable: {str(e.orig).strip().splitlines()[0]} (check CALLSENSE_DATABASE_URL)")
            _fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def _workspace(database_url: str | None = None):
    from callsense.finetune.workspace import Workspace

    settings = Settings(**({"database_url": database_url} if database_url else {}))
    return Workspace(settings)


class RichProgress:
    """The jobs' Progress protocol drawn with rich progress bars."""

    def __init__(self, progress: Progress):
        self.p = progress
        self.task = None

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        if self.task is not None:
            self.p.update(self.task, visible=False)
        self.task = self.p.add_task(description, total=total, completed=completed, info="")

    def advance(self, n: int = 1, **fields) -> None:
        if self.task is not None:
            info = " ".join(f"{k} {v}" for k, v in fields.items())
            self.p.update(self.task, advance=n, info=info)

    def note(self, message: str) -> None:
        self.p.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=err, transient=True)


def _ci(d: dict, digits: int = 3) -> str:
    return f"{d['value']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"


def _pct(d: dict) -> str:
    return f"{100 * d['value']:.2f} % [{100 * d['low']:.2f}, {100 * d['high']:.2f}]"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


DB_OPTION = typer.Option(None, "--database-url", help="Store URL (default: CALLSENSE_DATABASE_URL, else SQLite in the data dir).")


# --------------------------------------------------------------------------------- data


@data_app.command("build")
@friendly
def data_build(
    kind: str = typer.Argument(..., help="sentiment, intent-slot or asr."),
    source: List[str] = typer.Option(..., "--source", "-s", help="TYPE[:PATH][@SPLIT], repeatable. sentiment: meld:FILE.csv, review; "
                                     "intent-slot: nemo:FOLDER, seq:FOLDER, dialog; asr: nemo-asr:MANIFEST, "
                                     "audio-manifest:FILE, review."),
    name: str = typer.Option("", help="A name for this version (the newest version of a name can be used instead of its id)."),
    dev_ratio: float = typer.Option(0.1, help="Share of conversations without a fixed split that go to dev."),
    test_ratio: float = typer.Option(0.1, help="Share of conversations without a fixed split that go to test."),
    seed: int = typer.Option(13, help="Seed of the split assignment (sha256(seed|conversation))."),
    on_leak: str = typer.Option("drop", help="Test text also in train/dev: drop those train/dev rows, error, or keep (recorded)."),
    database_url: Optional[str] = DB_OPTION,
):
    """Build an immutable, content-addressed dataset version (same content -> same id)."""
    from callsense.finetune.datasets import DatasetStore, SplitPlan

    ws = _workspace(database_url)
    with console.status("building the dataset version ...") as status:
        res = DatasetStore(ws).build(kind, source, name=name, plan=SplitPlan(dev_ratio, test_ratio, seed), on_leak=on_leak,
                                     progress=lambda m: status.update(m))
    v = res.version
    console.print(f"{'built' if res.created else 'already there (same content)'}: [bold]{v.id}[/] {v.kind} "
                  f"{v.name or ''}  " + ", ".join(f"{k} {n}" for k, n in v.counts().items()))
    leak = v.manifest["leak_check"]
    dropped = sum(leak["dropped"].values())
    console.print(f"leak check: {leak['test_texts']} test texts; {dropped} train/dev rows dropped "
                  f"({', '.join(f'{k} {n}' for k, n in leak['dropped'].items()) or 'none'}); remaining overlap {leak['remaining_overlap']}")
    if v.manifest["conflicts"]["texts"]:
        console.print(f"[yellow]warning:[/] {v.manifest['conflicts']['texts']} texts carry different labels in different rows, "
                      f"e.g. {v.manifest['conflicts']['examples'][0]}")
    console.print(f"folder: {v.path}")


@data_app.command("list")
@friendly
def data_list(kind: Optional[str] = typer.Option(None, help="Only this kind."), database_url: Optional[str] = DB_OPTION):
    """List dataset versions, oldest first."""
    from callsense.finetune.datasets import DatasetStore

    versions = DatasetStore(_workspace(database_url)).list(kind)
    if not versions:
        console.print("no dataset versions yet: run `callsense data build KIND --source ...`")
        return
    t = Table("id", "kind", "name", "train", "dev", "test", "sources", "by", "created")
    for v in versions:
        c = v.counts()
        t.add_row(v.id, v.kind, v.name, str(c.get("train", 0)), str(c.get("dev", 0)), str(c.get("test", 0)),
                  ", ".join(s["spec"].split("/")[-1] for s in v.manifest["sources"]), v.manifest.get("created_by", ""),
                  _when(v.manifest.get("created_at")))
    console.print(t)


@data_app.command("show")
@friendly
def data_show(ref: str = typer.Argument(..., help="Version id, unique id prefix, or name."),
              rows: int = typer.Option(3, help="Example rows to print per split."), database_url: Optional[str] = DB_OPTION):
    """Show a version: sources, splits, labels, lineage, leak check, integrity."""
    from callsense.finetune.datasets import DatasetStore

    v = DatasetStore(_workspace(database_url)).get(ref)
    m = v.manifest
    problems = v.verify()
    console.print(f"[bold]{v.id}[/] {v.kind} {v.name}  by {m.get('created_by')} at {_when(m.get('created_at'))}  "
                  + ("[green]intact[/]" if not problems else "[red]" + "; ".join(problems) + "[/]"))
    console.print(f"folder: {v.path}")
    for s in m["sources"]:
        console.print(f"source {s['spec']}: {s['rows']} rows" + (f", {s['skipped']} skipped" if s["skipped"] else ""))
    console.print(f"splits: {m['counts']}  (plan {m['split_plan']})")
    for split, labels in m["labels"].items():
        console.print(f"  {split}: {labels}")
    console.print(f"lineage: {m['lineage']}")
    console.print(f"leak check: {m['leak_check']}")
    if m["conflicts"]["texts"]:
        console.print(f"conflicting labels: {m['conflicts']['texts']} texts, e.g. {m['conflicts']['examples'][:3]}")
    for split in ("train", "dev", "test"):
        for r in v.rows(split)[:rows]:
            console.print(f"  [{split}] {json.dumps({k: r[k] for k in r if k not in ('context',)}, ensure_ascii=False)[:220]}",
                          highlight=False)


@data_app.command("diff")
@friendly
def data_diff(a: str = typer.Argument(..., help="Older version."), b: str = typer.Argument(..., help="Newer version."),
              database_url: Optional[str] = DB_OPTION):
    """What changed between two versions: rows added, removed, relabelled, moved between splits."""
    from callsense.finetune.datasets import DatasetStore

    d = DatasetStore(_workspace(database_url)).diff(a, b)
    console.print(f"{d['a']} -> {d['b']}: splits {d['counts_a']} -> {d['counts_b']}")
    console.print(f"added {d['added']}, removed {d['removed']}, relabelled {d['relabelled']}, edited {d['edited']}, "
                  f"moved between splits {d['moved']}")
    for key in ("added_examples", "removed_examples", "relabelled_examples", "moved_examples"):
        for line in d[key]:
            console.print(f"  {key.split('_')[0]}: {line}", highlight=False)


@data_app.command("export")
@friendly
def data_export(ref: str = typer.Argument(..., help="Version id, prefix or name."),
                out: Optional[Path] = typer.Option(None, help="Write here instead of the version's export/ folder."),
                database_url: Optional[str] = DB_OPTION):
    """Write a version in its training format: MELD-layout CSV, NeMo intent/slot files, or NeMo ASR manifests
    (audio decoded once into the content-hash cache; the line shows what a re-run saves)."""
    from callsense.finetune.audio_cache import AudioCache
    from callsense.finetune.datasets import DatasetStore

    ws = _workspace(database_url)
    v = DatasetStore(ws).get(ref)
    cache = AudioCache(ws.audio_cache_dir, ws.settings.pipeline.decoder)
    with console.status(f"writing {v.id} ..."):
        folder = v.export(cache=cache, out_dir=out)
    console.print(f"wrote {folder}")
    if v.kind == "asr":
        console.print(f"decoded-audio cache ({ws.audio_cache_dir}): {cache.stats.line()}")


# ----------------------------------------------------------------------------- finetune


# Option names are the job configs' field names (dashes for underscores), so a recorded
# configuration reads back as the command that made it (`JobConfig.cli_args`); the defaults are
# the configs' own (tests/finetune/test_finetune_job_template.py checks both).
EPOCHS_HELP = "Training epochs (at least 1)."
SELECT_HELP = "Export the epoch with the best dev score (best) or the last one (last)."
WARMUP_HELP = "Linear warm-up over this share of the steps, then linear decay."
SEED_HELP = "Seeds the heads' initial weights, dropout and the batch order."
PER_CHANNEL_HELP = "int8 weight scales per output channel (default: per tensor, as the shipped models)."
OUT_HELP = "Also write the int8 model folder here (e.g. the shipped model's folder: see its README)."
MODEL_NAME_HELP = "Name written into the manifest (default: the --out folder's name, else NAME-RUN_ID)."
KEEP_CKPT_HELP = "Keep the torch checkpoint (model/checkpoint/) so that a later run can start from it (--init)."


def _train_options(settings, *, epochs, batch_size, lr, seed, max_steps, device, threads, head_lr=None, warmup_ratio=0.1,
                   weight_decay=0.01, select_epoch="best", checkpoint_every=100) -> dict:
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "head_lr": head_lr, "warmup_ratio": warmup_ratio,
            "weight_decay": weight_decay, "seed": seed, "select_epoch": select_epoch, "max_steps": max_steps,
            "checkpoint_every": checkpoint_every, "device": device or settings.finetune.device,
            "threads": threads or settings.cpu_threads}


def _print_run(run: dict) -> None:
    console.print(f"run [bold]{run['id']}[/] {run['status']} in {run['wall_s']:.0f} s  ({run['folder']})")
    for e in run["epochs"]:
        console.print("  " + " ".join(f"{k} {v}" for k, v in e.items() if k not in ("partial",)), highlight=False)
    test = run["metrics"].get("test")
    if test and "macro_f1" in test:
        console.print(f"test ({test['n']} rows, exported int8 model): macro-F1 {_ci(test['macro_f1'])}, accuracy {_ci(test['accuracy'])}")
    if test and "intent_accuracy" in test:
        console.print(f"test ({test['n']} queries, exported int8 model): intent accuracy {_pct(test['intent_accuracy'])}, "
                      f"slot F1 {_pct(test['slot_f1'])}")
    if test and "wer" in test:
        console.print(f"test ({test['n']} clips): WER {_pct(test['wer'])}")
    if run["artifacts"].get("out"):
        console.print(f"model folder written to {run['artifacts']['out']}")
    if run["artifacts"].get("registry"):
        console.print(f"registered as {run['artifacts']['registry']} (candidate): promote with "
                      f"`callsense models promote {run['artifacts']['registry'].replace(' v', ' ')}`")


def _maybe_promote(ws, run: dict, promote: bool) -> None:
    if not promote or not run["artifacts"].get("registry"):
        return
    from callsense.finetune.promotion import run_gate

    name, version = run["artifacts"]["registry"].split(" v")
    with _progress() as p:
        decision = run_gate(ws, name, int(version), progress=RichProgress(p))
    console.print(decision.reason)


@finetune_app.command("sentiment")
@friendly
def finetune_sentiment(
    dataset: Optional[str] = typer.Option(None, help="Sentiment dataset version (id, prefix or name)."),
    init: str = typer.Option("encoder", help="encoder (packaged all-MiniLM-L6-v2), serving (the model in service), or a checkpoint folder."),
    context_turns: int = typer.Option(0, help="Previous utterances of the conversation fed as context (0: none)."),
    epochs: int = typer.Option(3, help=EPOCHS_HELP), batch_size: int = typer.Option(32), lr: float = typer.Option(5e-5),
    head_lr: Optional[float] = typer.Option(None, help="Learning rate of the classifier head (default: --lr)."),
    max_length: int = typer.Option(96, help="Max tokens (utterance + context)."),
    class_weights: str = typer.Option("balanced", help="Cross-entropy class weights: balanced (inverse frequency), sqrt or none."),
    asr_style: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of training rows read, each step anew, as a speech "
                                    "recognizer writes them (punctuation re-written or dropped, a few word errors): "
                                    "a model that holds up on transcripts. 0: the text as it is."),
    pooling: str = typer.Option("mean", help="Sentence vector: mean (masked mean of the token states) or cls "
                                "(BERT pooler over [CLS], as the shipped minilm-meld-int8)."),
    dropout: float = typer.Option(0.1, help="Dropout before the classifier."),
    warmup_ratio: float = typer.Option(0.1, help=WARMUP_HELP),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay."),
    select_epoch: str = typer.Option("best", help=SELECT_HELP),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps (smoke tests)."),
    checkpoint_every: int = typer.Option(100, help="Steps between checkpoints (0: only at each epoch's end)."),
    seed: int = typer.Option(13, help=SEED_HELP),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda (default CALLSENSE_FINETUNE_DEVICE)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default CALLSENSE_CPU_THREADS)."),
    per_channel: bool = typer.Option(False, "--per-channel/--no-per-channel", help=PER_CHANNEL_HELP),
    keep_checkpoint: bool = typer.Option(True, "--keep-checkpoint/--no-keep-checkpoint", help=KEEP_CKPT_HELP),
    out: Optional[Path] = typer.Option(None, help=OUT_HELP),
    model_name: Optional[str] = typer.Option(None, help=MODEL_NAME_HELP),
    name: str = typer.Option("sentiment", help="Registry name (the pipeline serves `sentiment`)."),
    resume: Optional[str] = typer.Option(None, help="Resume a run from its last checkpoint: RUN_ID or `last`."),
    register_model: bool = typer.Option(True, "--register/--no-register", help="Register the result as a candidate."),
    promote: bool = typer.Option(False, help="Run the promotion gate on the dataset's test split right after."),
    database_url: Optional[str] = DB_OPTION,
):
    """Fine-tune the sentence-sentiment model with transformers; export int8 ONNX; score it on the test split."""
    from callsense.finetune.jobs.sentiment import SentimentJobConfig, run_sentiment_job

    ws = _workspace(database_url)
    config = None
    if not resume:
        if not dataset:
            _fail("give --dataset (see `callsense data list`) or --resume RUN")
        config = SentimentJobConfig(
            dataset=dataset, init=init, context_turns=context_turns, max_length=max_length, class_weights=class_weights,
            asr_style=asr_style, pooling=pooling, dropout=dropout, per_channel=per_channel, keep_checkpoint=keep_checkpoint,
            out=str(out) if out else None, model_name=model_name, name=name, register_candidate=register_model,
            train=_train_options(ws.settings, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, seed=seed,
                                 max_steps=max_steps, device=device, threads=threads, warmup_ratio=warmup_ratio,
                                 weight_decay=weight_decay, select_epoch=select_epoch, checkpoint_every=checkpoint_every))
    with _progress() as p:
        run = run_sentiment_job(ws, config, resume=resume, progress=RichProgress(p), threads=threads, device=device)
    _print_run(run)
    _maybe_promote(ws, run, promote)


@finetune_app.command("intent-slot")
@friendly
def finetune_intent_slot(
    dataset: Optional[str] = typer.Option(None, help="Intent-slot dataset version (id, prefix or name)."),
    init: str = typer.Option("encoder", help="encoder (packaged all-MiniLM-L6-v2) or a checkpoint folder of an earlier run."),
    epochs: int = typer.Option(4, help=EPOCHS_HELP), batch_size: int = typer.Option(32), lr: float = typer.Option(1e-4),
    head_lr: Optional[float] = typer.Option(1e-3, help="Learning rate of the two heads."),
    max_length: int = typer.Option(64, help="Max sub-word tokens per query."),
    pooling: str = typer.Option("mean", help="Intent head input: mean (masked mean of the token states, as the shipped "
                                "minilm-retail-joint-int8) or cls (the [CLS] token state)."),
    dropout: float = typer.Option(0.1, help="Dropout before both heads."),
    slot_loss_weight: float = typer.Option(1.0, help="loss = CE(intent) + w * CE(slot)."),
    warmup_ratio: float = typer.Option(0.1, help=WARMUP_HELP),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay of the encoder."),
    select_epoch: str = typer.Option("best", help=SELECT_HELP),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps (smoke tests)."),
    checkpoint_every: int = typer.Option(100, help="Steps between checkpoints (0: only at each epoch's end)."),
    seed: int = typer.Option(13, help=SEED_HELP), device: Optional[str] = typer.Option(None), threads: Optional[int] = typer.Option(None),
    per_channel: bool = typer.Option(False, "--per-channel/--no-per-channel", help=PER_CHANNEL_HELP),
    keep_checkpoint: bool = typer.Option(True, "--keep-checkpoint/--no-keep-checkpoint", help=KEEP_CKPT_HELP),
    out: Optional[Path] = typer.Option(None, help=OUT_HELP),
    model_name: Optional[str] = typer.Option(None, help=MODEL_NAME_HELP),
    name: str = typer.Option("intent-slot", help="Registry name (the assistant serves `intent-slot`)."),
    resume: Optional[str] = typer.Option(None, help="Resume a run: RUN_ID or `last`."),
    register_model: bool = typer.Option(True, "--register/--no-register"),
    promote: bool = typer.Option(False, help="Run the promotion gate on the dataset's test split right after."),
    database_url: Optional[str] = DB_OPTION,
):
    """Train a joint intent + slot model (one encoder, two heads) from NeMo-format data; export int8 ONNX."""
    from callsense.finetune.jobs.intent_slot import IntentSlotJobConfig, run_intent_slot_job

    ws = _workspace(database_url)
    config = None
    if not resume:
        if not dataset:
            _fail("give --dataset (see `callsense data list`) or --resume RUN")
        config = IntentSlotJobConfig(
            dataset=dataset, init=init, max_length=max_length, pooling=pooling, dropout=dropout,
            slot_loss_weight=slot_loss_weight, per_channel=per_channel, keep_checkpoint=keep_checkpoint,
            out=str(out) if out else None, model_name=model_name, name=name, register_candidate=register_model,
            train=_train_options(ws.settings, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr, seed=seed,
                                 max_steps=max_steps, device=device, threads=threads, warmup_ratio=warmup_ratio,
                                 weight_decay=weight_decay, select_epoch=select_epoch, checkpoint_every=checkpoint_every))
    with _progress() as p:
        run = run_intent_slot_job(ws, config, resume=resume, progress=RichProgress(p), threads=threads, device=device)
    _print_run(run)
    _maybe_promote(ws, run, promote)


@finetune_app.command("asr")
@friendly
def finetune_asr(
    dataset: Optional[str] = typer.Option(None, help="ASR dataset version (id, prefix or name)."),
    model: Optional[Path] = typer.Option(None, help="The .nemo checkpoint to fine-tune."),
    epochs: int = typer.Option(5, help=EPOCHS_HELP), batch_size: int = typer.Option(4), lr: float = typer.Option(1e-4),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay."),
    max_duration: float = typer.Option(30.0, help="Clips longer than this (seconds) are left out of training."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps."),
    seed: int = typer.Option(13, help=SEED_HELP), device: Optional[str] = typer.Option(None), threads: Optional[int] = typer.Option(None),
    name: str = typer.Option("asr", help="Registry name."),
    resume: Optional[str] = typer.Option(None, help="Resume a run: RUN_ID or `last`."),
    register_model: bool = typer.Option(True, "--register/--no-register"),
    database_url: Optional[str] = DB_OPTION,
):
    """Fine-tune a NeMo ASR checkpoint (.nemo) on a dataset version's NeMo manifest (the `nemo` extra)."""
    from callsense.finetune.jobs.asr import AsrJobConfig, run_asr_job

    ws = _workspace(database_url)
    config = None
    if not resume:
        if not dataset or not model:
            _fail("give --dataset and --model PATH.nemo (or --resume RUN)")
        config = AsrJobConfig(dataset=dataset, model=str(model.resolve()), max_duration=max_duration, name=name,
                              register_candidate=register_model,
                              train=_train_options(ws.settings, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                                   max_steps=max_steps, device=device, threads=threads, warmup_ratio=0.0,
                                                   weight_decay=weight_decay))
    with _progress() as p:
        run = run_asr_job(ws, config, resume=resume, progress=RichProgress(p), threads=threads, device=device)
    _print_run(run)


@finetune_app.command("asr-init")
@friendly
def finetune_asr_init(
    out: Path = typer.Option(..., help="Where to write the .nemo checkpoint (e.g. model.nemo)."),
    seed: int = typer.Option(0, help="Seeds the initial weights."),
):
    """Write a first .nemo checkpoint for `finetune asr --model`: a tiny character CTC model (untrained; the `nemo` extra)."""
    from callsense.finetune.jobs.asr import build_tiny_ctc

    if out.suffix != ".nemo":
        _fail(f"{out}: the checkpoint's name must end in .nemo")
    with console.status("building a tiny character CTC model ..."):
        path = build_tiny_ctc(out.expanduser().resolve(), seed=seed)
    console.print(f"wrote {path} ({path.stat().st_size // 1024} KiB): an untrained character CTC model; fine-tune it with "
                  f"`callsense finetune asr --dataset REF --model {path}`")


# --------------------------------------------------------------------------------- eval


def _report_dir(ws, report: Optional[Path], kind: str) -> Path:
    from callsense.finetune.reports import report_folder

    return report or report_folder(ws.reports_dir, kind)


def _rows_from(ws, ref: str, kind: str, reader) -> tuple[list[dict], str]:
    """A file path (read by `reader`) or DATASET[:SPLIT] (default split test)."""
    path = Path(ref)
    if path.exists():
        return reader(path), str(path)
    from callsense.finetune.datasets import DatasetStore

    ds_ref, _, split = ref.partition(":")
    v = DatasetStore(ws).get(ds_ref)
    if v.kind != kind:
        from callsense.finetune.workspace import FinetuneError

        raise FinetuneError(f"{v.id} is a {v.kind} dataset; this needs {kind}")
    split = split or "test"
    rows = v.rows(split)
    if not rows:
        from callsense.finetune.promotion import split_error
        from callsense.finetune.workspace import FinetuneError

        raise FinetuneError(split_error(v, split))
    return rows, f"{v.id}:{split}"


def _registry_record(ws, kind: str, version: Optional[int], name: Optional[str] = None):
    from callsense.finetune.registry import ModelRegistry

    return ModelRegistry(ws).resolve(kind, name, version)


def _registry_dir(ws, kind: str, version: Optional[int], explicit: bool = True, name: Optional[str] = None) -> Path | None:
    """The folder of registry model `name` (default: the kind's name) `version` (default: the serving one)."""
    if not explicit:
        return None
    rec = _registry_record(ws, kind, version, name)
    return rec.artifact_dir if rec else None


def _warn_lineage(ws, kind: str, folder: Optional[Path], version: Optional[int], name: Optional[str], data: str, rows: list) -> None:
    """`eval` says when the scored model was trained or tuned on the evaluation rows (as the gate does)."""
    from callsense.finetune.datasets import DatasetStore
    from callsense.finetune.promotion import CLEAN_HOLDOUT_HINT, describe_overlap, is_training_overlap, lineage_overlap
    from callsense.finetune.registry import ModelRecord
    from callsense.finetune.workspace import FinetuneError

    store = DatasetStore(ws)
    rec = _registry_record(ws, kind, version, name) if folder is None else None
    if rec is None:
        from callsense.finetune.registry import builtin_model

        found = builtin_model(kind)
        folder = folder or (found[0] if found else None)
        if folder is None:
            return
        fmt = {"sentiment": "onnx-sentiment", "intent-slot": "onnx-intent-slot"}.get(kind, "nemo")
        rec = ModelRecord(kind, 0, "", fmt, Path(folder), "", "", "", {}, "", "", 0.0, None)
    holdout = None
    if not Path(data).exists():
        try:
            holdout = store.get(data.partition(":")[0])
        except FinetuneError:
            holdout = None
    for o in lineage_overlap(rec, holdout, rows, store):
        err.print(f"[yellow]warning:[/] {describe_overlap('the model', o)}: its figures here are optimistic", highlight=False)
        if is_training_overlap(o):
            err.print(f"[yellow]hint:[/] {CLEAN_HOLDOUT_HINT}", highlight=False)


@eval_app.command("sentiment")
@friendly
def eval_sentiment(
    data: str = typer.Argument(..., help="A CSV laid out like MELD (Utterance, Sentiment, ...) or DATASET[:SPLIT]."),
    model_dir: Optional[Path] = typer.Option(None, help="Model folder (default: the registry's serving sentiment model)."),
    version: Optional[int] = typer.Option(None, help="Registry version to score instead of the serving one."),
    name: Optional[str] = typer.Option(None, "--name", help="Registry model name (default: the kind's own; see `callsense models list`)."),
    context: bool = typer.Option(True, help="Give context models the previous utterances."),
    report: Optional[Path] = typer.Option(None, help="Report folder (default: <finetune_dir>/reports/<time>-sentiment)."),
    database_url: Optional[str] = DB_OPTION,
):
    """Score a sentiment model: macro-F1, per-class precision/recall/F1, confusion matrix, bootstrap 95 % intervals."""
    from callsense.finetune.evaluate import evaluate_sentiment_rows, read_sentiment_csv
    from callsense.finetune.metrics import BootstrapOptions
    from callsense.finetune.reports import sentiment_report

    ws = _workspace(database_url)
    rows, label = _rows_from(ws, data, "sentiment", read_sentiment_csv)
    if not rows:
        _fail(f"{data}: no labelled rows")
    folder = model_dir or _registry_dir(ws, "sentiment", version, name=name)
    _warn_lineage(ws, "sentiment", model_dir, version, name, data, rows)
    with _progress() as p:
        result = evaluate_sentiment_rows(folder, rows, ws.settings, BootstrapOptions.from_settings(ws.settings),
                                         context_turns=None if context else 0, progress=RichProgress(p))
    result.update(data=label, command="callsense eval sentiment " + data)
    console.print(f"model {result['model_id']} on {label}: {result['n']} sentences in {result['seconds']} s")
    console.print(f"macro-F1 {_ci(result['macro_f1'])}   accuracy {_ci(result['accuracy'])}   (95 % bootstrap intervals)")
    t = Table("class", "precision", "recall", "F1", "support")
    for l in result["labels"]:
        c = result["per_class"][l]
        t.add_row(l, _ci(c["precision"]), _ci(c["recall"]), _ci(c["f1"]), str(c["support"]))
    console.print(t)
    cm = Table("true \\ predicted", *result["labels"])
    for l, row in zip(result["labels"], result["confusion_matrix"]):
        cm.add_row(l, *map(str, row))
    console.print(cm)
    paths = sentiment_report(result, _report_dir(ws, report, "sentiment"))
    console.print(f"report: {paths['markdown']} and {paths['html']}")


def _boost_words(boost: list[str], boost_file: Optional[Path]) -> list[str]:
    words = [w for w in boost]
    if boost_file:
        for line in boost_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                words.append(line.split(":", 1)[0].strip())
    return words


@eval_app.command("asr")
@friendly
def eval_asr(
    data: str = typer.Argument(..., help="A NeMo manifest, an audio manifest.jsonl (../shared/data/audio), or DATASET[:SPLIT]."),
    engine: List[str] = typer.Option(["whisper"], "--engine", "-e", help="whisper, whisper+boost, nemo:PATH.nemo, riva, ... (repeat to compare)."),
    boost: List[str] = typer.Option([], help="Boosted word or phrase for whisper+boost (repeatable)."),
    boost_file: Optional[Path] = typer.Option(None, help="File of boosted words, one `word[:score]` per line."),
    report: Optional[Path] = typer.Option(None, help="Report folder."),
    database_url: Optional[str] = DB_OPTION,
):
    """Word error rate (jiwer) of one or more ASR systems on the same clips, with bootstrap intervals."""
    from callsense.finetune.audio_cache import AudioCache
    from callsense.finetune.evaluate import asr_system, evaluate_asr_rows, read_asr_manifest
    from callsense.finetune.metrics import BootstrapOptions
    from callsense.finetune.reports import asr_report

    ws = _workspace(database_url)
    rows, label = _rows_from(ws, data, "asr", read_asr_manifest)
    words = _boost_words(boost, boost_file)
    with console.status("loading the ASR engines ..."):
        systems = [asr_system(e, ws.settings, words) for e in engine]
    cache = AudioCache(ws.audio_cache_dir, ws.settings.pipeline.decoder)
    with _progress() as p:
        result = evaluate_asr_rows(rows, systems, cache, BootstrapOptions.from_settings(ws.settings), RichProgress(p))
    for s in result["systems"].values():
        s.pop("hypotheses", None)
    import shlex

    argv = ["callsense", "eval", "asr", data] + [a for e in engine for a in ("-e", e)] + [a for w in boost for a in ("--boost", w)]
    argv += ["--boost-file", str(boost_file)] if boost_file else []
    result.update(data=label, command=" ".join(shlex.quote(a) for a in argv), engines=list(engine), boosted_words=words,
                  bootstrap=BootstrapOptions.from_settings(ws.settings).__dict__)
    console.print(f"{result['n']} clips, {result['audio_s']} s of audio; decoded-audio cache: {cache.stats.line()}")
    t = Table("system", "model", "words", "WER (95 % interval)", "subs", "dels", "ins", "RTF")
    for name, s in result["systems"].items():
        t.add_row(name, s["model_id"], str(s["words"]), _pct(s["wer"]), str(s["substitutions"]), str(s["deletions"]),
                  str(s["insertions"]), f"{s['rtf']:.3f}")
    console.print(t)
    paths = asr_report(result, _report_dir(ws, report, "asr"))
    console.print(f"report: {paths['markdown']} and {paths['html']}")


@eval_app.command("intent")
@friendly
def eval_intent(
    data: str = typer.Argument(..., help="A NeMo intent/slot folder (or PREFIX.tsv), a SNIPS seq folder, or DATASET[:SPLIT]."),
    prefix: str = typer.Option("test", help="Split prefix in a NeMo folder (test.tsv + test_slots.tsv)."),
    model_dir: Optional[Path] = typer.Option(None, help="Model folder (default: the registry's serving intent-slot model)."),
    version: Optional[int] = typer.Option(None, help="Registry version to score instead of the serving one."),
    name: Optional[str] = typer.Option(None, "--name", help="Registry model name (default: the kind's own; see `callsense models list`)."),
    report: Optional[Path] = typer.Option(None, help="Report folder."),
    database_url: Optional[str] = DB_OPTION,
):
    """Intent accuracy and slot span F1 (exact type and boundaries) with bootstrap intervals."""
    from callsense.finetune.evaluate import evaluate_intent_rows, read_intent_folder
    from callsense.finetune.metrics import BootstrapOptions
    from callsense.finetune.reports import intent_report

    ws = _workspace(database_url)
    rows, label = _rows_from(ws, data, "intent-slot", lambda p: read_intent_folder(p, prefix))
    folder = model_dir or _registry_dir(ws, "intent-slot", version, name=name)
    with _progress() as p:
        result = evaluate_intent_rows(folder, rows, ws.settings, BootstrapOptions.from_settings(ws.settings), RichProgress(p))
    result.update(data=label, command="callsense eval intent " + data, bootstrap=BootstrapOptions.from_settings(ws.settings).__dict__)
    console.print(f"model {result['model_id']} on {label}: {result['n']} queries in {result['seconds']} s")
    console.print(f"intent accuracy {_pct(result['intent_accuracy'])}   slot F1 {_pct(result['slot_f1'])}   "
                  f"whole query {_pct(result['sentence_accuracy'])}")
    if result["unknown_gold_intents"]:
        console.print(f"[yellow]note:[/] the model does not know these intents of the data: {', '.join(result['unknown_gold_intents'])}")
    paths = intent_report(result, _report_dir(ws, report, "intent"))
    console.print(f"report: {paths['markdown']} and {paths['html']}")


@eval_app.command("pipeline")
@friendly
def eval_pipeline(
    data: str = typer.Argument(..., help="Audio with reference text: an audio manifest.jsonl, a NeMo manifest, DATASET[:SPLIT], "
                                "or recorded calls with a .turns.csv beside each (a call file or a folder: the whole pipeline runs)."),
    engine: Optional[str] = typer.Option(None, help="ASR system (whisper, nemo:PATH.nemo, ...); default whisper, for calls the configured one."),
    model_dir: Optional[Path] = typer.Option(None, help="Sentiment model folder (default: the serving one)."),
    version: Optional[int] = typer.Option(None, help="Sentiment registry version instead of the serving one."),
    name: Optional[str] = typer.Option(None, "--name", help="Registry model name (default: the kind's own; see `callsense models list`)."),

    report: Optional[Path] = typer.Option(None, help="Report folder."),
    reuse: Optional[Path] = typer.Option(None, help="Calls only: the report folder of an earlier run on the same calls; its "
                                         "stored sentences are scored again with this run's sentiment model instead of running "
                                         "the pipeline again (compare sentiment models on the very same transcripts)."),
    database_url: Optional[str] = DB_OPTION,
):
    """TR-4910's pipeline sentiment metric: sentiment on ASR text vs on reference text (agreement, mean difference)."""
    from callsense.finetune.audio_cache import AudioCache
    from callsense.finetune.evaluate import SentimentPredictor, asr_system, evaluate_pipeline_rows, read_asr_manifest
    from callsense.finetune.metrics import BootstrapOptions
    from callsense.finetune.reports import pipeline_report

    ws = _workspace(database_url)
    from callsense.finetune.call_eval import is_call_input

    if is_call_input(data):
        return _eval_pipeline_calls(ws, data, engine, model_dir or _registry_dir(ws, "sentiment", version, name=name, explicit=model_dir is None
                                                                                 and (version is not None or name is not None
                                                                                      or _serving_backend(ws))),
                                    report, reuse)
    engine = engine or "whisper"
    if reuse is not None:
        _fail("--reuse is for recorded calls with turn files (the stored sentences of an earlier `eval pipeline` run)")
    rows, label = _rows_from(ws, data, "asr", read_asr_manifest)
    with console.status("loading models ..."):
        system = asr_system(engine, ws.settings)
        predictor = SentimentPredictor(model_dir or _registry_dir(ws, "sentiment", version, name=name), ws.settings)
    opts = BootstrapOptions.from_settings(ws.settings)
    with _progress() as p:
        result = evaluate_pipeline_rows(rows, system, predictor, AudioCache(ws.audio_cache_dir, ws.settings.pipeline.decoder), opts,
                                        RichProgress(p))
    result.update(data=label, command="callsense eval pipeline " + data, bootstrap=opts.__dict__)
    console.print(f"{result['n']} sentences; ASR {result['asr_model']} WER {_pct(result['asr']['wer'])}; sentiment {result['sentiment_model']}")
    console.print(f"agreement {_pct(result['agreement'])}   PIPELINE_SENTIMENT_METRIC mean(GT-ASR) {_ci(result['pipeline_sentiment_metric'])}"
                  f"   mean |GT-ASR| {_ci(result['mean_abs_difference'])}")
    paths = pipeline_report(result, _report_dir(ws, report, "pipeline"))
    console.print(f"report: {paths['markdown']} and {paths['html']}")


def _serving_backend(ws) -> bool:
    return ws.settings.sentiment.backend == "serving"


def _eval_pipeline_calls(ws, data: str, engine: Optional[str], sentiment_dir: Optional[Path], report: Optional[Path],
                        reuse: Optional[Path] = None) -> None:
    """Recorded calls + turn files: `callsense process` into a scratch data dir, stored sentences mapped to turns."""
    import tempfile

    from callsense.finetune.call_eval import evaluate_calls, find_calls, pipeline_env, read_stored, rescore, reused_scratch, run_process
    from callsense.finetune.evaluate import SentimentPredictor
    from callsense.finetune.metrics import BootstrapOptions
    from callsense.finetune.reports import calls_report

    pairs = find_calls(Path(data))
    opts = BootstrapOptions.from_settings(ws.settings)
    folder = _report_dir(ws, report, "pipeline-calls")
    predictor = SentimentPredictor(sentiment_dir, ws.settings)
    if reuse is not None:
        scratch, proc = reused_scratch(reuse, engine)
        stored = read_stored(scratch, [a.name for a, _ in pairs])
        with console.status(f"scoring the stored sentences of {reuse} again with {predictor.model_id} ..."):
            stored = rescore(stored, predictor)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="callsense-eval-", dir=ws.root if ws.root.is_dir() else None))
        with console.status(f"running `callsense process` on {len(pairs)} calls (scratch store {scratch}) ..."):
            proc = run_process([a for a, _ in pairs], scratch, pipeline_env(scratch, asr_engine=engine, sentiment_dir=sentiment_dir))
        stored = read_stored(scratch, [a.name for a, _ in pairs])
    with _progress() as p:
        result = evaluate_calls(pairs, stored, predictor, opts, RichProgress(p))
    any_call = next(iter(stored.values()), {})
    result.update(data=str(data), process=proc, scratch=str(scratch), bootstrap=opts.__dict__,
                  asr_model=any_call.get("asr_model", ""), stored_sentiment_model=any_call.get("sentiment_model", ""),
                  command="callsense eval pipeline " + str(data) + (f" --engine {engine}" if engine else "")
                  + (f" --reuse {reuse}" if reuse else "") + (f" (sentiment model {sentiment_dir})" if sentiment_dir else ""))
    console.print(f"{result['calls']} calls, {result['turns']} turns ({result['matched_turns']} with a stored sentence, "
                  f"{result['missed_turns']} missed, {result['unmatched_sentences']} sentences unmatched); pipeline took {proc['seconds']} s")
    for ch, w in result["wer"].items():
        console.print(f"WER {ch} {_pct(w['wer'])} ({w['words']} words)")
    if result.get("stored_sentences"):
        console.print(f"sentiment macro-F1 vs human labels: reference text {_ci(result['reference_text']['macro_f1'])}, "
                      f"stored sentences {_ci(result['stored_sentences']['macro_f1'])}; agreement {_pct(result['agreement']['agreement'])}")
    paths = calls_report(result, folder)
    console.print(f"report: {paths['markdown']} and {paths['html']}")


# ------------------------------------------------------------------------------- models


@models_app.command("list")
@friendly
def models_list(name: Optional[str] = typer.Argument(None, help="sentiment, intent-slot, asr (default: all)."),
                database_url: Optional[str] = DB_OPTION):
    """Registered model versions with status, metrics and dataset version."""
    from callsense.finetune.registry import MODEL_NAMES, ModelRegistry

    reg = ModelRegistry(_workspace(database_url))
    for n in [name] if name else MODEL_NAMES:
        reg.ensure_builtin(n)
    versions = reg.versions(name)
    if not versions:
        console.print("no models registered yet: run `callsense finetune ...`")
        return
    t = Table("model", "status", "metrics", "dataset", "created")
    t.columns[1].no_wrap = True
    for v in versions:
        style = "bold green" if v.status == "serving" else ("dim" if v.status == "archived" else "")
        metrics = ", ".join(f"{k} {val:.4f}" if isinstance(val, float) else f"{k} {val}"
                            for k, val in v.metrics.items() if val is not None and not isinstance(val, dict))
        t.add_row(v.label, f"[{style}]{v.status}[/]" if style else v.status, metrics or v.notes, v.dataset_version or "-",
                  _when(v.created_at))
    console.print(t)
    for v in versions:
        console.print(f"[dim]{v.label}: {v.artifact_dir}" + (f" (run {v.run_id})" if v.run_id else "") + "[/]", highlight=False)


FORMATS = {"sentiment": "onnx-sentiment", "intent-slot": "onnx-intent-slot", "asr": "nemo"}


@models_app.command("register")
@friendly
def models_register(
    name: str = typer.Argument(..., help="Registry name: sentiment, intent-slot, asr, or another name with --kind."),
    folder: Path = typer.Argument(..., help="The model folder (e.g. a run's model/ folder or a build script's output): "
                                  "a manifest.json whose sha256 matches its model file."),
    kind: Optional[str] = typer.Option(None, help="sentiment, intent-slot or asr (needed for a name other than those)."),
    dataset: str = typer.Option("", help="Dataset version it was trained on (lets the gate refuse a holdout it has seen)."),
    notes: str = typer.Option("", help="A note kept with the version."),
    database_url: Optional[str] = DB_OPTION,
):
    """Register a model folder as a new candidate version (copied into the registry)."""
    from callsense.finetune.registry import ModelRegistry

    kind = kind or (name if name in FORMATS else None)
    if kind not in FORMATS:
        _fail(f"give --kind ({', '.join(FORMATS)}) for a model name other than {', '.join(FORMATS)}")
    from callsense.finetune.registry import check_model_folder

    check_model_folder(folder, FORMATS[kind])
    rec = ModelRegistry(_workspace(database_url)).register(name, folder, format=FORMATS[kind], dataset_version=dataset,
                                                           notes=notes or f"registered from {folder}")
    console.print(f"registered {rec.label} (candidate) at {rec.artifact_dir}")


@models_app.command("runs")
@friendly
def models_runs(job: Optional[str] = typer.Argument(None, help="sentiment, intent-slot or asr."), limit: int = typer.Option(20),
                database_url: Optional[str] = DB_OPTION):
    """Recorded fine-tuning runs, newest first."""
    from callsense.finetune.runs import list_runs

    runs = list_runs(_workspace(database_url), job, limit)
    if not runs:
        console.print("no runs yet: run `callsense finetune ...`")
        return
    t = Table("run", "status", "dataset", "epochs", "wall s", "started", "code")
    for r in runs:
        t.add_row(r["id"], r["status"], r["dataset_version"], str(len(r["epochs"])), f"{r['wall_s']:.0f}", _when(r["started_at"]),
                  (r["code_version"] or "")[:14])
    console.print(t)


@models_app.command("promote")
@friendly
def models_promote(
    name: str = typer.Argument(..., help="sentiment, intent-slot or asr."),
    version: int = typer.Argument(..., help="The candidate version."),
    holdout: Optional[str] = typer.Option(None, help="DATASET[:SPLIT] both models are scored on (default: the candidate's test split)."),
    force: bool = typer.Option(False, help="Skip the comparison (an emergency; recorded as forced)."),
    report: Optional[Path] = typer.Option(None, help="Report folder for the decision."),
    database_url: Optional[str] = DB_OPTION,
):
    """Promote a candidate only if it beats the serving model on the same holdout (bootstrap interval of the gain above 0)."""
    from callsense.finetune.promotion import run_gate
    from callsense.finetune.reports import gate_report

    ws = _workspace(database_url)
    with _progress() as p:
        decision = run_gate(ws, name, version, holdout=holdout, force=force, progress=RichProgress(p))
    if decision.delta:
        console.print(f"{decision.metric} on {decision.holdout} ({decision.n} rows): candidate v{decision.candidate} "
                      f"{_ci(decision.candidate_score, 4)}, serving v{decision.serving} {_ci(decision.serving_score, 4)}, "
                      f"improvement {_ci(decision.delta, 4)}")
    for note in decision.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print(("[bold green]" if decision.promoted else "[bold yellow]") + decision.reason + "[/]", highlight=False)
    paths = gate_report(decision.as_dict(), _report_dir(ws, report, f"gate-{name}-v{version}"))
    console.print(f"report: {paths['markdown']}")
    if not decision.promoted:
        raise typer.Exit(2)


@models_app.command("rollback")
@friendly
def models_rollback(name: str = typer.Argument(..., help="sentiment, intent-slot or asr."), database_url: Optional[str] = DB_OPTION):
    """Serve again the version that served before the current one (workers pick it up without a restart)."""
    from callsense.finetune.registry import ModelRegistry

    reg = ModelRegistry(_workspace(database_url))
    before = reg.serving(name)
    now = reg.rollback(name)
    console.print(f"{name}: v{before.version} -> v{now.version} now serves ({now.artifact_dir})")
