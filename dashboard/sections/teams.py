"""Settings section: the team routing table (category, priority, language -> team; first match wins)."""

import pandas as pd
import streamlit as st

from dashboard.ui import need_operator
from db.engine import Database
from triage import teams
from triage.access import Actor
from triage.errors import InputError
from triage.taxonomy import Taxonomy


def settings_form(db: Database, taxonomy: Taxonomy, actor: Actor) -> None:
    st.subheader("Teams")
    try:
        current = teams.in_force(db, taxonomy)
    except InputError as exc:  # TRIAGE_TEAMS names a file that cannot be used
        st.error(str(exc))
        current = teams.InForce((), "none")
    st.caption("Every ticket gets the team of the first row that matches its category, priority and language "
               "(empty = any); the last row, with only a team, is the default. Saving applies the table to every "
               f"ticket at once. In force: {current.source}" + (f" ({teams.ENV})" if current.source == "environment"
                                                                  else "") + ".")
    rows = [{"category": r.category or "", "priority": r.priority or "", "language": r.language or "",
             "team": r.team} for r in current.rules] or [{"category": "", "priority": "", "language": "",
                                                           "team": "Support"}]
    edited = st.data_editor(pd.DataFrame(rows, columns=list(teams.FIELDS)), num_rows="dynamic", hide_index=True,
                            key="teams_editor")
    if st.button("Save teams", key="teams_save") and need_operator():
        try:
            moved = teams.save(db, teams.parse_rows(edited.to_dict("records"), taxonomy), actor=actor)
            st.success(f"Saved: {moved} tickets changed team.")
        except InputError as exc:
            st.error(str(exc))
