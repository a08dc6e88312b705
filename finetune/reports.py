"""Evaluation reports: one list of blocks (headings, text, tables, PNG plots) rendered both
as Markdown and as a self-contained HTML page, next to `result.json` with every figure.
Plots need matplotlib (the `eval` extra); without it the report says so and has no images."""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from callsense.finetune.workspace import utc_iso, write_json


@dataclass
class Report:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)

    def heading(self, text: str) -> "Report":
        self.blocks.append(("h2", text))
        return self

    def text(self, text: str) -> "Report":
        self.blocks.append(("p", text))
        return self

    def table(self, header: list[str], rows: list[list]) -> "Report":
        self.blocks.append(("table", (header, rows)))
        return self

    def image(self, path: Path | None, caption: str) -> "Report":
        if path is not None:
            self.blocks.append(("img", (path, caption)))
            self.images.append(path)
        return self

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [str(value), ""]
            elif kind == "table":
                header, rows = value
                out.append("| " + " | ".join(map(str, header)) + " |")
                out.append("| " + " | ".join("---" for _ in header) + " |")
                out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "img":
                path, caption = value
                out += [f"![{caption}]({path.name})", ""]
        return "\n".join(out)

    def html(self) -> str:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
                 "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "h2":
                parts.append(f"<h2>{html.escape(str(value))}</h2>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(str(value))}</p>")
            elif kind == "table":
                header, rows = value
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
                parts.append("</table>")
            elif kind == "img":
                path, caption = value
                parts.append(f"<figure><img src='{html.escape(path.name)}' alt='{html.escape(caption)}'>"
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, folder: Path, result: dict) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": folder / "report.md", "html": folder / "report.html", "json": folder / "result.json"}
        paths["markdown"].write_text(self.markdown() + "\n", encoding="utf-8")
        paths["html"].write_text(self.html() + "\n", encoding="utf-8")
        write_json(paths["json"], result)
        return paths


