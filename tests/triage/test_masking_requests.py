"""No personal data reaches the API (issue 21, item 1), end to end: the real SDK over HTTP to the fake Messages API,
which records every request's bytes, and a real SQLite database. Tickets and operator-labelled examples full of
card numbers, IBANs, e-mail addresses, phone numbers and IP addresses go through every request path: one ticket
per request with few-shot examples (fixed and retrieved), several per request, Sonnet escalations, a Message Batch
and `triage eval`. None of the values is in any request, and every ticket is still classified by its own words."""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic, keyword_label
from triage import ingest, labels, taxonomy
from triage.cli import main
from triage.local import retrieval as fewshot_source
from triage.routing.redact import mask
from triage.settings import Settings
from triage.work import runs, services

TAX = taxonomy.default()
CARDS = ("4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "6011 1111 1111 1117")
IBANS = ("DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "fr14 2004 1010 0505 0001 3m02 606")
EMAILS = ("anna.smith@example.com", "j.doe+helpdesk@mail.example.co.uk", "BJORN@EXAMPLE.ORG")
PHONES = ("+44 20 7946 0958", "(415) 555-2671", "0049 30 901820", "+33 6 12 34 56 78")
IPS = ("192.168.1.20", "2001:db8::7", "10.20.30.40")
SUBJECTS = {  # one keyword of the fake's keyword model each, so the label says the ticket was read
    "billing": "I was charged twice on my card {card}, please refund to {iban}; mail {email}",
    "account": "I cannot log in to my account {email}, call me at {phone}",
    "technical": "The app shows an error since yesterday from {ip}; phone {phone} or {email}",
    "product_feedback": "I wish you had dark mode. Card {card}, write to {email}",
}


def personal(i: int) -> dict[str, str]:
    return {"card": CARDS[i % len(CARDS)], "iban": IBANS[i % len(IBANS)], "email": EMAILS[i % len(EMAILS)],
            "phone": PHONES[i % len(PHONES)], "ip": IPS[i % len(IPS)]}


def tickets(n: int, unsure_every: int = 4) -> list[str]:
    names = list(SUBJECTS)
    out = []
    for i in range(n):
        text = f"#{i} " + SUBJECTS[names[i % len(names)]].format(**personal(i))
        if unsure_every and i % unsure_every == 1:
            text += " [[conf=0.3]]"  # tier 1 is unsure: Sonnet gets the ticket too
        out.append(text)
    return out


def needles() -> list[str]:
    """Every value as written, in lower case, and without its spaces, dashes and brackets."""
    out = set()
    for value in CARDS + IBANS + EMAILS + PHONES + IPS:
        out |= {value, value.lower(), "".join(ch for ch in value if ch.isalnum() or ch in "@.:+").lower()}
    out |= {"".join(ch for ch in v if ch.isdigit()) for v in CARDS + PHONES}
    return sorted(out)


def assert_nothing_personal_was_sent(fake: FakeAnthropic) -> None:
    sent = [r["raw"].decode("utf-8") for r in fake.requests if r["raw"]]
    assert sent
    for raw in sent:
        try:
            readable = json.dumps(json.loads(raw), ensure_ascii=False)  # \u escapes undone
        except ValueError:
            readable = raw
        for needle in needles():
            assert needle not in raw.lower() and needle not in readable.lower(), needle


def labelled(db: Database) -> None:
    """Operator labels on tickets full of personal data: the few-shot examples."""
    rows = [(SUBJECTS[label].format(**personal(i + k)), label) for i, label in enumerate(SUBJECTS) for k in range(3)]
    text = "text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows)
    labels.import_labels(db, ingest.parse_labelled(text, "csv"), TAX, file="history.csv", actor=LEAD, retrain=False)


def statuses(db: Database, ids: Sequence[int]) -> dict[str, tuple[str, str | None]]:
    with db.read() as s:
        return {t.text: (t.status, t.category) for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids)))}


@pytest.mark.parametrize("per_call", [1, 3])
def test_no_value_reaches_the_api_and_every_ticket_is_classified(fake: FakeAnthropic, db: Database,
                                                                 per_call: int) -> None:
    labelled(db)
    items = tickets(12)
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, fewshot_k=2, per_call=per_call)
    router = services.build_router(settings, TAX, db=db)
    imp = runs.start_run(db, [(None, t) for t in items], source="test", actor=LEAD)
    assert imp.run_id is not None
    report = services.classify_run(db, router, imp.run_id, actor=LEAD, concurrency=2)
    assert report.stopped is None
    bodies = [r["body"] for r in fake.requests if r["body"]]
    assert any("sonnet" in b["model"] for b in bodies)  # escalations went out
    if per_call == 1:
        assert any("<example" in json.dumps(b) for b in bodies)  # with few-shot examples, fixed and retrieved
        assert any(isinstance(b["system"], list) for b in bodies)
    else:
        assert any('<ticket id="3">' in str(b) for b in bodies)  # several tickets per request
    assert "[CARD" in json.dumps(bodies) and "[EMAIL" in json.dumps(bodies)  # placeholders the model can read
    assert_nothing_personal_was_sent(fake)
    got = statuses(db, imp.ticket_ids)
    for text in items:
        status, category = got[text]
        assert status in ("classified", "escalated"), (text, status)
        assert category == keyword_label(text)[0], text


def test_a_message_batch_carries_no_value(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path) -> None:
    src, out = tmp_path / "t.csv", tmp_path / "o.jsonl"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((f"B-{i}", text) for i, text in enumerate(tickets(6)))
    assert main(["classify", str(src), "--batch", "--poll", "0.05", "--out", str(out)]) == 0
    assert any(r["path"] == "/v1/messages/batches" for r in fake.requests)
    assert_nothing_personal_was_sent(fake)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and {r["status"] for r in rows} <= {"classified", "escalated"}


def test_triage_eval_carries_no_value(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.csv"
    with open(gold, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((text, keyword_label(text)[0]) for text in tickets(8, unsure_every=0))
    assert main(["eval", "--gold", str(gold), "--tier", "haiku", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0  # masked, every ticket still read right
    assert_nothing_personal_was_sent(fake)


def test_the_example_bank_holds_what_requests_carry(db: Database) -> None:
    """The few-shot bank's texts are masked when it loads, so the fixed set and the worst case reserved before a
    call are sized on the examples as sent (a masked text can be longer than the original: a@b.io -> [EMAIL])."""
    labelled(db)
    source = fewshot_source.load(db, TAX, 2, "claude-haiku-5-5")
    assert source is not None and len(source.bank) == 12
    raw = {SUBJECTS[label].format(**personal(i + k)) for i, label in enumerate(SUBJECTS) for k in range(3)}
    assert {e.text for e in source.bank.examples} == {mask(t).text for t in raw}
    worst = source.worst_case()
    sent = json.dumps([e.text for e in (*worst.representative, *worst.retrieved)]).lower()
    assert worst.count and not any(needle in sent for needle in needles())
