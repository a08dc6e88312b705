"""Models: per model (sentiment, intent-slot, asr) the registered versions and their figures,
a candidate next to the serving version, confusion matrices, the training runs with their
per-epoch figures, the dataset versions and their lineage, and the labelled data the
reviews have produced. Managers promote (through the promotion gate) and roll back;
reviewers read. The reads and actions are `callsense.dashboard.models_data.ModelsData`."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from callsense.dashboard import ui
from callsense.dashboard.analytics import LABELS
from callsense.dashboard.data import labelled_sentences
from callsense.dashboard.models_data import (Comparison, ConfusionMatrix, ModelsData, Promotion, RunInfo, VersionInfo, compare,
                                             epoch_series)
from callsense.dashboard.registry import PageContext, page
from callsense.finetune.registry import MODEL_NAMES

OUTCOME_KEY = "models.outcome"  # the last promote / roll back, shown until the next one
FINETUNE_COMMANDS = {"asr": "callsense finetune asr --dataset REF --model CHECKPOINT.nemo"}
KEY_FIGURES = {"sentiment": ("macro-F1", "accuracy"), "intent-slot": ("intent accuracy", "slot F1"), "asr": ("WER",)}
START_HINT = ("Build a dataset version (from the reviews, or files), fine-tune on it, and the run and its candidate "
              "model appear here:\n\n"
              "```\ncallsense data build sentiment --source review\n"
              "callsense finetune sentiment --dataset REF\n```\n\n"
              "`callsense finetune intent-slot` and `callsense finetune asr` work the same way "
              "(see `callsense finetune --help`).")


@page("models", title="Models", icon=":material/model_training:", order=90, roles=("manager", "reviewer"))
def models_page(ctx: PageContext) -> None:
    st.title("Models")
    data = ModelsData(ctx.settings, ctx.user, ctx.engine)
    if not data.started():
        ui.empty_state("No fine-tuning workspace yet.",
                       f"Nothing has been fine-tuned with this store (`{data.workspace_root}` does not exist). " + START_HINT)
    name = st.segmented_control("Model", MODEL_NAMES, default="sentiment", required=True, key="models.name")
    versions = data.versions(name)
    if versions:
        versions_section(name, versions)
        comparison_section(name, versions)
        if data.may_deploy:
            deploy_section(data, name, versions)
        confusion_section(name, versions)
    else:
        st.caption(f"No {name} model registered: `{finetune_command(name)}` trains and registers one.")
    runs_section(data, name)
    datasets_section(data, name)
    history_section(data, name)
    labelled_data_section(ctx)


def finetune_command(name: str) -> str:
    return FINETUNE_COMMANDS.get(name, f"callsense finetune {name} --dataset REF")


# ------------------------------------------------------------------------------- versions


def versions_section(name: str, versions: list[VersionInfo]) -> None:
    st.subheader("Versions")
    figures = KEY_FIGURES.get(name, ())
    st.dataframe(pd.DataFrame([{
        "version": f"v{v.version}", "status": v.status,
        **{f: v.figures[f].text() if f in v.figures else "" for f in figures},
        "measured on": v.measured_on, "dataset": v.dataset_version, "run": v.run_id,
        "created": ui.when(v.created_at), "by": v.created_by, "notes": v.notes,
    } for v in reversed(versions)]), hide_index=True, width="stretch")


def comparison_section(name: str, versions: list[VersionInfo]) -> None:
    others = [v for v in reversed(versions) if v.status != "serving"]  # newest first
    if not others:
        return
    st.subheader("Candidate vs serving")
    candidates = [v for v in others if v.status == "candidate"]
    default = others.index(candidates[0]) if candidates else 0
    version = st.selectbox("Version", [v.version for v in others], index=default, format_func=lambda x: f"v{x}",
                           key=f"models.compare.{name}", width=200)
    serving = next((v for v in versions if v.status == "serving"), None)
    comparison_table(compare(next(v for v in others if v.version == version), serving))


def comparison_table(c: Comparison) -> None:
    serving = c.serving
    if not c.rows:
        st.caption(f"No figures recorded for {c.candidate.label}" + (f" or {serving.label}." if serving else "."))
        return
    left = f"v{c.candidate.version} ({c.candidate.status})"
    right = f"v{serving.version} (serving)" if serving else "serving"
    with st.container(key="models-comparison"):
        st.table(pd.DataFrame([{"figure": label, left: a.text(4) if a else "—", right: b.text(4) if b else "—"}
                               for label, a, b in c.rows]).set_index("figure"))
    if c.same_test_set:
        st.caption(f"Both measured on {c.candidate.measured_on}; [low, high] is each figure's bootstrap interval.")
    else:
        where = "; ".join(f"v{v.version}: {v.measured_on or 'figures recorded at registration'}"
                          for v in (c.candidate, serving) if v)
        st.caption(f"Each version's figures come from its own evaluation ({where}), so they are not a paired comparison: "
                   "the promotion gate scores both on the same holdout rows.")


# --------------------------------------------------------------------------------- deploy


def deploy_section(data: ModelsData, name: str, versions: list[VersionInfo]) -> None:
    st.subheader("Deploy")
    serving = next((v for v in versions if v.status == "serving"), None)
    promote_col, rollback_col = st.columns(2)
    with promote_col:
        promote_control(data, name, [v for v in reversed(versions) if v.status == "candidate"], serving)
    with rollback_col:
        rollback_control(data, name, serving)
    outcome = st.session_state.get(OUTCOME_KEY)
    if outcome and outcome["name"] == name:
        show_outcome(outcome)


def promote_control(data: ModelsData, name: str, candidates: list[VersionInfo], serving: VersionInfo | None) -> None:
    if not candidates:
        st.caption(f"No {name} candidate waiting: `{finetune_command(name)}` registers one.")
        return
    version = st.selectbox("Candidate", [v.version for v in candidates], format_func=lambda x: f"v{x}",
                           key=f"models.promote.version.{name}")
    holdout = st.text_input("Holdout", key=f"models.holdout.{name}", placeholder="DATASET[:SPLIT]",
                            help="The rows both models are scored on. Empty: the candidate's own test split.")
    settings = data.settings
    with st.popover(f"Promote v{version}", icon=":material/rocket_launch:", key=f"models.promote.open.{name}"):
        st.markdown(f"Score **v{version}** and the serving **{f'v{serving.version}' if serving else 'model'}** on the same "
                    f"holdout rows; v{version} replaces it only if the whole {settings.finetune.bootstrap_confidence:.0%} interval of "
                    f"the improvement lies above {settings.finetune.promotion_min_delta:g}. Otherwise the serving model stays.")
        if st.button("Run the promotion gate", type="primary", key="models.promote"):
            with st.spinner(f"scoring v{version} and the serving model on the holdout ..."):
                try:
                    result = data.promote(name, version, holdout.strip() or None)
                except Exception as e:  # noqa: BLE001 - a bad holdout, a broken model folder: one line for the manager
                    remember_outcome(name, "error", f"v{version} not promoted: {first_line(e)}")
                else:
                    remember_promotion(result)
            st.rerun()


def rollback_control(data: ModelsData, name: str, serving: VersionInfo | None) -> None:
    with st.popover("Roll back", icon=":material/undo:", disabled=serving is None, key=f"models.rollback.open.{name}"):
        st.markdown(f"**{serving.label if serving else name}** serves now. Rolling back serves the version that served "
                    "before it again; workers and the assistant switch without a restart.")
        if st.button("Confirm roll back", type="primary", key="models.rollback"):
            try:
                done = data.rollback(name)
            except Exception as e:  # noqa: BLE001 - e.g. nothing served before: one line for the manager
                remember_outcome(name, "error", f"not rolled back: {first_line(e)}")
            else:
                remember_outcome(name, "success", f"rolled back: {name} v{done.to_version} serves again "
                                                  f"(v{done.from_version} archived)")
            st.rerun()


def remember_promotion(result: Promotion) -> None:
    d = result.decision
    table = []
    if d.delta:
        table = [{"": f"candidate v{d.candidate}", d.metric: fmt_interval(d.candidate_score)},
                 {"": f"serving v{d.serving}", d.metric: fmt_interval(d.serving_score)},
                 {"": "improvement (paired)", d.metric: fmt_interval(d.delta)}]
    detail = (f"{d.holdout}, {d.n} rows · " if d.holdout else "") + f"report: {result.report}"
    remember_outcome(d.name, "success" if d.promoted else "warning", d.reason, table=table, notes=[*d.notes, detail])


def remember_outcome(name: str, kind: str, text: str, table: list[dict] | None = None, notes: list[str] | None = None) -> None:
    st.session_state[OUTCOME_KEY] = {"name": name, "kind": kind, "text": text, "table": table or [], "notes": notes or []}


def show_outcome(outcome: dict) -> None:
    show = {"success": st.success, "warning": st.warning, "error": st.error}[outcome["kind"]]
    with st.container(key="models-outcome"):
        show(outcome["text"])
        if outcome["table"]:
            st.table(pd.DataFrame(outcome["table"]).set_index(""))
        for note in outcome["notes"]:
            st.caption(note)


def fmt_interval(d: dict) -> str:
    return f"{d['value']:.4f} [{d['low']:.4f}, {d['high']:.4f}]"


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ------------------------------------------------------------------------------ confusion


def confusion_section(name: str, versions: list[VersionInfo]) -> None:
    with_matrix = [v for v in reversed(versions) if v.confusion is not None]
    st.subheader("Confusion matrix")
    if not with_matrix:
        st.caption(f"No confusion matrix recorded: a {name} run records one when it scores its model on the test split."
                   if name == "sentiment" else f"{name} evaluations record no confusion matrix.")
        return
    version = st.selectbox("Version", [v.version for v in with_matrix], format_func=lambda x: f"v{x}",
                           key=f"models.confusion.{name}", width=200)
    cm = next(v.confusion for v in with_matrix if v.version == version)
    st.altair_chart(confusion_chart(cm), width=420, height=340)
    st.caption(f"v{version} on {cm.measured_on}. Rows: true label, columns: predicted; colour: share of the row.")


def confusion_chart(cm: ConfusionMatrix) -> alt.Chart:
    cells = []
    for true, row in zip(cm.labels, cm.counts):
        total = max(1, sum(row))
        cells += [{"true": true, "predicted": pred, "count": n, "share": n / total, "text": f"{n} ({n / total:.0%})"}
                  for pred, n in zip(cm.labels, row)]
    base = alt.Chart(pd.DataFrame(cells)).encode(
        x=alt.X("predicted:N", sort=cm.labels, title="predicted", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("true:N", sort=cm.labels, title="true"))
    heat = base.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=None),
                                   tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".0%")])
    text = base.mark_text(fontSize=13).encode(text="text:N",
                                              color=alt.condition("datum.share > 0.6", alt.value("white"), alt.value("black")))
    return alt.layer(heat, text)


# ----------------------------------------------------------------------------------- runs


def runs_section(data: ModelsData, name: str) -> None:
    st.subheader("Training runs")
    runs = data.runs(name)
    if not runs:
        st.caption(f"No {name} runs yet: `{finetune_command(name)}` records one.")
        return
    st.dataframe(pd.DataFrame([{
        "run": r.id, "status": r.status, "dataset": r.dataset_version, "started": ui.when(r.started_at),
        "wall time": ui.duration(r.wall_s), "epochs": len(r.epochs), "error": r.error or "",
    } for r in runs]), hide_index=True, width="stretch")
    with_epochs = [r for r in runs if epoch_series(r.epochs)]
    if with_epochs:
        run_id = st.selectbox("Per-epoch figures of", [r.id for r in with_epochs], key=f"models.run.{name}")
        st.altair_chart(epoch_chart(next(r for r in with_epochs if r.id == run_id)), width="stretch", height=260)


def epoch_chart(run: RunInfo) -> alt.Chart:
    frame = pd.DataFrame(epoch_series(run.epochs))
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y("value:Q", title=None),
        color=alt.Color("metric:N", title=None), tooltip=["epoch", "metric", alt.Tooltip("value:Q", format=".4f")])


# ------------------------------------------------------------------------ datasets, history


def datasets_section(data: ModelsData, kind: str) -> None:
    st.subheader("Dataset versions")
    datasets = data.datasets(kind)
    if not datasets:
        st.caption(f"No {kind} dataset versions yet: `callsense data build {kind} --source ...` builds one.")
        return
    st.dataframe(pd.DataFrame([{
        "id": d.id, "name": d.name, **{split: d.counts.get(split, 0) for split in ("train", "dev", "test")},
        "rows by source": counts_text(d.lineage_sources), "rows by reviewer": counts_text(d.lineage_who),
        "by": d.created_by, "created": ui.when(d.created_at),
    } for d in datasets]), hide_index=True, width="stretch")


def counts_text(counts: dict[str, int]) -> str:
    return " · ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def history_section(data: ModelsData, name: str) -> None:
    events = data.events(name)
    if not events:
        return
    st.subheader("History")
    st.dataframe(pd.DataFrame([{
        "when": ui.when(e["at"]), "version": f"v{e['version']}", "action": e["action"], "by": e["by"],
        "reason": e["detail"].get("reason") or e["detail"].get("notes") or "",
    } for e in events]), hide_index=True, width="stretch")


def labelled_data_section(ctx: PageContext) -> None:
    st.subheader("Labelled data so far")
    labelled = labelled_sentences(ctx.engine)
    if not labelled:
        st.caption("No reviewed sentences yet: reviewers build the training set on the Review page.")
        return
    cols = st.columns(len(LABELS) + 1)
    cols[0].metric("Reviewed sentences", len(labelled), f"{sum(1 for x in labelled if x.action == 'corrected')} corrected",
                   delta_color="off", delta_arrow="off")
    for i, label in enumerate(LABELS, start=1):
        cols[i].metric(label.capitalize(), sum(1 for x in labelled if x.label == label))
    st.caption("`callsense data build sentiment --source review` turns them into a dataset version.")
