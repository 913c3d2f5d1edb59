"""Alerts that reach people (issue 26): a lead's webhook (Slack, Teams) and e-mail, told once per event when an
urgent ticket arrives, the review queue passes a limit, a budget passes its warning level or cap, or the escalation
rate or a category's share jumps. `config` (what a lead saves), `rules` (the spike test, backoff), `checks` (what
is noticed), `channels` (webhook, SMTP), `outbox` (claim, send, record), `service` (what entry points call)."""
