"""Settings section (leads only): alerts to a webhook (Slack, Teams) and e-mail, which alerts, a test alert, and
the recent alerts with every attempt. The webhook address is a secret: typed into a password field, shown back
only masked (scheme, host and its last 4 characters)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.ui import need_operator, plain
from db.engine import Database
from triage import teams
from triage.access import Action, Actor, may
from triage.alerts import config, rules, service
from triage.errors import TriageError
from triage.taxonomy import Taxonomy


def _team_choices(db: Database, taxonomy: Taxonomy, saved: tuple[str, ...]) -> list[str]:
    try:
        named = [r.team for r in teams.in_force(db, taxonomy).rules]
    except TriageError:  # TRIAGE_TEAMS names a file that cannot be used: said in the Teams section
        named = []
    return list(dict.fromkeys([*named, *saved]))


def settings_form(db: Database, taxonomy: Taxonomy, actor: Actor) -> None:
    if not may(actor, Action.CONFIGURE):  # the page is a lead's; a section never shows itself to anyone else
        return
    st.subheader("Alerts")
    cfg = config.read(db, actor=actor)
    st.caption(
        "Tell people when something needs them: to a webhook (Slack or Microsoft Teams incoming webhook: a JSON "
        "`text`), and/or by e-mail over SMTP. Each alert is sent once per event, retried with backoff "
        f"({rules.MAX_ATTEMPTS} attempts over about a quarter of an hour), every attempt logged below. Alerts carry "
        "ticket ids, labels and figures, never ticket text unless you allow it (then masked). The workers check "
        "every minute. Status: " + ("**on**" if cfg.active else "on, but no channel is set" if cfg.enabled
                                    else "off") + ".")
    if st.session_state.pop("alerts_saved", False):  # after a save: the typed address leaves the browser
        st.session_state["alerts_webhook"] = ""
        st.success("Saved alerts.")
    with st.form("alerts_form"):
        enabled = st.toggle("Alerts on", value=cfg.enabled, key="alerts_enabled")
        webhook = st.text_input(
            "Webhook address" + (f" (set: {config.shown_url(cfg.webhook_url)}; leave empty to keep it)"
                                 if cfg.webhook_url else ""),
            type="password", key="alerts_webhook", placeholder="https://hooks.slack.com/services/...",
            help="A secret: Slack's carry their token. Never shown again in full, never logged. https only; not an "
                 f"address on this machine or the private network unless the server sets {config.PRIVATE_ENV}=1.")
        remove = st.checkbox("Remove the webhook", key="alerts_remove", disabled=not cfg.webhook_url)
        e1, e2, e3 = st.columns([3, 2, 1])
        email_to = e1.text_input("E-mail to (comma separated)", ", ".join(cfg.email_to), key="alerts_email_to")
        smtp_host = e2.text_input("SMTP server", cfg.smtp_host, key="alerts_smtp_host")
        smtp_port = e3.number_input("Port", 1, 65535, int(cfg.smtp_port), key="alerts_smtp_port")
        f1, f2, f3 = st.columns([3, 2, 1])
        smtp_from = f1.text_input("From", cfg.smtp_from, key="alerts_smtp_from")
        smtp_user = f2.text_input(f"SMTP user (password: {config.PASSWORD_ENV})", cfg.smtp_user,
                                  key="alerts_smtp_user")
        starttls = f3.toggle("STARTTLS", value=cfg.smtp_starttls, key="alerts_starttls")
        st.markdown("**Which alerts**")
        a1, a2 = st.columns(2)
        urgent = a1.toggle(f"An urgent ticket arrived ({plain(taxonomy.priority_names[0])})", value=cfg.urgent,
                           key="alerts_urgent")
        urgent_teams = a2.multiselect("For these teams (none picked: every team)",
                                      _team_choices(db, taxonomy, cfg.urgent_teams), default=list(cfg.urgent_teams),
                                      key="alerts_urgent_teams")
        b1, b2 = st.columns(2)
        queue_over = b1.number_input("The review queue passed this many waiting (0 = off)", 0, config.MAX_QUEUE,
                                     int(cfg.review_queue_over), step=10, key="alerts_queue")
        budget = b2.toggle("A budget passed its warning level or its cap", value=cfg.budget, key="alerts_budget")
        c1, c2 = st.columns(2)
        spikes = c1.toggle("A spike: the escalation rate or a category's share jumped", value=cfg.spikes,
                           key="alerts_spikes", help="Against the 7 days before, on the last hour: at least "
                           f"{rules.MIN_COUNT} tickets, the share doubled and {rules.MIN_RISE:.0%} points up, and a "
                           f"one-sided binomial test under {rules.ALPHA} (docs/configuration.md, Alerts).")
        include_text = c2.toggle("Include the ticket's masked text in urgent alerts", value=cfg.include_text,
                                 key="alerts_include_text", help="Off by default: alerts leave this server for a "
                                 "chat or mailbox. On: the first 300 characters, personal data masked.")
        if st.form_submit_button("Save alerts") and need_operator():
            try:
                config.save(db, actor=actor, enabled=enabled, webhook_url="" if remove else (webhook.strip() or None),
                            email_to=email_to, smtp_host=smtp_host, smtp_port=int(smtp_port), smtp_from=smtp_from,
                            smtp_user=smtp_user, smtp_starttls=starttls, urgent=urgent, urgent_teams=urgent_teams,
                            review_queue_over=int(queue_over), budget=budget, spikes=spikes,
                            include_text=include_text)
            except TriageError as exc:
                st.error(str(exc))
            else:
                st.session_state["alerts_saved"] = True
                st.rerun()
    if st.button("Send a test alert", key="alerts_test", disabled=not cfg.channels) and need_operator():
        try:
            for done in service.send_test(db, actor=actor):
                (st.success if done.ok else st.error)(
                    f"Test alert by {done.channel}: " + ("delivered." if done.ok else f"failed ({plain(done.error)})."))
        except TriageError as exc:
            st.error(str(exc))
    _recent(db, actor)


def _recent(db: Database, actor: Actor) -> None:
    events = service.recent(db, actor=actor, limit=30)
    if not events:
        st.caption("No alerts yet.")
        return
    rows = []
    for e in events:
        tries = [t for d in e["deliveries"] for t in d["tries"]]
        failed = [t for t in tries if not t["ok"]]
        rows.append({"when": e["created_at"], "kind": e["kind"], "alert": e["title"],
                     "delivery": "; ".join(f"{d['channel']} {d['state']} ({d['attempts']})" for d in e["deliveries"])
                     or "in a summary",
                     "last error": (failed[-1]["error"] or "") if failed else ""})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="alerts_table",
                 column_config={"when": st.column_config.DatetimeColumn("when (UTC)", format="YYYY-MM-DD HH:mm")})
