"""Who may do what. Three roles (viewer < operator < lead), the acting identity (`Actor`), the actions the
service layer guards, and one rule, `require(actor, action)`, that every service asks before it spends money,
changes tickets, labels or settings, or hands out ticket text.

Roles come from an allow-list (`Policy`): `leads`, `operators` and `viewers`, each a list of emails or
`*@domain` patterns; the highest matching role wins, and an identity on no list has no access. The dashboard
passes its secrets (`.streamlit/secrets.toml`) in as plain data: `sign_in` reads `[auth]` and the lists under
`[triage.access]`, and a sign-in that is meant but set up wrongly closes the door to everyone; the command line
acts as the local administrator (`cli:<os user>`, a lead), since shell access to the database is full access
anyway.
"""

from __future__ import annotations

import difflib
import getpass
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from triage.errors import AccessDenied, InputError

log = logging.getLogger(__name__)


class Role(IntEnum):
    """Ordered: each role may do everything the roles below it may."""

    VIEWER = 1
    OPERATOR = 2
    LEAD = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(StrEnum):
    """What the service layer guards; the value completes "may not ..."."""

    VIEW_REPORTS = "see spend, routing and quality figures"
    READ_TICKETS = "read ticket text"
    CLASSIFY = "classify tickets"
    ESCALATE = "escalate tickets to tier 2"
    RETRY = "retry failed tickets"
    LABEL = "correct or confirm labels"
    CONFIGURE = "change settings"
    RETRAIN = "retrain the local model"
    CALIBRATE = "refit the confidence calibration"
    IMPORT_LABELS = "import labels"
    EXPORT = "export tickets"
    LOAD_DEMO = "load demo data"
    VIEW_AUDIT = "read the audit log"
    ERASE = "erase personal data"
    PILOT = "run a pilot on labelled history"


MIN_ROLE: dict[Action, Role] = {
    Action.VIEW_REPORTS: Role.VIEWER,
    Action.READ_TICKETS: Role.OPERATOR,
    Action.CLASSIFY: Role.OPERATOR,
    Action.ESCALATE: Role.OPERATOR,
    Action.RETRY: Role.OPERATOR,
    Action.LABEL: Role.OPERATOR,
    Action.CONFIGURE: Role.LEAD,
    Action.RETRAIN: Role.LEAD,
    Action.CALIBRATE: Role.LEAD,
    Action.IMPORT_LABELS: Role.LEAD,
    Action.EXPORT: Role.LEAD,
    Action.LOAD_DEMO: Role.LEAD,
    Action.ERASE: Role.LEAD,
    Action.VIEW_AUDIT: Role.LEAD,
    Action.PILOT: Role.LEAD,
}

LISTS: dict[str, Role] = {"leads": Role.LEAD, "operators": Role.OPERATOR, "viewers": Role.VIEWER}


@dataclass(frozen=True)
class Actor:
    """Who is acting, and with which role. `identity` is what runs, corrections and audit rows are stamped with."""

    identity: str
    role: Role

    def __post_init__(self) -> None:
        if not isinstance(self.identity, str) or not self.identity.strip():
            raise ValueError("an actor needs an identity")
        if not isinstance(self.role, Role):
            raise ValueError(f"not a role: {self.role!r}")

    def may(self, action: Action) -> bool:
        return self.role >= MIN_ROLE[action]


def may(actor: Actor | None, action: Action) -> bool:
    return isinstance(actor, Actor) and actor.may(action)


def require(actor: Actor | None, action: Action) -> Actor:
    """The one authorisation rule: the actor's role reaches the action's, or AccessDenied (nothing was done)."""
    if not isinstance(actor, Actor):
        log.warning("refused to %s: no identity", action.value)
        raise AccessDenied(f"sign in to {action.value}")
    needed = MIN_ROLE[action]
    if actor.role < needed:
        log.warning("refused %s (%s) to %s", actor.identity, actor.role.label, action.value)
        raise AccessDenied(f"{actor.identity} is a {actor.role.label} and may not {action.value}: that needs the "
                           f"{needed.label} role (a lead adds people to `{needed.label}s` under [triage.access] "
                           "in .streamlit/secrets.toml)")
    return actor


