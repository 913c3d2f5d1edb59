"""Triage dashboard entry point: `streamlit run dashboard/app.py` (or `bash scripts/dashboard`).

The frame around every page decides who gets in (triage.access): with sign-in configured, a visitor who has not
signed in sees only the sign-in screen and one on no access list only "no access"; the pages offered depend on
the role; sign-in set up wrongly lets nobody in. Without sign-in there is one local user, a lead; if others than
this machine's browsers can then reach it (server.address, server.allowedHosts), every page says so.
"""

from pathlib import Path

import streamlit as st

from dashboard import state, ui
from triage.access import Action

HERE = Path(__file__).parent

# (file, title, icon, what a role must be allowed to do to open it)
PAGES = [
    ("classify.py", "Classify", ":material/bolt:", Action.CLASSIFY),
    ("review.py", "Review queue", ":material/rule:", Action.READ_TICKETS),
    ("audit.py", "Audit", ":material/fact_check:", Action.LABEL),
    ("spend.py", "Spend & routing", ":material/monitoring:", Action.VIEW_REPORTS),
    ("routing.py", "Routing story", ":material/account_tree:", Action.VIEW_REPORTS),
    ("quality.py", "Quality", ":material/verified:", Action.VIEW_REPORTS),
    ("pilot.py", "Pilot", ":material/science:", Action.PILOT),
    ("settings.py", "Settings", ":material/tune:", Action.CONFIGURE),
]

st.set_page_config(page_title="Triage", page_icon=":material/inbox:", layout="wide")

visitor = state.visitor()
if visitor.local and not state.served_locally():
    ui.network_warning(st.get_option("server.address"), st.get_option("server.allowedHosts"),
                       st.get_option("server.port"))
actor = visitor.actor
if actor is None:  # only the sign-in screen or "no access": no data, no worker, no other page
    def sign_in() -> None:
        ui.door(visitor)

    st.navigation([st.Page(sign_in, title="Sign in", url_path="sign-in")], position="hidden").run()
    st.stop()

state.database()
worker = state.worker()

with st.sidebar:
    if visitor.local:
        st.text_input("Operator", key="operator_name", placeholder="your name",
                      help="Stamped on every correction you make in this session.")
        st.caption(":material/person: Sign-in is off: you are the single local user, a **lead** (every page and "
                   "action). " + ("The dashboard listens on this machine only." if state.served_locally() else
                                  "**The dashboard is open to the network.**"))
    else:
        st.caption(f"Signed in as **{ui.plain(actor.identity)}** · {actor.role.label}")
        st.button("Sign out", on_click=st.logout, key="sign_out")
    if state.has_api_key():
        st.caption(":material/key: Claude API key configured")
    else:
        st.caption(":material/key_off: No `ANTHROPIC_API_KEY`: tickets are stored but Haiku/Sonnet cannot run. "
                   "Set the key in the environment and restart.")
    notice = state.budget_notice()
    if notice:
        level, text = notice
        st.caption(f":material/savings: :{'red' if level == 'blocked' else 'orange'}[{ui.sentence(text)}]")
    if worker.status.last_error:
        st.caption(f":material/error: Worker: {ui.plain(ui.worker_problem(actor, worker.status.last_error))}")

allowed = [(f, title, icon) for f, title, icon, action in PAGES if actor.may(action)]
st.navigation([st.Page(HERE / "app_pages" / f, title=title, icon=icon, default=i == 0)
               for i, (f, title, icon) in enumerate(allowed)]).run()