# ---------------------------------------------------------------------------------- plots


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except ImportError:
        return None


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path, title: str, xlabel: str = "predicted",
                   ylabel: str = "true") -> Path | None:
    plt = _pyplot()
    if plt is None:
        return None
    import numpy as np

    m = np.array(cm, dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=110)
    row_share = m / np.maximum(1, m.sum(axis=1, keepdims=True))
    ax.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}\n{row_share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if row_share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_bars(names: list[str], series: dict[str, list[dict]], path: Path, title: str, ylabel: str,
              ymax: float | None = 1.0) -> Path | None:
    """Grouped bars with interval whiskers; series: name -> one {value, low, high} per bar group."""
    plt = _pyplot()
    if plt is None:
        return None
    import numpy as np

    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(names) + 2), 3.4), dpi=110)
    for k, (label, values) in enumerate(series.items()):
        v = np.array([d["value"] for d in values])
        err = np.array([[d["value"] - d["low"] for d in values], [d["high"] - d["value"] for d in values]])
        ax.bar(x + (k - (len(series) - 1) / 2) * width, v, width, yerr=np.maximum(err, 0), capsize=3, label=label)
    ax.set_xticks(x, names, fontsize=8, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    top = max(d["high"] for values in series.values() for d in values) if series else 1.0
    ax.set_ylim(0, ymax if ymax is not None else max(0.05, 1.25 * top))
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _ci(d: dict, digits: int = 3) -> str:
    return f"{d['value']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"


def _pct(d: dict) -> str:
    return f"{100 * d['value']:.2f} % [{100 * d['low']:.2f}, {100 * d['high']:.2f}]"


def _header(report: Report, result: dict) -> None:
    b = result.get("bootstrap") or {}
    report.text(f"Generated {utc_iso()} by `{result.get('command', 'callsense eval')}`. Intervals: "
                f"{int(100 * b.get('confidence', 0.95))} % bootstrap percentile intervals over "
                f"{b.get('samples', 1000)} resamples of the evaluation items (seed {b.get('seed', 13)}).")


# -------------------------------------------------------------------------------- reports


def sentiment_report(result: dict, folder: Path) -> dict[str, Path]:
    labels = result["labels"]
    folder.mkdir(parents=True, exist_ok=True)
    r = Report(f"Sentiment evaluation: {result.get('data', '')}")
    _header(r, result)
    r.table(["model", "rows", "macro-F1", "accuracy", "seconds"],
            [[result["model_id"], result["n"], _ci(result["macro_f1"]), _ci(result["accuracy"]), result.get("seconds", "")]])
    r.heading("Per class")
    r.table(["class", "precision", "recall", "F1", "support"],
            [[l, _ci(result["per_class"][l]["precision"]), _ci(result["per_class"][l]["recall"]), _ci(result["per_class"][l]["f1"]),
              result["per_class"][l]["support"]] for l in labels])
    r.heading("Confusion matrix (rows: true, columns: predicted)")
    r.table(["true \\ predicted", *labels], [[l, *row] for l, row in zip(labels, result["confusion_matrix"])])
    r.image(plot_confusion(result["confusion_matrix"], labels, folder / "confusion.png", "sentiment confusion"), "confusion matrix")
    series = {m: [result["per_class"][l][m] for l in labels] for m in ("precision", "recall", "f1")}
    r.image(plot_bars(labels, series, folder / "per_class.png", "per-class precision / recall / F1", "score"), "per-class bars")
    if _pyplot() is None:
        r.text("(No plots: install matplotlib, the `eval` extra.)")
    return r.write(folder, result)


def asr_report(result: dict, folder: Path) -> dict[str, Path]:
    r = Report(f"ASR evaluation: {result.get('data', '')}")
    _header(r, result)
    r.text(f"{result['n']} clips, {result['audio_s']} s of audio. Decoded-audio cache: {result['cache']['misses']} decoded in "
           f"{result['cache']['decode_s']} s, {result['cache']['hits']} read from the cache in {result['cache']['load_s']} s.")
    rows = []
    for label, s in result["systems"].items():
        rows.append([label, s["model_id"], s["words"], _pct(s["wer"]), s["substitutions"], s["deletions"], s["insertions"],
                     s["rtf"]])
    r.table(["system", "model", "words", "WER", "subs", "dels", "ins", "real-time factor"], rows)
    folder.mkdir(parents=True, exist_ok=True)
    r.image(plot_bars(list(result["systems"]), {"WER": [s["wer"] for s in result["systems"].values()]},
                      folder / "wer.png", "word error rate (95 % interval)", "WER", ymax=None), "WER per system")
    for label, s in result["systems"].items():
        if s.get("examples"):
            r.heading(f"Errors of {label}")
            r.table(["reference", "hypothesis"], [[e["ref"], e["hyp"]] for e in s["examples"]])
    return r.write(folder, result)


def intent_report(result: dict, folder: Path) -> dict[str, Path]:
    r = Report(f"Intent and slot evaluation: {result.get('data', '')}")
    _header(r, result)
    r.table(["model", "queries", "intent accuracy", "slot F1 (span)", "slot P", "slot R", "whole query right"],
            [[result["model_id"], result["n"], _pct(result["intent_accuracy"]), _pct(result["slot_f1"]),
              f"{100 * result['slot_precision']:.2f} %", f"{100 * result['slot_recall']:.2f} %", _pct(result["sentence_accuracy"])]])
    if result.get("unknown_gold_intents"):
        r.text("Intents in the data that the model does not know: " + ", ".join(result["unknown_gold_intents"]))
    r.heading("Accuracy per intent")
    r.table(["intent", "accuracy"], [[k, f"{v:.4f}"] for k, v in result["per_intent_accuracy"].items()])
    folder.mkdir(parents=True, exist_ok=True)
    names = list(result["per_intent_accuracy"])
    r.image(plot_bars(names, {"accuracy": [{"value": v, "low": v, "high": v} for v in result["per_intent_accuracy"].values()]},
                      folder / "per_intent.png", "intent accuracy per intent", "accuracy"), "per-intent accuracy")
    return r.write(folder, result)


def pipeline_report(result: dict, folder: Path) -> dict[str, Path]:
    r = Report(f"Pipeline sentiment (TR-4910): {result.get('data', '')}")
    _header(r, result)
    r.text("Each sentence's sentiment is predicted twice with the same model: on the reference text and on the ASR "
           "text of its audio. Labels are numbers (negative -1, neutral 0, positive +1); PIPELINE_SENTIMENT_METRIC = "
           "mean(reference - ASR). 0 and 100 % agreement mean ASR errors never changed a sentiment.")
    r.table(["ASR", "sentiment model", "sentences", "WER", "agreement", "pipeline metric mean(GT-ASR)", "mean |GT-ASR|"],
            [[result["asr_model"], result["sentiment_model"], result["n"], _pct(result["asr"]["wer"]), _pct(result["agreement"]),
              _ci(result["pipeline_sentiment_metric"]), _ci(result["mean_abs_difference"])]])
    if result.get("vs_human_labels"):
        r.text(f"macro-F1 against the human labels: reference text {_ci(result['vs_human_labels']['reference_text'])}, "
               f"ASR text {_ci(result['vs_human_labels']['asr_text'])}.")
    folder.mkdir(parents=True, exist_ok=True)
    r.image(plot_confusion(result["confusion_matrix"], result["labels"], folder / "pipeline_confusion.png",
                           "sentiment: reference text vs ASR text", xlabel="on ASR text", ylabel="on reference text"),
            "reference-text vs ASR-text sentiment")
    r.heading("Sentences")
    r.table(["reference", "ASR", "sentiment (ref)", "sentiment (ASR)"],
            [[s["reference"], s["asr"], s["reference_sentiment"], s["asr_sentiment"]] for s in result["sentences"]])
    return r.write(folder, result)


def calls_report(result: dict, folder: Path) -> dict[str, Path]:
    """`eval pipeline` on recorded calls with turn files (finetune/call_eval.py)."""
    r = Report(f"Pipeline on calls (TR-4910): {result.get('data', '')}")
    _header(r, result)
    r.text(f"{result['calls']} calls through `{result['process']['command']}` ({result['process']['seconds']} s) as configured: "
           f"ASR {result.get('asr_model') or '?'}, sentiment {result.get('stored_sentiment_model') or '?'}. "
           f"{result['turns']} reference turns, {result['matched_turns']} with a stored sentence, {result['missed_turns']} missed; "
           f"{result['unmatched_sentences']} stored sentences overlap no turn of their channel.")
    r.text("Mapping: " + result["mapping_rule"] + ".")
    r.heading("Word error rate per channel")
    r.table(["channel", "calls", "words", "WER", "subs", "dels", "ins"],
            [[ch, w["n"], w["words"], _pct(w["wer"]), w["substitutions"], w["deletions"], w["insertions"]]
             for ch, w in list(result["wer"].items()) + [("both", result["wer_all"])]])
    folder.mkdir(parents=True, exist_ok=True)
    r.image(plot_bars(list(result["wer"]), {"WER": [w["wer"] for w in result["wer"].values()]}, folder / "wer_channels.png",
                      "word error rate per channel (95 % interval)", "WER", ymax=None), "WER per channel")
    if result.get("stored_sentences"):
        ref, st, ag = result["reference_text"], result["stored_sentences"], result["agreement"]
        r.heading("Sentiment against the human labels (matched turns)")
        r.table(["sentiment from", "turns", "macro-F1", "accuracy"],
                [["reference text", ref["n"], _ci(ref["macro_f1"]), _ci(ref["accuracy"])],
                 ["stored sentences (pipeline)", st["n"], _ci(st["macro_f1"]), _ci(st["accuracy"])],
                 ["reference text, all turns", result["reference_text_all_turns"]["n"],
                  _ci(result["reference_text_all_turns"]["macro_f1"]), _ci(result["reference_text_all_turns"]["accuracy"])]])
        r.text(f"Agreement of reference-text and pipeline sentiment: {_pct(ag['agreement'])}; PIPELINE_SENTIMENT_METRIC "
               f"mean(GT-ASR) {_ci(ag['pipeline_sentiment_metric'])}; mean |GT-ASR| {_ci(ag['mean_abs_difference'])}.")
        labels = st["labels"]
        r.heading("Confusion matrices")
        r.table(["human \\ pipeline", *labels], [[l, *row] for l, row in zip(labels, st["confusion_matrix"])])
        r.image(plot_confusion(st["confusion_matrix"], labels, folder / "confusion_stored.png", "human label vs pipeline",
                               xlabel="pipeline (stored sentences)", ylabel="human label"), "human labels vs pipeline")
        r.image(plot_confusion(ref["confusion_matrix"], labels, folder / "confusion_reference.png", "human label vs reference text",
                               xlabel="model on reference text", ylabel="human label"), "human labels vs reference text")
        r.image(plot_confusion(ag["confusion_matrix"], ag["labels"], folder / "confusion_agreement.png",
                               "reference text vs pipeline", xlabel="pipeline", ylabel="reference text"), "reference vs pipeline")
    else:
        r.text("No reference turn got a stored sentence: no sentiment figures.")
    r.heading("Calls")
    r.table(["call", "turns", "sentences", "missed turns", "unmatched sentences"],
            [[c["call"], c["turns"], c["sentences"], c["missed_turns"], c["unmatched_sentences"]] for c in result["per_call"]])
    r.heading("Turns")
    r.table(["call", "ch", "reference", "stored", "label", "ref. text", "pipeline"],
            [[t["call"], t["channel"], t["reference"], t["stored"], t["label"], t.get("reference_sentiment", ""),
              t["stored_sentiment"] or "(missed)"] for t in result["turn_rows"][:300]])
    return r.write(folder, result)


def gate_report(decision: dict, folder: Path) -> dict[str, Path]:
    r = Report(f"Promotion gate: {decision['name']} v{decision['candidate']} vs v{decision['serving']}")
    r.text(decision["reason"])
    if decision.get("delta"):
        r.table(["", decision["metric"]], [["candidate", _ci(decision["candidate_score"], 4)],
                                           ["serving", _ci(decision["serving_score"], 4)],
                                           ["improvement (paired)", _ci(decision["delta"], 4)]])
    for note in decision.get("notes", []):
        r.text("Note: " + note)
    return r.write(folder, decision)


def report_folder(root: Path, kind: str) -> Path:
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}"


def load_result(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())