def cli_actor(name: str | None = None) -> Actor:
    """The command line: the local administrator. Stamped `cli:<os user>` unless a name is given (--operator)."""
    return Actor(name.strip() if name and name.strip() else f"cli:{_os_user()}", Role.LEAD)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a uid with no passwd entry (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


_EMAIL = re.compile(r"[^@\s*]+@[^@\s*]+")
_DOMAIN = re.compile(r"\*@([^@\s*]+\.[^@\s*]+)")


@dataclass(frozen=True)
class Policy:
    """The allow-list: lower-cased emails and domains per role."""

    emails: Mapping[str, Role]
    domains: Mapping[str, Role]

    @classmethod
    def from_mapping(cls, lists: Mapping[str, object] | None) -> Policy:
        """From `[triage.access]`: `leads`, `operators`, `viewers`, each a list of emails or `*@domain`.
        Anything else is refused with a message (a typo must not grant or silently withhold access)."""
        emails: dict[str, Role] = {}
        domains: dict[str, Role] = {}
        for key, entries in (lists or {}).items():
            role = LISTS.get(str(key))
            if role is None:
                raise InputError(f"[triage.access] has an unknown list {key!r}: use leads, operators and viewers")
            if isinstance(entries, str) or not isinstance(entries, list | tuple):
                raise InputError(f"[triage.access] {key} must be a list, like {key} = [\"ana@example.com\"]")
            for entry in entries:
                text = str(entry).strip().lower()
                if m := _DOMAIN.fullmatch(text):
                    domains[m.group(1)] = max(role, domains.get(m.group(1), role))
                elif _EMAIL.fullmatch(text):
                    emails[text] = max(role, emails.get(text, role))
                else:
                    raise InputError(f"[triage.access] {key}: {entry!r} is neither an email nor a *@domain pattern")
        return cls(emails, domains)

    def role_of(self, email: str | None) -> Role | None:
        """The highest role an email matches (exactly, or by its whole domain), or None: no access."""
        text = (email or "").strip().lower()
        if not _EMAIL.fullmatch(text):
            return None
        domain = text.rpartition("@")[2]
        found = [r for r in (self.emails.get(text), self.domains.get(domain)) if r is not None]
        return max(found) if found else None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listens_locally(address: str | None) -> bool:
    """Whether a server bound to `address` is reachable from this machine only (unset means every interface)."""
    a = (address or "").strip().strip("[]").lower()
    return a in LOOPBACK or a.startswith("127.")


def served_locally(address: str | None, allowed_hosts: Sequence[str] | None) -> bool:
    """Whether only this machine's own browsers can use the dashboard: it listens on loopback, and Streamlit's
    `server.allowedHosts` names only loopback hosts (empty means any Host header, so a web page on any name that
    rebinds it to 127.0.0.1 gets in; a proxy's name means whoever reaches the proxy gets in)."""
    hosts = list(allowed_hosts or [])
    return listens_locally(address) and bool(hosts) and all(listens_locally(h) for h in hosts)


# `[auth]` as `st.login()` (the default provider) reads it: these keys, each a non-empty string ...
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
AUTH_OPTIONAL = ("client_kwargs", "expose_tokens")  # ... and these, which Streamlit passes on as they are
MIN_COOKIE_SECRET = 32  # characters: the cookie it signs is the signed-in identity


@dataclass(frozen=True)
class SignIn:
    """How the dashboard admits people, read from its secrets: off (no `[auth]` and no `[triage]`: the single local
    user), on (a complete `[auth]`), or broken (`problem`: sign-in is meant but cannot work, so nobody gets in)."""

    on: bool
    problem: str = ""
    lists: Mapping[str, object] | None = None  # `[triage.access]`


def sign_in(secrets: Mapping[str, object] | None) -> SignIn:
    """Read `[auth]` and `[triage.access]` from the dashboard's secrets (plain data). Anything that says sign-in is
    meant (`[auth]`, a section whose name looks like a misspelt `auth`, or `[triage]`) makes it on, and then
    `[auth]` must be complete: a missing or misspelt part is a problem, never "everyone is the local lead"."""
    secrets = secrets or {}
    auth, triage = secrets.get("auth"), secrets.get("triage")
    lookalikes = sorted(str(k) for k, v in secrets.items() if isinstance(v, Mapping) and _looks_like_auth(str(k)))
    if auth is None and triage is None and not lookalikes:
        return SignIn(on=False)
    lists = triage.get("access") if isinstance(triage, Mapping) else None
    problem = _auth_problem(auth, lookalikes) or _triage_problem(triage)
    return SignIn(on=True, problem=problem, lists=lists if isinstance(lists, Mapping) else None)


def _looks_like_auth(name: str) -> bool:
    low = name.lower()
    return name != "auth" and ("auth" in low or difflib.SequenceMatcher(None, low, "auth").ratio() >= 0.75)


def _auth_problem(auth: object, lookalikes: list[str]) -> str:
    """Why `[auth]` cannot sign anyone in ("" when it can). Names keys, never their values."""
    if lookalikes:
        return f"the secrets have a section [{lookalikes[0]}], which looks like a misspelt [auth]"
    if auth is None:
        return "[triage] is set, so sign-in is meant, but [auth] is missing"
    if not isinstance(auth, Mapping):
        return "[auth] must be a section of keys"
    unknown = sorted(str(k) for k in auth if k not in AUTH_KEYS + AUTH_OPTIONAL)
    if unknown:
        return (f"[auth] has an unknown key {unknown[0]!r} (Triage signs in with the provider configured directly "
                f"under [auth]: {', '.join(AUTH_KEYS)})")
    missing = [k for k in AUTH_KEYS if not isinstance(auth.get(k), str) or not str(auth.get(k)).strip()]
    if missing:
        return f"[auth] is missing {', '.join(missing)}"
    redirect = str(auth["redirect_uri"]).strip()
    if not redirect.startswith(("https://", "http://")) or not redirect.endswith("/oauth2callback"):
        return "[auth] redirect_uri must be this dashboard's URL followed by /oauth2callback"
    if len(str(auth["cookie_secret"]).strip()) < MIN_COOKIE_SECRET:
        return (f"[auth] cookie_secret is shorter than {MIN_COOKIE_SECRET} characters (make one with python -c "
                "\"import secrets; print(secrets.token_urlsafe(48))\")")
    return ""


def _triage_problem(triage: object) -> str:
    if triage is None:
        return ""
    if not isinstance(triage, Mapping):
        return "[triage] must be a section"
    unknown = sorted(str(k) for k in triage if k != "access")
    if unknown:
        return f"[triage] has an unknown part {unknown[0]!r}: the role lists go under [triage.access]"
    return ""


class Door(StrEnum):
    """What a visitor gets: in (with an actor), the sign-in screen, "no access", or "closed" (sign-in is set up
    wrongly, so nobody gets in)."""

    IN = "in"
    SIGN_IN = "sign_in"
    NO_ACCESS = "no_access"
    CLOSED = "closed"


@dataclass(frozen=True)
class Visitor:
    door: Door
    actor: Actor | None = None
    identity: str | None = None  # who they signed in as, also when refused
    reason: str = ""  # why they are refused, for the page
    local: bool = False  # no sign-in configured: the single local user


def visitor(*, sign_in: SignIn, claims: Mapping[str, object] | None, local_name: str = "",
            now: float | None = None) -> Visitor:
    """Resolve who is at the door from plain data: how sign-in is set up (`sign_in(secrets)`), the identity
    provider's claims (st.user) and, without sign-in, the name typed in the sidebar.

    Without sign-in the dashboard has a single local user, who is a lead. Sign-in set up wrongly -> closed to
    everyone. With sign-in: not signed in (or the sign-in expired) -> the sign-in screen; signed in on no list,
    without an email the provider says is verified (`email_verified` exactly true), or with an invalid access list
    -> no access; else the highest role the email matches."""
    if not sign_in.on:
        return Visitor(Door.IN, Actor(local_name.strip() or "local", Role.LEAD), local=True)
    if sign_in.problem:
        return Visitor(Door.CLOSED, reason=f"Sign-in is set up wrongly: {sign_in.problem}.")
    claims = claims or {}
    if claims.get("is_logged_in") is not True:
        return Visitor(Door.SIGN_IN)
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp < (time.time() if now is None else now):
        return Visitor(Door.SIGN_IN, reason="Your sign-in has expired; sign in again.")
    email = str(claims.get("email") or "").strip()
    shown = email or str(claims.get("name") or claims.get("sub") or "an account without an email address")
    if not email:
        return Visitor(Door.NO_ACCESS, identity=shown, reason="Your identity provider sent no email address, "
                       "and access is granted by email.")
    if claims.get("email_verified") is not True:  # missing, "true", 1: only the JSON boolean true counts
        return Visitor(Door.NO_ACCESS, identity=shown, reason="Your identity provider has not said this email "
                       "address is verified (its email_verified claim must be true).")
    try:
        role = Policy.from_mapping(sign_in.lists).role_of(email)
    except InputError as exc:
        return Visitor(Door.NO_ACCESS, identity=shown, reason=f"The access list is invalid, so nobody is let in "
                       f"until a lead fixes it: {exc}.")
    if role is None:
        return Visitor(Door.NO_ACCESS, identity=shown, reason="This account is on no access list. Ask a lead to "
                       "add it under [triage.access] in .streamlit/secrets.toml.")
    return Visitor(Door.IN, Actor(email.lower(), role), identity=email.lower())
