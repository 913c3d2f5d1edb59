"""Shared resources for every page: the database, the background worker, who the visitor is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from db.engine import database_url
from db.migrate import open_database
from triage import access
from triage.settings import Settings, effective


@st.cache_resource(show_spinner=False)
def _database(url: str):
    return open_database(url)  # applies migrations on start


@st.cache_resource(show_spinner=False, on_release=lambda w: w.stop())
def _worker(url: str):
    from dashboard.worker import BackgroundWorker

    return BackgroundWorker(_database(url)).start()


def database():
    return _database(database_url())


def worker():
    return _worker(database_url())


def settings():
    """(Settings, Taxonomy) in force now: the environment, then what operators saved in Settings."""
    return effective(database(), Settings.from_env())


def has_api_key() -> bool:
    return Settings.from_env().has_api_key


def budget_notice() -> tuple[str, str] | None:
    """("blocked" | "warning", text) when Claude calls are paused by a cap or near one; None otherwise."""
    from triage.spend import budget

    caps = settings()[0].caps
    if not has_api_key() or not caps.any:
        return None
    standing = budget.standing(database(), caps)
    if standing.blocked:
        return "blocked", standing.blocked
    return ("warning", standing.warning) if standing.warning else None


def _secrets() -> tuple[Mapping[str, Any] | None, str | None]:
    """(secrets, problem): None and no problem when there is no secrets file; a problem when one exists but
    cannot be read (then nobody is let in: a broken file must not turn sign-in off)."""
    try:
        return {k: st.secrets[k] for k in st.secrets}, None
    except StreamlitSecretNotFoundError as exc:
        if getattr(exc, "error_id", None) == "no-secrets-found":
            return None, None
        return None, f"the secrets file cannot be read ({exc})"


def auth_configured() -> bool:
    secrets, problem = _secrets()
    return problem is not None or (secrets is not None and "auth" in secrets)


def access_lists(secrets: Mapping[str, Any]) -> dict[str, Any] | None:
    """`[triage.access]` as plain data (lists of emails and *@domain patterns per role)."""
    section = secrets.get("triage", {})
    lists = section.get("access") if isinstance(section, Mapping) else None
    return {str(k): v for k, v in lists.items()} if isinstance(lists, Mapping) else None


def typed_name() -> str:
    """Without sign-in: the name the local user typed in the sidebar (stamped on their corrections)."""
    return str(st.session_state.get("operator_name", "")).strip()


def visitor() -> access.Visitor:
    """Who is looking at this page, and with which role (see triage.access.visitor)."""
    secrets, problem = _secrets()
    if problem:
        return access.Visitor(access.Door.NO_ACCESS, reason=f"Sign-in cannot be checked: {problem}.")
    claims = st.user.to_dict()
    return access.visitor(auth_configured=secrets is not None and "auth" in secrets, claims=claims,
                          lists=access_lists(secrets or {}), local_name=typed_name())


def actor() -> access.Actor | None:
    return visitor().actor


def listens_locally() -> bool:
    """Whether this server is reachable from this machine only (`server.address`, unset means every interface)."""
    return access.listens_locally(st.get_option("server.address"))
