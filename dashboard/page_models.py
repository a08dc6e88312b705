"""Models: a place for model runs, which come with fine-tuning (issue 6). Until then it
shows how much labelled data the reviews have produced."""

from __future__ import annotations

import streamlit as st

from callsense.dashboard.analytics import LABELS
from callsense.dashboard.data import labelled_sentences
from callsense.dashboard.registry import PageContext, page


@page("models", title="Models", icon=":material/model_training:", order=90, roles=("manager", "reviewer"))
def models_page(ctx: PageContext) -> None:
    st.title("Models")
    st.info("Model runs come with fine-tuning: training, evaluation against the pretrained model on a "
            "holdout, and deployment will be listed here.", icon=":material/construction:")
    labelled = labelled_sentences(ctx.engine)
    st.subheader("Labelled data so far")
    if not labelled:
        st.caption("No reviewed sentences yet: reviewers build the training set on the Review page.")
        return
    cols = st.columns(len(LABELS) + 1)
    cols[0].metric("Reviewed sentences", len(labelled), f"{sum(1 for x in labelled if x.action == 'corrected')} corrected",
                   delta_color="off", delta_arrow="off")
    for i, label in enumerate(LABELS, start=1):
        cols[i].metric(label.capitalize(), sum(1 for x in labelled if x.label == label))
