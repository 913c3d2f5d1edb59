"""Errors an operator meets from the CLI: one line saying what to do, the right exit code, no traceback, and
nothing sent to the API when the command cannot be put on the books."""

from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.fake_anthropic import FakeAnthropic
from triage.cli import main
from triage.errors import BudgetReached, InputError, KeyRejected, NoApiKey, TriageError, UnknownModel

API_COMMANDS = [
    ["classify", "{src}", "--tier", "haiku"],
    ["classify", "{src}"],
    ["classify", "{src}", "--batch", "--no-wait"],
    ["escalate", "--id", "1"],
    ["retry"],
    ["worker", "--once"],
    ["eval", "--gold", "{gold}", "--tier", "haiku"],
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    src = tmp_path / "t.txt"
    src.write_text("refund my invoice\nthe app crashes\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\nrefund my invoice,billing\nthe app crashes,technical\n")
    return {"src": str(src), "gold": str(gold)}


@pytest.mark.parametrize("command", API_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_model_missing_from_the_price_table_is_refused_before_any_call(command: list[str], env: dict[str, str],
                                                                         fake: FakeAnthropic, files: dict[str, str],
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from db.migrate import open_database
    from tests.support.actors import LEAD
    from triage.work import runs

    runs.start_run(open_database(env["TRIAGE_DATABASE_URL"]), [(None, "a ticket to escalate")], source="seed",
                   actor=LEAD)
    monkeypatch.setenv("TRIAGE_TIER1_MODEL", "claude-haiku-9-9")
    code = main([part.format(**files) for part in command])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no price for model 'claude-haiku-9-9'" in err and "prices.json" in err and "TRIAGE_PRICES" in err
    assert "Traceback" not in err
    assert fake.requests == []


def test_eval_with_a_rejected_key_is_one_clear_line(env: dict[str, str], fake: FakeAnthropic, files: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong")
    assert main(["eval", "--gold", files["gold"], "--tier", "haiku"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: the API key was rejected (401)") and "Traceback" not in err


def test_a_bad_number_in_the_environment_names_the_variable(env: dict[str, str], files: dict[str, str],
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_THRESHOLD", "high")
    assert main(["classify", files["src"]]) == 2
    assert "TRIAGE_THRESHOLD='high' is not a number" in capsys.readouterr().err


def test_an_unexpected_failure_is_one_line_without_a_traceback(env: dict[str, str], files: dict[str, str],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*_a: Any, **_k: Any) -> NoReturn:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("triage.cli.work.ingest.read_path", boom)
    assert main(["classify", files["src"]]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: disk on fire" in err and "Traceback" not in err
    monkeypatch.setenv("TRIAGE_DEBUG", "1")
    assert main(["classify", files["src"]]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(("error", "code"), [(InputError, 2), (UnknownModel, 2), (NoApiKey, 3), (KeyRejected, 3),
                                             (BudgetReached, 5)])
def test_every_error_kind_has_its_documented_exit_code(error: type[Exception], code: int) -> None:
    assert issubclass(error, TriageError) and error("x").exit_code == code
