"""Who may do what, enforced in the service layer: every guarded service function called by every role (and by
nobody), with a real database; a refused call raises AccessDenied and changes, reads and spends nothing."""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.migrate import open_database
from db.models import AuditEvent, Calibration, Correction, ModelCall, Run, Setting, Ticket
from tests.support.actors import LEAD
from tests.support.fakes import ScriptedProvider, error
from triage import audit, demo, export, review, taxonomy
from triage import settings as config
from triage.access import (
    Action,
    Actor,
    Door,
    Policy,
    Role,
    SignIn,
    cli_actor,
    listens_locally,
    may,
    require,
    served_locally,
    sign_in,
    visitor,
)
from triage.domain import ReviewFilter
from triage.errors import AccessDenied, InputError
from triage.local import tier as local
from triage.local.embedder import Embedder
from triage.quality import calibrate, threshold
from triage.routing.router import Router
from triage.settings import Settings
from triage.work import pipeline, runs, services

TAX = taxonomy.default()
ROLES = {"nobody": None, "viewer": Role.VIEWER, "operator": Role.OPERATOR, "lead": Role.LEAD}

# The promise, written out (not derived from triage.access): who may do what.
ALLOWED = {
    "viewer": {Action.VIEW_REPORTS},
    "operator": {Action.VIEW_REPORTS, Action.READ_TICKETS, Action.CLASSIFY, Action.ESCALATE, Action.RETRY,
                 Action.LABEL},
    "lead": set(Action),
}


@pytest.mark.parametrize("role", ["nobody", *ALLOWED])
@pytest.mark.parametrize("action", list(Action))
def test_the_rule_for_every_action_and_role(role: str, action: Action) -> None:
    actor = Actor(f"{role}@example.com", r) if (r := ROLES[role]) else None
    allowed = action in ALLOWED.get(role, set())
    assert may(actor, action) is allowed
    if allowed:
        assert require(actor, action) is actor
    else:
        with pytest.raises(AccessDenied) as refused:
            require(actor, action)
        message = str(refused.value)
        assert action.value in message  # says what was refused ...
        assert (f"{role}@example.com is a {role}" in message) if actor else message.startswith("sign in")


def test_the_refusal_says_which_role_is_needed_and_where_it_is_granted() -> None:
    with pytest.raises(AccessDenied, match=r"needs the lead role .*leads.*\[triage.access\]"):
        require(Actor("vi@example.com", Role.VIEWER), Action.EXPORT)
    assert AccessDenied.exit_code == 6


# ----- every guarded service function, for every role ---------------------------------------------------------


def by_text(text: str) -> tuple[str, float] | dict[str, Any]:
    return ("billing", 0.4) if "a:" in text else error()


def router() -> Router:
    return Router(ScriptedProvider(1, "claude-haiku-5-5", fn=by_text),
                  ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("account", 0.9)), TAX)


@dataclass
class World:
    """A database with a classified run (one failed ticket), and the router any paid call would go through."""

    db: Database
    run_id: int
    ids: list[int]
    queued_run: int  # a run with a pending ticket
    router: Router = field(default_factory=router)

    def version(self, tid: int) -> int:
        with self.db.read() as s:
            ticket = s.get(Ticket, tid)
            assert ticket is not None
            return ticket.version

    def calls(self) -> int:
        tier1, tier2 = self.router.tier1, self.router.tier2
        assert isinstance(tier1, ScriptedProvider) and isinstance(tier2, ScriptedProvider)
        return len(tier1.calls) + len(tier2.calls)


@pytest.fixture
def world(db: Database) -> World:
    imp = runs.start_run(db, [(None, "a: my invoice"), (None, "b: the app crashes")], source="seed", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router(), run_id=imp.run_id))
    queued = runs.start_run(db, [(None, "a: waiting")], source="queued", actor=LEAD)
    assert imp.run_id is not None and queued.run_id is not None
    return World(db, imp.run_id, imp.ticket_ids, queued.run_id)


def snapshot(db: Database) -> dict[str, object]:
    """Everything a call could change: tickets (labels, versions, states, queue flags), calls, corrections,
    runs, settings, audit rows."""
    with db.read() as s:
        return {
            "tickets": s.execute(select(Ticket.id, Ticket.status, Ticket.category, Ticket.version,
                                        Ticket.escalation_requested, Ticket.run_id).order_by(Ticket.id)).all(),
            "calls": s.scalar(select(func.count()).select_from(ModelCall)),
            "corrections": s.scalar(select(func.count()).select_from(Correction)),
            "runs": s.scalar(select(func.count()).select_from(Run)),
            "settings": s.execute(select(Setting.key, Setting.value).order_by(Setting.key)).all(),
            "audit": s.scalar(select(func.count()).select_from(AuditEvent)),
            "calibrations": s.scalar(select(func.count()).select_from(Calibration)),
        }


