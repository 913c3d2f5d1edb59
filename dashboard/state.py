"""Shared resources for every page: the database, the background worker, who the visitor is."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from db.engine import Database, database_url
from db.migrate import open_database
from triage import access
from triage.settings import Settings, effective
from triage.taxonomy import Taxonomy

if TYPE_CHECKING:  # imported when first used at run time: the worker starts only once a visitor is let in
    from dashboard.worker import BackgroundWorker

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    return open_database(url)  # applies migrations on start


@st.cache_resource(show_spinner=False, on_release=lambda w: w.stop())
def _worker(url: str) -> BackgroundWorker:
    from dashboard.worker import BackgroundWorker

    return BackgroundWorker(_database(url)).start()


def database() -> Database:
    return _database(database_url())


def worker() -> BackgroundWorker:
    return _worker(database_url())


def settings() -> tuple[Settings, Taxonomy]:
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
        log.error("the secrets file cannot be read: %s", exc)  # the server's log only: it may quote the file
        return None, "the secrets file cannot be read (the server's log says why)"


def _plain(value: Any) -> Any:
    """Streamlit's secrets (AttrDicts) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def sign_in() -> access.SignIn:
    """How sign-in is set up (see triage.access.sign_in); unreadable secrets close the door to everyone."""
    secrets, problem = _secrets()
    if problem:
        return access.SignIn(on=True, problem=problem)
    return access.sign_in(_plain(secrets))


def typed_name() -> str:
    """Without sign-in: the name the local user typed in the sidebar (stamped on their corrections)."""
    return str(st.session_state.get("operator_name", "")).strip()


def visitor() -> access.Visitor:
    """Who is looking at this page, and with which role (see triage.access.visitor)."""
    return access.visitor(sign_in=sign_in(), claims=st.user.to_dict(), local_name=typed_name())


def actor() -> access.Actor | None:
    return visitor().actor


def served_locally() -> bool:
    """Whether only this machine's browsers can use the dashboard (`server.address` and `server.allowedHosts`)."""
    return access.served_locally(st.get_option("server.address"), st.get_option("server.allowedHosts"))
