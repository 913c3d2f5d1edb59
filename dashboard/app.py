"""Triage dashboard entry point: `streamlit run dashboard/app.py`."""

from pathlib import Path

import streamlit as st

from dashboard import state
from dashboard.ui import sentence

HERE = Path(__file__).parent

st.set_page_config(page_title="Triage", page_icon=":material/inbox:", layout="wide")

state.database()
worker = state.worker()

with st.sidebar:
    identity = state.logged_in_identity()
    if identity:
        st.caption(f"Signed in as **{identity}**")
        if state.auth_configured():
            st.button("Sign out", on_click=st.logout, key="sign_out")
    elif state.auth_configured():
        st.button("Sign in", on_click=st.login, key="sign_in", type="primary")
        st.caption("Sign in to correct labels: corrections are stamped with your identity.")
    else:
        st.text_input("Operator", key="operator_name", placeholder="your name",
                      help="Stamped on every correction you make in this session.")
    if state.has_api_key():
        st.caption(":material/key: Claude API key configured")
    else:
        st.caption(":material/key_off: No `ANTHROPIC_API_KEY`: tickets are stored but Haiku/Sonnet cannot run. "
                   "Set the key in the environment and restart.")
    notice = state.budget_notice()
    if notice:
        level, text = notice
        st.caption(f":material/savings: :{'red' if level == 'blocked' else 'orange'}[{sentence(text)}]")
    if worker.status.last_error:
        st.caption(f":material/error: Worker: {worker.status.last_error}")

pages = [
    st.Page(HERE / "app_pages" / "classify.py", title="Classify", icon=":material/bolt:", default=True),
    st.Page(HERE / "app_pages" / "review.py", title="Review queue", icon=":material/rule:"),
    st.Page(HERE / "app_pages" / "spend.py", title="Spend & routing", icon=":material/monitoring:"),
    st.Page(HERE / "app_pages" / "quality.py", title="Quality", icon=":material/verified:"),
    st.Page(HERE / "app_pages" / "settings.py", title="Settings", icon=":material/tune:"),
]
st.navigation(pages).run()
