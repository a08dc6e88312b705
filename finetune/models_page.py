"""The dashboard's Models page (issue 6): runs, registered versions with their metrics side
by side, confusion matrices, and promote / roll back for managers.

`ModelsData` is the page's data layer: reads are open to managers and reviewers, and
`promote`/`rollback` check the manager role themselves (a hidden button is not the only
guard). The page registers under the key `models`; list this module in
`CALLSENSE_DASHBOARD_PAGE_MODULES` (or the setting's default) so the app loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from callsense.finetune.workspace import Workspace

NAMES = ("sentiment", "intent-slot", "asr")


@dataclass
class ModelsData:
    ws: Workspace
    user: object  # callsense.dashboard.data.User

    def _require(self, role: str, action: str) -> None:
        from callsense.dashboard.data import AccessDenied

        if not self.user.has(role):
            raise AccessDenied(f"{action} needs the {role} role")

    def versions(self, name: str) -> list:
        from callsense.finetune.registry import ModelRegistry

        self._require_reader()
        return ModelRegistry(self.ws).versions(name)

    def _require_reader(self) -> None:
        from callsense.dashboard.data import AccessDenied

        if not (self.user.has("manager") or self.user.has("reviewer")):
            raise AccessDenied("the Models page is for managers and reviewers")

    def runs(self, job: str | None = None, limit: int = 30) -> list[dict]:
        from callsense.finetune.runs import list_runs

        self._require_reader()
        return list_runs(self.ws, job, limit)

    def events(self, name: str, limit: int = 20) -> list[dict]:
        from callsense.finetune.registry import ModelRegistry

        self._require_reader()
        return ModelRegistry(self.ws).events(name, limit)

    def metrics_table(self, name: str) -> list[dict]:
        """One row per version: status and its test figures (with intervals where the run has them)."""
        runs = {r["id"]: r for r in self.runs(None, 500)}
        rows = []
        for v in self.versions(name):
            test = (runs.get(v.run_id) or {}).get("metrics", {}).get("test") or {}
            row = {"version": v.version, "status": v.status, "dataset": v.dataset_version, "run": v.run_id,
                   "created": v.created_at, "notes": v.notes}
            for key in ("macro_f1", "accuracy", "intent_accuracy", "slot_f1", "wer"):
                if isinstance(test.get(key), dict):
                    d = test[key]
                    row[key] = f"{d['value']:.4f} [{d['low']:.4f}, {d['high']:.4f}]"
            for key, val in v.metrics.items():
                if val is not None and not isinstance(val, dict):
                    row.setdefault(key, round(val, 4) if isinstance(val, float) else val)
            rows.append(row)
        return rows

    def confusion(self, name: str, version: int) -> tuple[list[str], list[list[int]]] | None:
        """The confusion matrix of a version's test evaluation (sentiment), if its run has one."""
        runs = {r["id"]: r for r in self.runs(None, 500)}
        for v in self.versions(name):
            if v.version == version:
                test = (runs.get(v.run_id) or {}).get("metrics", {}).get("test") or {}
                if "confusion_matrix" in test:
                    return test["labels"], test["confusion_matrix"]
        return None

    def promote(self, name: str, version: int, holdout: str | None = None):
        from callsense.finetune.promotion import run_gate

        self._require("manager", "promoting a model")
        return run_gate(self.ws, name, version, holdout=holdout, by=self.user.username)

    def rollback(self, name: str):
        from callsense.finetune.registry import ModelRegistry

        self._require("manager", "rolling back a model")
        return ModelRegistry(self.ws).rollback(name, by=self.user.username)


def models_page(ctx) -> None:
    """The page itself (`ctx`: callsense.dashboard.registry.PageContext)."""
    import pandas as pd
    import streamlit as st

    st.title("Models")
    data = ModelsData(Workspace(ctx.settings), ctx.user)
    name = st.segmented_control("Model", list(NAMES), default="sentiment", key="models.name") or "sentiment"
    rows = data.metrics_table(name)
    if not rows:
        st.info(f"No {name} model registered yet: `callsense finetune {name} --dataset ...` trains one.")
    else:
        st.subheader("Versions")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        versions = [r["version"] for r in rows]
        cols = st.columns(2)
        for col, default in zip(cols, (len(versions) - 1, max(0, len(versions) - 2))):
            with col:
                v = st.selectbox("Confusion matrix of", versions, index=default, key=f"models.cm.{default}.{name}")
                cm = data.confusion(name, v)
                if cm is None:
                    st.caption("no test confusion matrix recorded for this version")
                else:
                    labels, matrix = cm
                    st.dataframe(pd.DataFrame(matrix, index=[f"true {l}" for l in labels],
                                              columns=[f"pred {l}" for l in labels]))
        if ctx.user.has("manager"):
            st.subheader("Deploy")
            candidates = [r["version"] for r in rows if r["status"] == "candidate"]
            c1, c2 = st.columns(2)
            with c1:
                if candidates:
                    v = st.selectbox("Candidate", candidates, key="models.promote.v")
                    holdout = st.text_input("Holdout (DATASET[:SPLIT], empty: the candidate's test split)", key="models.holdout")
                    if st.button("Promote if better", key="models.promote"):
                        with st.spinner("scoring both models on the holdout ..."):
                            try:
                                decision = data.promote(name, int(v), holdout or None)
                            except Exception as e:  # noqa: BLE001 - shown to the manager, one line
                                st.error(str(e).splitlines()[0])
                            else:
                                (st.success if decision.promoted else st.warning)(decision.reason)
                else:
                    st.caption("no candidates waiting")
            with c2:
                if st.button("Roll back to the previous serving version", key="models.rollback"):
                    try:
                        rec = data.rollback(name)
                        st.success(f"{rec.label} serves again")
                    except Exception as e:  # noqa: BLE001
                        st.error(str(e).splitlines()[0])
        events = data.events(name)
        if events:
            st.subheader("History")
            st.dataframe(pd.DataFrame([{"version": e["version"], "action": e["action"], "by": e["by"],
                                        "reason": e["detail"].get("reason", e["detail"].get("notes", ""))} for e in events]),
                         hide_index=True, width="stretch")
    runs = data.runs(name)
    st.subheader("Runs")
    if not runs:
        st.caption(f"no {name} runs yet")
    else:
        st.dataframe(pd.DataFrame([{"run": r["id"], "status": r["status"], "dataset": r["dataset_version"],
                                    "epochs": len(r["epochs"]), "wall s": round(r["wall_s"]),
                                    "last epoch": json.dumps(r["epochs"][-1]) if r["epochs"] else ""} for r in runs]),
                     hide_index=True, width="stretch")


def _register_page() -> None:
    try:
        from callsense.dashboard.registry import page
    except ImportError:  # no dashboard installed: the data layer above still works
        return
    page("models", title="Models", icon=":material/model_training:", order=90, roles=("manager", "reviewer"))(models_page)


_register_page()
