"""Audit: the tickets drawn at random from those settled without review, labelled blind (the text alone, never
the model's label or confidence, so the answer is not anchored on it). The answers measure the accuracy of the
traffic nobody reviewed (Quality page)."""

import streamlit as st

from dashboard import cached, state
from dashboard.sections import operator_name
from dashboard.ui import gate, need_operator, sentence
from triage.access import Action
from triage.errors import TriageError
from triage.quality import unreviewed

actor = gate(Action.LABEL)
db = state.database()
settings, taxonomy = state.settings()

st.title("Audit")
st.caption(f"{settings.audit_rate:.1%} of the tickets settled without review are drawn at random as they settle "
           "(the audit rate, Settings). Label each one from its text alone: the model's answer is not shown, so "
           "yours is not anchored on it. The answers measure how often the traffic nobody reviewed is right "
           "(Quality page) and count as operator labels.")
note = st.session_state.pop("audit_saved", None)
if note:
    st.success(note)

waiting = unreviewed.waiting(db, actor=actor, limit=50)
if not waiting:
    st.info("No drawn tickets await an answer.", icon=":material/task_alt:")
else:
    st.markdown(f"**{len(waiting)}{'+' if len(waiting) == 50 else ''} drawn ticket"
                f"{'s' if len(waiting) != 1 else ''} await an answer.**")
    operator_name.ask_first("audit answers")  # the name before the first answer, not a warning after it
    ticket = waiting[0]
    st.caption(f"Ticket {ticket['id']}" + (f" (your id {ticket['external_id']})" if ticket["external_id"] else ""))
    st.text(ticket["text"])  # plain text, never markdown
    with st.form(f"audit_{ticket['id']}"):
        label = st.radio("Its category", taxonomy.names, index=None, key=f"audit_label_{ticket['id']}",
                         horizontal=True, format_func=lambda key: taxonomy.shown.get(key, key))
        if st.form_submit_button("Save answer", type="primary") and need_operator():
            if label is None:
                st.warning("Pick a category first.")
            else:
                try:
                    done, refused = unreviewed.answer(db, [(int(ticket["id"]), label)], actor=actor)
                except TriageError as exc:
                    st.error(sentence(str(exc)))
                else:
                    if refused:
                        st.warning(sentence(refused[0]))
                    if done:
                        st.session_state["audit_saved"] = f"Saved: ticket {ticket['id']} is {label}."
                        st.rerun()

blind = cached.unreviewed(db)
st.divider()
st.caption(blind.measured_on())
o = blind.overall
if o.accuracy is not None:
    st.metric("Unreviewed traffic: answers right", f"{o.accuracy:.0%}",
              help=f"90% interval {o.low:.0%}-{o.high:.0%}, on {o.audited} audited tickets (each weighted by its "
                   "chance of being drawn).")