class LazyEmbedder:
    """The real embedder, loaded only when a call gets as far as using it (a refused retrain never does)."""

    def __getattr__(self, name: str) -> Any:
        from triage.local.embedder import shared

        return getattr(shared(), name)


def lazy_embedder() -> Embedder:
    return cast(Embedder, LazyEmbedder())  # it stands in for one by forwarding every attribute


# the actor is Any: the "nobody" case hands the services None where they take an Actor, to see them refuse it
CASES: dict[str, tuple[Action, Callable[[World, Any], object]]] = {
    "runs.start_run": (Action.CLASSIFY, lambda w, a: runs.start_run(w.db, [(None, "a: new one")], source="t",
                                                                    actor=a)),
    "services.classify_run": (Action.CLASSIFY, lambda w, a: services.classify_run(w.db, w.router, w.queued_run,
                                                                                 actor=a)),
    "services.run_worker": (Action.CLASSIFY, lambda w, a: services.run_worker(w.db, w.router, Settings(), actor=a,
                                                                             once=True)),
    "runs.request_escalation": (Action.ESCALATE, lambda w, a: runs.request_escalation(w.db, w.ids, actor=a,
                                                                                                 again=True)),
    "services.escalate": (Action.ESCALATE, lambda w, a: services.escalate(w.db, w.router, w.ids[:1], actor=a)),
    "runs.requeue_failed": (Action.RETRY, lambda w, a: runs.requeue_failed(w.db, actor=a)),
    "services.retry_failed": (Action.RETRY, lambda w, a: services.retry_failed(w.db, w.router, actor=a)),
    "runs.run_rows": (Action.READ_TICKETS, lambda w, a: runs.run_rows(w.db, w.run_id, w.ids, actor=a,
                                                                      with_text=True)),
    "review.page": (Action.READ_TICKETS, lambda w, a: review.page(w.db, ReviewFilter(), actor=a)),
    "review.detail": (Action.READ_TICKETS, lambda w, a: review.detail(w.db, w.ids[0], actor=a)),
    "review.correct": (Action.LABEL, lambda w, a: review.correct(w.db, w.ids[0], "technical", actor=a,
                                                                 expected_version=w.version(w.ids[0]),
                                                                 taxonomy=TAX)),
    "review.correct_many": (Action.LABEL, lambda w, a: review.correct_many(
        w.db, [(w.ids[0], "account", w.version(w.ids[0]))], actor=a, taxonomy=TAX)),
    "review.confirm_many": (Action.LABEL, lambda w, a: review.confirm_many(
        w.db, [(w.ids[0], "billing", w.version(w.ids[0]))], actor=a, taxonomy=TAX)),
    "settings.save_taxonomy": (Action.CONFIGURE, lambda w, a: config.save_taxonomy(
        w.db, TAX.from_pairs([("billing", "money"), ("other", "anything else")]), actor=a)),
    "settings.save_engine": (Action.CONFIGURE, lambda w, a: config.save_engine(w.db, actor=a, threshold=0.5,
                                                                               monthly_budget_usd=20.0)),
    "local.save_tier0_config": (Action.CONFIGURE, lambda w, a: local.save_tier0_config(w.db, actor=a, enabled=True)),
    "local.retrain": (Action.RETRAIN, lambda w, a: local.retrain(w.db, TAX, lazy_embedder(), actor=a)),
    "export.export_tickets": (Action.EXPORT, lambda w, a: export.export_tickets(w.db, "csv", actor=a)),
    "audit.recent": (Action.VIEW_AUDIT, lambda w, a: audit.recent(w.db, actor=a)),
    "calibrate.calibrate": (Action.CALIBRATE, lambda w, a: calibrate.calibrate(w.db, actor=a)),
    # allowed, it gets as far as finding no labelled answers to recommend from (InputError, nothing changed)
    "threshold.apply_recommended": (Action.CONFIGURE, lambda w, a: suppress_input_error(
        lambda: threshold.apply_recommended(w.db, 0.9, actor=a))),
}


