"""The argument parser of `triage`: every command, flag and its help."""

from __future__ import annotations

import argparse
from datetime import date

from triage import ingest
from triage.cli.admin import cmd_db, cmd_demo, cmd_train
from triage.cli.alerts import cmd_alerts
from triage.cli.audit import cmd_audit
from triage.cli.labels import cmd_label
from triage.cli.pilot import register as register_pilot
from triage.cli.privacy import cmd_erase, cmd_export, cmd_purge
from triage.cli.quality import cmd_calibrate, cmd_quality
from triage.cli.reports import cmd_eval, cmd_runs, cmd_spend
from triage.cli.settings import cmd_settings, cmd_settings_set
from triage.cli.story import cmd_report
from triage.cli.work import cmd_classify, cmd_collect, cmd_escalate, cmd_retry, cmd_worker
from triage.domain import LOCAL, ROUTES
from triage.settings import EDITABLE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triage", description="Classify support tickets with Claude Haiku, escalate "
                                "uncertain ones to Claude Sonnet, and track exact spend. Reads ANTHROPIC_API_KEY, "
                                "ANTHROPIC_BASE_URL and TRIAGE_DATABASE_URL (default sqlite:///data/triage.db).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, concurrency: bool = True) -> None:
        sp.add_argument("--operator", help="name recorded as who started the run (default cli:<your OS user>); the "
                        "command line always acts as the local administrator (a lead)")
        sp.add_argument("--threshold", type=float, help="escalate when tier-1 confidence is under this (default 0.7)")
        if concurrency:
            sp.add_argument("--concurrency", type=int, help="parallel API requests (default 8)")
            sp.add_argument("--per-call", type=int, metavar="N",
                            help="tickets per API request, 1-50 (default 1, or TRIAGE_PER_CALL): the instructions "
                            "are paid once per request and a requests-per-minute limit binds N times later; every "
                            "answer is read by its ticket's id, and a ticket without a clean answer is asked again "
                            "alone")
            sp.add_argument("--per-call-sonnet", type=int, metavar="N",
                            help="tickets per tier-2 (Sonnet) request (default: the same as --per-call)")
        sp.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")

    c = sub.add_parser("classify", help="classify tickets from a file or stdin",
                       description="Classify tickets from CSV, JSON, JSONL or plain text (one per line). "
                       "Re-importing a file does not duplicate tickets; known tickets keep their labels.")
    c.add_argument("path", help="file to read, or - for stdin")
    c.add_argument("--format", choices=ingest.FORMATS, help="input format (default: from the file extension)")
    c.add_argument("--text-column", help="CSV column / JSON field with the ticket text (default: guessed)")
    c.add_argument("--id-column", help="CSV column / JSON field with your ticket id (default: guessed)")
    c.add_argument("--requester-column", help="CSV column / JSON field with the requester's e-mail, stored as a "
                   "keyed hash so that `triage erase --requester` finds their tickets (default: none)")
    c.add_argument("--route", "--tier", dest="route", choices=ROUTES, default="auto",
                   help="how the tickets are classified: auto: Haiku, then Sonnet when unsure (default); haiku / "
                   "sonnet: that model only; local: the offline model only (the route whenever no API key is set). "
                   "--tier is the older spelling")
    c.add_argument("--out", help="write results to FILE.jsonl or FILE.csv (default: JSONL on stdout)")
    c.add_argument("--reclassify", action="store_true", help="classify known tickets again (new calls, new cost)")
    c.add_argument("--batch", action="store_true",
                   help="send tier 1 through the Message Batches API (half price, results within 24 h; routes auto "
                   "and haiku); unsure tickets then go to tier 2 live")
    c.add_argument("--no-wait", action="store_true", help="with --batch: submit and return; `triage collect` later")
    c.add_argument("--poll", type=float, default=30.0, help="with --batch: seconds between status checks")
    common(c)
    c.set_defaults(func=cmd_classify)

    e = sub.add_parser("escalate", help="ask Sonnet about tickets on demand",
                       description="Send tickets to tier 2 (Sonnet) whatever tier 1 said.")
    e.add_argument("--id", type=int, nargs="+", help="ticket ids (the ticket_id column of classify's output)")
    e.add_argument("--below", type=float, help="every uncorrected ticket whose confidence is under this")
    e.add_argument("--again", action="store_true",
                   help="ask Sonnet again about tickets it has already decided (by default they are left alone)")
    common(e)
    e.set_defaults(func=cmd_escalate)

    co = sub.add_parser("collect", help="record finished Message Batches and escalate their unsure tickets")
    co.add_argument("--poll", type=float, default=30.0, help="seconds between status checks")
    co.add_argument("--no-wait", action="store_true", help="check once and return; batches still running wait")
    common(co)
    co.set_defaults(func=cmd_collect)

    r = sub.add_parser("retry", help="classify failed tickets again")
    common(r)
    r.set_defaults(func=cmd_retry)

    w = sub.add_parser("worker", help="process the pending queue (several workers may share it)")
    w.add_argument("--once", action="store_true", help="exit when the queue is empty instead of polling")
    w.add_argument("--poll", type=float, default=2.0, help="seconds between polls of an empty queue")
    common(w)
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser("spend", help="spend by day and model, exact to the API's usage")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD (UTC)")
    s.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (UTC)")
    s.set_defaults(func=cmd_spend)

    rp = sub.add_parser("report", help="the routing story (the Routing page) as one HTML, PDF or JSON file")
    rp.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD (UTC; default 30 days ago)")
    rp.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (UTC; default today)")
    rp.add_argument("--out", required=True, metavar="FILE",
                    help="story.html (self-contained, opens offline), story.pdf (printed by a headless Chromium "
                    "where one is installed) or story.json (every figure)")
    rp.set_defaults(func=cmd_report)

    t = sub.add_parser("train", help="retrain the local model on the labels in the database")
    t.add_argument("--json", action="store_true", help="print the new model's metrics as one JSON object")
    t.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="score a tier on a labelled file (a paid tier runs as a recorded run)",
                        description="Read CSV/JSON/JSONL with `text` and `label`, classify with the chosen tier, "
                        "print accuracy, macro-F1, per-category precision/recall, expected calibration error and "
                        "a coverage table (thresholds 0.50-0.95: share kept and accuracy on it). The local tier "
                        "leaves the working database unchanged; haiku, sonnet and auto classify the file as a run "
                        "in it (source eval:FILE), so their calls are within the budget and on the books.")
    ev.add_argument("--gold", required=True, help="labelled file with text and label columns")
    ev.add_argument("--text-column", default="text", help="the column holding the ticket text (default: text)")
    ev.add_argument("--label-column", default="label",
                    help="the column holding the label (default: label); a label may be a category's key or its "
                    "name, in any case")
    ev.add_argument("--route", "--tier", dest="route", choices=ROUTES, default=LOCAL,
                    help="local (default), haiku, sonnet, or auto (the two-tier pipeline); --tier is the older "
                    "spelling")
    ev.add_argument("--use-db", action="store_true",
                    help="local tier: use the head trained on the working database (read only) instead of "
                    "the zero-shot one")
    ev.add_argument("--json", action="store_true", help="one JSON object: n, accuracy, macro_f1, ece, coverage, ...")
    ev.set_defaults(func=cmd_eval)
    register_pilot(sub)

    lb = sub.add_parser("label", help="import labelled tickets (e.g. a helpdesk export) as operator labels",
                        description="Read CSV/JSON/JSONL with a label column and a text column, an id column, or "
                        "both. A row matches a ticket by id, else by its exact (whitespace-normalised) text; a row "
                        "with text that matches nothing becomes a new ticket with the label (no API call, no cost). "
                        "A file of ids and labels alone labels the known tickets those ids name. Labels outside the "
                        "taxonomy and rows without text whose id matches no ticket are reported, never guessed, and "
                        "not written. Every label is audited (source import, "
                        "the operator, the file); importing the same file again changes nothing. Afterwards the "
                        "local model retrains and says what it learned.")
    lb.add_argument("path", help="CSV, JSON or JSONL file")
    lb.add_argument("--operator", required=True, help="who is importing: stamped on every label")
    lb.add_argument("--text-column", help="column / field with the ticket text (default: guessed; none: ids only)")
    lb.add_argument("--id-column", help="column / field with your ticket id (default: guessed; none: text only)")
    lb.add_argument("--label-column", help="column / field with the category (default: label, category, ...)")
    lb.add_argument("--dry-run", action="store_true", help="show what would happen; write nothing")
    lb.add_argument("--no-retrain", action="store_true", help="do not retrain the local model afterwards")
    lb.add_argument("--json", action="store_true", help="print one JSON object")
    lb.set_defaults(func=cmd_label)

    qu = sub.add_parser("quality", help="how often each model is right against operator labels",
                        description="Per model and tier: n, accuracy, macro-F1, expected calibration error and the "
                        "confusion matrix, measured on operator-labelled tickets; plus the threshold what-if "
                        "replayed on stored answers. The same figures as the dashboard's Quality page.")
    qu.add_argument("--since", type=date.fromisoformat, help="only model answers from this day on, YYYY-MM-DD (UTC)")
    qu.add_argument("--json", action="store_true", help="print one JSON object")
    qu.add_argument("--target", type=float, help="a target accuracy (e.g. 0.9): recommend the cheapest threshold "
                    "whose accuracy, replayed on stored answers, meets it at the low end of a 90-percent interval")
    qu.add_argument("--apply", action="store_true", help="with --target: make the recommended threshold the one in "
                    "force (a settings change in the audit trail)")
    qu.add_argument("--max-reviews-per-day", type=int, metavar="N",
                    help="with --target: a review budget (default: the max_reviews_per_day setting, 0 = none); the "
                    "recommendation keeps the reviews a day it would cause at or under N")
    qu.add_argument("--operator", help="with --apply: who is changing the setting (default cli:<your OS user>)")
    qu.set_defaults(func=cmd_quality)

    au = sub.add_parser("audit", help="the blind audit: drawn tickets awaiting an answer, or record answers",
                        description="A share of the tickets settled without review (the audit_rate setting, "
                        "TRIAGE_AUDIT_RATE; default 3%%) is drawn at random as they settle. Without --answers: list "
                        "the drawn tickets awaiting an answer (id and text; never the model's label or confidence, so "
                        "the answer is not anchored on it). With --answers FILE (CSV, JSON or JSONL with id and label "
                        "columns): record the answers, as operator labels in the audit trail. `triage quality` shows "
                        "the accuracy of the unreviewed traffic they measure.")
    au.add_argument("--answers", metavar="FILE", help="record the answers in FILE (id and label columns)")
    au.add_argument("--limit", type=int, help="list at most this many tickets")
    au.add_argument("--json", action="store_true", help="print JSON (a list of {id, external_id, text})")
    au.add_argument("--operator", help="who answered, stamped on each label (default cli:<your OS user>)")
    au.set_defaults(func=cmd_audit)

    ca = sub.add_parser("calibrate", help="refit each model's confidence calibration on the operator labels now",
                        description="Fit, per model (Haiku, Sonnet), a map from stated confidence to the observed "
                        "chance of being right (Platt scaling), on operator-labelled tickets, once a model has "
                        "enough of them; routing then escalates on the calibrated confidence. Maps also refit by "
                        "themselves after label imports and review saves once enough new labels arrived.")
    ca.add_argument("--operator", help="who asked for the refit (default cli:<your OS user>)")
    ca.add_argument("--json", action="store_true", help="print one JSON object")
    ca.set_defaults(func=cmd_calibrate)

    se = sub.add_parser("settings", help="every setting in force and where it comes from; `settings set` saves one",
                        description="Print every setting in force and its source: default, environment (the variable "
                        "named) or database (saved by a lead on the dashboard's Settings page or with `triage "
                        "settings set`). API keys are never shown, database passwords are masked.")
    se.add_argument("--json", action="store_true", help="print one JSON object: per setting its value, source, "
                    "environment variable and whether a lead may change it")
    se.set_defaults(func=cmd_settings)
    se_sub = se.add_subparsers(dest="settings_action", metavar="ACTION",
                               help="set NAME VALUE: save one setting as a lead (see `triage settings set --help`)")
    ss = se_sub.add_parser("set", help="save one setting as a lead, checked and audited as on the Settings page",
                           description="Save one setting as a lead would on the dashboard's Settings page: the same "
                           "checks (a bad value is refused with exit code 2 and nothing is written) and the same "
                           "audit row (from, to, who). Names: " + ", ".join(EDITABLE) + ". per_call_sonnet none: "
                           "the same as per_call.")
    ss.add_argument("name", metavar="NAME", help="the setting, as `triage settings` lists it: " + ", ".join(EDITABLE))
    ss.add_argument("value", metavar="VALUE", help="its new value (a number, a model id, or none for per_call_sonnet)")
    ss.add_argument("--operator", help="who is changing it, recorded in the audit trail (default cli:<your OS user>)")
    ss.set_defaults(func=cmd_settings_set)

    er = sub.add_parser("erase", help="erase tickets' personal data (text, vectors, model reasons, notes)",
                        description="Erase the personal data of these tickets: their text, stored vectors, the "
                        "model's reasons (they quote the text) and corrections' notes. Each ticket stays as a row "
                        "with its labels, calls and costs, so spend and quality figures do not change. Without "
                        "--yes it only says what would go. Recorded in the audit trail (who, when, how many, the "
                        "criterion as a salted hash).")
    which = er.add_mutually_exclusive_group(required=True)
    which.add_argument("--ticket", type=int, nargs="+", metavar="ID", help="ticket ids (as exported)")
    which.add_argument("--requester", metavar="EMAIL", help="every ticket imported with this requester "
                       "(--requester-column); the address is looked up by its keyed hash and never stored")
    er.add_argument("--yes", action="store_true", help="really erase (without it: a dry run)")
    er.add_argument("--json", action="store_true", help="print one JSON object")
    er.add_argument("--operator", help="who erases, recorded in the audit trail (default cli:<your OS user>)")
    er.set_defaults(func=cmd_erase)

    pu = sub.add_parser("purge", help="erase tickets idle longer than retention_days (as `triage erase`)",
                        description="Retention: erase, as `triage erase --yes` does, every ticket whose last "
                        "activity (imported, classified, corrected) is older than the retention_days setting "
                        "(0: keep forever; `triage settings set retention_days N`). Pending tickets and tickets "
                        "being classified are left for the next purge.")
    pu.add_argument("--dry-run", action="store_true", help="say what would be erased, change nothing")
    pu.add_argument("--days", type=int, help="this many days instead of retention_days")
    pu.add_argument("--json", action="store_true", help="print one JSON object")
    pu.add_argument("--operator", help="who purges, recorded in the audit trail (default cli:<your OS user>)")
    pu.set_defaults(func=cmd_purge)

    ex = sub.add_parser("export", help="every ticket with its text, label and cost to a CSV or JSONL file (leads)",
                        description="Write every ticket (text, label, who set it, cost) to FILE.csv or FILE.jsonl, "
                        "as the Settings page's export does; recorded in the audit trail. An export file is outside "
                        "the database: erasure and retention do not reach it.")
    ex.add_argument("--out", required=True, help="FILE.csv or FILE.jsonl")
    ex.add_argument("--masked", action="store_true",
                    help="the text as the model is shown it: personal data replaced by placeholders ([EMAIL])")
    ex.add_argument("--operator", help="who exports, recorded in the audit trail (default cli:<your OS user>)")
    ex.set_defaults(func=cmd_export)

    dm = sub.add_parser("demo", help="fill an empty database with sample data for a demo")
    dm.set_defaults(func=cmd_demo)

    rn = sub.add_parser("runs", help="recent runs: who started them, from where, and their tickets' states")
    rn.add_argument("--limit", type=int, default=20, help="how many runs, newest first (default 20)")
    rn.add_argument("--json", action="store_true", help="print a JSON list, one object per run")
    rn.set_defaults(func=cmd_runs)

    al = sub.add_parser("alerts", help="recent alerts and every attempt to deliver them; --test, --check, --set",
                        description="Alerts a lead configured (webhook: Slack, Teams; e-mail over SMTP) for urgent "
                        "tickets, the review queue, budgets and spikes (docs/configuration.md#alerts): the recent "
                        "events, newest first, each delivery and its attempts. The workers check every minute.")
    al.add_argument("--limit", type=int, default=20, help="how many events (default 20)")
    al.add_argument("--json", action="store_true", help="print a JSON list, one object per event")
    al.add_argument("--test", action="store_true", help="send a test alert to every channel configured now")
    al.add_argument("--check", action="store_true", help="check and deliver now, as the workers do every minute")
    al.add_argument("--set", nargs="+", metavar="NAME=VALUE",
                    help="configure (a lead's change, audited): enabled, webhook_url (- reads it from stdin, out of "
                    "the shell's history), email_to, smtp_host, smtp_port, smtp_from, smtp_user, smtp_starttls, "
                    "urgent, urgent_teams, review_queue_over, budget, spikes, include_text")
    al.add_argument("--show", action="store_true", help="print the configuration (the webhook address masked)")
    al.add_argument("--operator", help="who changes or tests, recorded (default cli:<your OS user>)")
    al.set_defaults(func=cmd_alerts)

    d = sub.add_parser("db", help="database maintenance")
    d.add_argument("action", choices=["upgrade", "backfill"],
                   help="upgrade: apply migrations up to the latest schema; backfill: fill in the masked count and "
                        "language of tickets imported before they were recorded (short batches; idle workers do it "
                        "too)")
    d.set_defaults(func=cmd_db)
    return p
