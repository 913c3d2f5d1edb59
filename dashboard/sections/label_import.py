"""The upload tab's labelled-file flow: preview what importing a file's labels would do, import them as operator
labels, retrain the local model, and say what it learned. The rules live in triage/labels.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from dashboard import state
from dashboard.ui import need_operator, plain
from triage import ingest, labels
from triage.access import Action

if TYPE_CHECKING:
    from db.engine import Database
    from triage.taxonomy import Taxonomy

RESULT = "label_import_result"


def offer(db: Database, taxonomy: Taxonomy, *, text: str, fmt: str, name: str, columns: list[str],
          text_column: str | None, id_column: str | None) -> bool:
    """Offer the import when the file has columns; True when the operator chose it (the file is then not offered
    for classifying)."""
    if fmt not in ("csv", "json", "jsonl") or len(columns) < 2:
        return False
    guess = ingest.guess_column(columns, "label")
    if not st.toggle("These are labelled: import as operator labels", value=guess is not None, key="upload_labelled",
                     help="For labelled history such as a helpdesk export with the agent's final category. Each row "
                     "matches a ticket by id, else by its text; rows that match nothing become new tickets with "
                     "the label. No model is called and nothing is billed."):
        return False
    if text_column is not None and text_column == id_column:  # ids and labels alone: rows match tickets by id
        text_column = None
        st.caption("No text column: each row labels the known ticket its id names.")
    choices = [c for c in columns if c not in (text_column, id_column)] or columns
    label_column = st.selectbox("Label column", choices, key="upload_label_column",
                                index=choices.index(guess) if guess in choices else 0)
    try:
        batch = ingest.parse_labelled(text, fmt, text_column=text_column, id_column=id_column,
                                      label_column=label_column)
    except ingest.IngestError as exc:
        st.error(f"Could not read the labels of {plain(name)}: {plain(exc)}")
        return True
    st.dataframe([{"id": r.external_id or "", "text": r.text[:200], "label": r.label} for r in batch.rows[:10]],
                 hide_index=True)
    plan = labels.plan(db, batch, taxonomy, name)
    counts = plan.counts()
    m = st.columns(4)
    m[0].metric("Matched", counts["matched"], help=f"{counts['by_id']} by id and {counts['by_text']} by text get "
                f"the label; {counts['unchanged']} already carry it.")
    m[1].metric("New tickets", counts["new"], help="Rows that match no ticket: stored with the label, not classified.")
    m[2].metric("Unknown labels", counts["unknown_label"], help="Labels outside the taxonomy: left out, not guessed.")
    m[3].metric("No text", counts["no_text"], help="Rows without ticket text whose id matches no ticket: left out.")
    st.caption(plain(plan.summary()))
    for line in plan.left_out() + plan.merged_lines():
        st.warning(plain(line))
    actor = state.actor()
    allowed = actor is not None and actor.may(Action.IMPORT_LABELS)
    if not allowed:
        st.caption("Importing labels is a lead's action.")
    if st.button(f"Import {plan.writes} labels", key="import_labels", type="primary",
                 disabled=not plan.writes or not allowed) and need_operator() and actor is not None:
        result = labels.apply(db, plan, actor=actor)
        if result.labelled + result.created:
            with st.spinner("Retraining the local model on the labels..."):
                result.learned = labels.learn(db, taxonomy)
        st.session_state[RESULT] = (name, result.summary(), result.learned.text() if result.learned else None,
                                    result.conflicts[:5])
        st.rerun()  # the preview above now shows the file as imported
    shown = st.session_state.get(RESULT)
    if shown and shown[0] == name:
        _, summary, learned, conflicts = shown
        st.success(plain(summary[0].upper() + summary[1:]))
        for line in conflicts:
            st.warning(plain(f"Not written: {line}"))
        if learned:
            st.info(plain(learned), icon=":material/school:")
    return True
