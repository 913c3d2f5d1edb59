"""The layers of docs/architecture.md, enforced: imports point down only."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def modules(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def ours(name: str) -> bool:
    return name.split(".")[0] in ("triage", "db", "dashboard")


DOMAIN = ("triage.domain", "triage.errors")


@pytest.mark.parametrize("path", modules("db"), ids=lambda p: str(p.relative_to(ROOT)))
def test_db_depends_on_the_domain_only(path):
    bad = [n for n in imports_of(path) if n.startswith(("triage", "dashboard")) and not n.startswith(DOMAIN)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: db/ may import only {DOMAIN} from triage"


@pytest.mark.parametrize("name", ["domain.py", "errors.py"])
def test_the_domain_imports_nothing_of_ours(name):
    bad = [n for n in imports_of(ROOT / "triage" / name) if ours(n) and not n.startswith(DOMAIN)]
    assert not bad, f"triage/{name} imports {bad}"


@pytest.mark.parametrize("path", modules("triage"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_knows_no_streamlit_and_no_pages(path):
    bad = [n for n in imports_of(path) if n.split(".")[0] in ("streamlit", "dashboard")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", modules("dashboard/app_pages"), ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_get_plain_objects_from_services_not_sql(path):
    bad = [n for n in imports_of(path) if n.split(".")[0] in ("db", "sqlalchemy")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: pages call triage services"


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from triage.router import decide\nimport triage.domain\n")
    assert "triage.router" in imports_of(bad) and "triage.domain" in imports_of(bad)