def suppress_input_error(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except InputError:
        return None


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("name", list(CASES))
def test_every_guarded_service_refuses_what_the_role_may_not_do(world: World, name: str, role: str) -> None:
    action, call = CASES[name]
    actor = Actor(f"{role}@example.com", r) if (r := ROLES[role]) else None
    before = snapshot(world.db)
    if action in ALLOWED.get(role, set()):
        call(world, actor)  # allowed: it runs
        return
    with pytest.raises(AccessDenied):
        call(world, actor)
    assert snapshot(world.db) == before, "a refused call changed something"
    assert world.calls() == 0, "a refused call reached a model"


def test_the_allowed_calls_really_act(world: World) -> None:
    """The allowed branch above is not a no-op: spending calls reach the models, changes land."""
    op = Actor("olga@example.com", Role.OPERATOR)
    assert runs.request_escalation(world.db, world.ids, actor=op, again=True) == 2  # one is Sonnet's
    with world.db.read() as s:
        assert all(s.get_one(Ticket, t).escalation_requested for t in world.ids)
    services.escalate(world.db, world.router, world.ids[:1], actor=op, again=True)  # Sonnet decided it already
    tier2 = world.router.tier2
    assert isinstance(tier2, ScriptedProvider) and len(tier2.calls) == 1
    review.correct(world.db, world.ids[1], "technical", actor=op, expected_version=world.version(world.ids[1]),
                   taxonomy=TAX)
    with world.db.read() as s:
        assert s.get_one(Ticket, world.ids[1]).corrected_by == "olga@example.com"


@pytest.mark.parametrize("role", ["nobody", "viewer", "operator"])
def test_only_a_lead_loads_the_demo(db_url: str, role: str) -> None:
    db = open_database(db_url)
    actor = Actor("x@example.com", r) if (r := ROLES[role]) else None
    with pytest.raises(AccessDenied):
        # None (nobody signed in) where an Actor is due: it must be refused too
        demo.fill(db, TAX, actor=actor, settings=Settings(), local=False)  # type: ignore[arg-type]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0


def test_the_demo_load_is_audited(db: Database) -> None:
    demo.fill(db, TAX, actor=LEAD, settings=Settings(), local=False)
    (event,) = [e for e in audit.recent(db, actor=LEAD) if e["event"] == audit.DEMO]
    assert event["actor"] == LEAD.identity and event["detail"]["tickets"] == 315


# ----- audit ---------------------------------------------------------------------------------------------------


def test_settings_changes_exports_and_escalations_are_audited_with_who_and_what(world: World) -> None:
    lead = Actor("lena@example.com", Role.LEAD)
    config.save_engine(world.db, actor=lead, threshold=0.55, tier1_model="claude-haiku-5-5")
    config.save_taxonomy(world.db, TAX.from_pairs([(c.name, c.description) for c in TAX.categories] +
                                                  [("shipping", "parcels and delivery")]), actor=lead)
    local.save_tier0_config(world.db, actor=lead, enabled=True, target_accuracy=0.95)
    data, _ = export.export_tickets(world.db, "jsonl", actor=lead)
    runs.request_escalation(world.db, world.ids[1:], actor=Actor("olga@example.com", Role.OPERATOR))
    events = audit.recent(world.db, actor=lead)
    by = {e["event"]: e for e in events}
    assert by["settings.engine"]["detail"] == {"changed": {"threshold": [0.7, 0.55]}}  # unchanged model left out
    assert by["settings.engine"]["actor"] == "lena@example.com" and by["settings.engine"]["role"] == "lead"
    assert by["settings.taxonomy"]["detail"]["changed"] == {"shipping": [None, "parcels and delivery"]}
    assert by["settings.tier0"]["detail"]["changed"] == {"enabled": [False, True], "target_accuracy": [0.9, 0.95]}
    assert by["export.tickets"]["detail"] == {"rows": 3, "format": "jsonl", "filter": "every ticket"}
    assert len(data.decode().splitlines()) == 3
    assert by["escalation.request"]["actor"] == "olga@example.com"
    assert by["escalation.request"]["detail"] == {"tickets": 1, "ids": world.ids[1:]}
    assert by["run.start"]["actor"] == LEAD.identity and by["run.start"]["detail"]["source"] == "seed"
    assert [e["event"] for e in events][:2] == ["escalation.request", "export.tickets"]  # newest first
    json.dumps(events, default=str)  # plain data, ready for a table


def test_a_refused_export_is_not_recorded_as_one(world: World) -> None:
    with pytest.raises(AccessDenied):
        export.export_tickets(world.db, "csv", actor=Actor("olga@example.com", Role.OPERATOR))
    assert not [e for e in audit.recent(world.db, actor=LEAD) if e["event"] == "export.tickets"]


# ----- who is at the door --------------------------------------------------------------------------------------

LISTS = {"leads": ["Lena@Example.com"], "operators": ["*@ops.example.com", "lena@example.com"],
         "viewers": ["*@example.com"]}


@pytest.mark.parametrize("email, role", [
    ("lena@example.com", Role.LEAD),  # on two lists: the highest wins; case does not matter
    ("LENA@EXAMPLE.COM", Role.LEAD),
    ("olga@ops.example.com", Role.OPERATOR),
    ("vic@example.com", Role.VIEWER),
    ("olga@sub.ops.example.com", None),  # a pattern is the whole domain, not its subdomains
    ("eve@example.com.evil.test", None),
    ("eve@evilexample.com", None),
    ("lena@example.com@evil.test", None),
    ("", None),
    (None, None),
])
def test_roles_come_from_the_allow_list(email: str | None, role: Role | None) -> None:
    assert Policy.from_mapping(LISTS).role_of(email) == role


@pytest.mark.parametrize("lists, message", [
    ({"lead": ["a@b.co"]}, "unknown list 'lead'"),
    ({"leads": "a@b.co"}, "must be a list"),
    ({"leads": ["*"]}, "neither an email nor a \\*@domain"),
    ({"viewers": ["*@*"]}, "neither an email nor"),
    ({"operators": ["@example.com"]}, "neither an email nor"),
])
def test_a_malformed_access_list_is_refused_with_a_message(lists: dict[str, list[str]] | dict[str, str],
                                                           message: str) -> None:
    with pytest.raises(InputError, match=message):
        Policy.from_mapping(lists)


def claims(email: str = "lena@example.com", **extra: Any) -> dict[str, Any]:
    return {"is_logged_in": True, "email": email, "email_verified": True, **extra}


AUTH = {"redirect_uri": "https://triage.example.com/oauth2callback", "cookie_secret": "k" * 48, "client_id": "c",
        "client_secret": "s", "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration"}
ON = sign_in({"auth": AUTH, "triage": {"access": LISTS}})


def test_without_sign_in_the_single_local_user_is_a_lead() -> None:
    for secrets in (None, {}, {"ANTHROPIC_API_KEY": "k", "database": {"url": "sqlite://"}}):
        assert sign_in(secrets) == SignIn(on=False)
    v = visitor(sign_in=sign_in(None), claims=None, local_name=" alice ")
    assert (v.door, v.actor, v.local) == (Door.IN, Actor("alice", Role.LEAD), True)
    assert visitor(sign_in=sign_in({}), claims=None).actor == Actor("local", Role.LEAD)


def test_a_complete_auth_section_turns_sign_in_on() -> None:
    assert SignIn(on=True, lists=LISTS) == ON
    with_options = {**AUTH, "client_kwargs": {"prompt": "login"}, "expose_tokens": "id"}
    assert sign_in({"auth": with_options}) == SignIn(on=True)  # no lists: nobody gets in (below)


def without(key: str) -> dict[str, str]:
    return {k: v for k, v in AUTH.items() if k != key}


@pytest.mark.parametrize("secrets, problem", [
    ({"triage": {"access": LISTS}}, "[auth] is missing"),  # the lists alone: before, everyone was a lead
    ({"triage": {}}, "[auth] is missing"),
    ({"Auth": AUTH, "triage": {"access": LISTS}}, "[Auth], which looks like a misspelt [auth]"),
    ({"auht": AUTH}, "[auht], which looks like a misspelt [auth]"),
    ({"oauth": AUTH, "auth": AUTH}, "[oauth]"),
    ({"auth": {**without("client_secret"), "client_secrte": "s"}}, "unknown key 'client_secrte'"),
    ({"auth": {**without("client_id"), "google": {"client_id": "c"}}}, "unknown key 'google'"),
    ({"auth": without("client_id")}, "missing client_id"),
    ({"auth": without("client_secret")}, "missing client_secret"),
    ({"auth": without("redirect_uri")}, "missing redirect_uri"),
    ({"auth": without("cookie_secret")}, "missing cookie_secret"),
    ({"auth": without("server_metadata_url")}, "missing server_metadata_url"),
    ({"auth": {**AUTH, "client_secret": "  "}}, "missing client_secret"),
    ({"auth": {**AUTH, "client_id": 12}}, "missing client_id"),
    ({"auth": {}}, "missing redirect_uri, cookie_secret, client_id, client_secret, server_metadata_url"),
    ({"auth": "on"}, "[auth] must be a section"),
    ({"auth": {**AUTH, "redirect_uri": "https://triage.example.com/"}}, "redirect_uri must be"),
    ({"auth": {**AUTH, "cookie_secret": "a long random string"}}, "cookie_secret is shorter than 32"),
    ({"auth": AUTH, "triage": {"acess": LISTS}}, "[triage] has an unknown part 'acess'"),
    ({"auth": AUTH, "triage": "leads"}, "[triage] must be a section"),
])
def test_sign_in_meant_but_set_up_wrongly_closes_the_door_to_everyone(secrets: dict[str, Any], problem: str) -> None:
    setup = sign_in(secrets)
    assert setup.on and problem in setup.problem
    assert "s3cr" not in setup.problem and "k" * 32 not in setup.problem  # names keys, never values
    user: dict[str, object]
    for user in ({}, claims(), claims("olga@ops.example.com")):  # nobody: not even a lead who is signed in
        v = visitor(sign_in=setup, claims=user, local_name="alice")
        assert (v.door, v.actor, v.local) == (Door.CLOSED, None, False)
        assert problem in v.reason and "set up wrongly" in v.reason


@pytest.mark.parametrize("user, door, role, why", [
    ({}, Door.SIGN_IN, None, ""),
    ({"email": "lena@example.com"}, Door.SIGN_IN, None, ""),  # claims without a sign-in are not an identity
    ({"is_logged_in": "yes", "email": "lena@example.com"}, Door.SIGN_IN, None, ""),
    (claims(exp=1000), Door.SIGN_IN, None, "expired"),
    (claims(exp=5000), Door.IN, Role.LEAD, ""),
    (claims("stranger@elsewhere.test"), Door.NO_ACCESS, None, "on no access list"),
    ({"is_logged_in": True, "name": "No Mail"}, Door.NO_ACCESS, None, "no email address"),
    (claims(email_verified=False), Door.NO_ACCESS, None, "not said this email address is verified"),
    # only the JSON boolean true counts: a provider that says nothing, or says it in another type, has not said it
    ({"is_logged_in": True, "email": "lena@example.com"}, Door.NO_ACCESS, None, "email_verified claim must be true"),
    (claims(email_verified=None), Door.NO_ACCESS, None, "not said"),
    (claims(email_verified="false"), Door.NO_ACCESS, None, "not said"),
    (claims(email_verified="true"), Door.NO_ACCESS, None, "not said"),
    (claims(email_verified=1), Door.NO_ACCESS, None, "not said"),
    (claims(email_verified=[True]), Door.NO_ACCESS, None, "not said"),
    (claims("olga@ops.example.com"), Door.IN, Role.OPERATOR, ""),
    (claims("vic@example.com"), Door.IN, Role.VIEWER, ""),
])
def test_with_sign_in_each_visitor_gets_the_right_door(user: dict[str, Any], door: Door, role: Role | None,
                                                       why: str) -> None:
    v = visitor(sign_in=ON, claims=user, local_name="alice", now=2000)
    assert v.door == door and why in v.reason and not v.local
    assert (v.actor.role if v.actor else None) == role
    if door == Door.NO_ACCESS:
        assert v.identity  # "no access" names the identity used


def test_with_sign_in_and_no_lists_nobody_is_let_in() -> None:
    assert visitor(sign_in=sign_in({"auth": AUTH}), claims=claims()).door == Door.NO_ACCESS
    bad = visitor(sign_in=sign_in({"auth": AUTH, "triage": {"access": {"leeds": ["lena@example.com"]}}}),
                  claims=claims())
    assert bad.door == Door.NO_ACCESS and "access list is invalid" in bad.reason and "leeds" in bad.reason


@pytest.mark.parametrize("address, hosts, local", [
    ("127.0.0.1", ["localhost", "127.0.0.1"], True),  # the shipped configuration
    ("127.0.0.1", ["localhost"], True),
    ("127.0.0.1", [], False),  # any Host header: a web page on any name that rebinds to 127.0.0.1
    ("127.0.0.1", None, False),
    ("127.0.0.1", ["*"], False),
    ("127.0.0.1", ["localhost", "triage.example.com"], False),  # behind a proxy on this machine
    ("127.0.0.1", ["*.localhost"], False),
    ("0.0.0.0", ["localhost", "127.0.0.1"], False),
    (None, ["localhost"], False),
])
def test_which_servers_serve_this_machine_only(address: str | None, hosts: list[str] | None, local: bool) -> None:
    assert served_locally(address, hosts) is local


@pytest.mark.parametrize("address, local", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("127.0.1.1", True), (None, False), ("", False),
                                            ("0.0.0.0", False), ("::", False), ("192.0.2.10", False)])
def test_which_addresses_are_this_machine_only(address: str | None, local: bool) -> None:
    assert listens_locally(address) is local


def test_the_command_line_is_the_local_administrator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    assert cli_actor() == Actor("cli:root", Role.LEAD)
    assert cli_actor("maria") == Actor("maria", Role.LEAD)
    with pytest.raises(ValueError):
        Actor(" ", Role.LEAD)
