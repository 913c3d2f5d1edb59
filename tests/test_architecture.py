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


@pytest.mark.parametrize("path", modules("dashboard/sections"), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_sections_get_plain_objects_from_services_not_sql(path):
    names = [n for n in imports_of(path) if not n.startswith("db.engine")]  # the database handle, as a type
    bad = [n for n in names if n.split(".")[0] in ("db", "sqlalchemy")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: sections call triage services"


ROUTING_MAY = ("triage.domain", "triage.errors", "triage.taxonomy", "triage.routing")


@pytest.mark.parametrize("path", modules("triage/routing"), ids=lambda p: str(p.relative_to(ROOT)))
def test_routing_knows_no_database_and_no_sdk(path):
    """routing/ turns a ticket into a label: pure decisions, prompts and parsing, testable without I/O."""
    names = imports_of(path)
    bad = [n for n in names if ours(n) and not n.startswith(ROUTING_MAY)]
    bad += [n for n in names if n.split(".")[0] in ("db", "sqlalchemy", "anthropic", "onnxruntime", "tokenizers")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: routing/ may import only {ROUTING_MAY}"


PROVIDERS_MAY = (*ROUTING_MAY, "triage.providers", "triage.spend.pricing")


@pytest.mark.parametrize("path", modules("triage/providers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_providers_speak_to_models_not_to_the_database(path):
    names = imports_of(path)
    bad = [n for n in names if ours(n) and not n.startswith(PROVIDERS_MAY)]
    bad += [n for n in names if n.split(".")[0] in ("db", "sqlalchemy")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: providers/ may import only {PROVIDERS_MAY}"


# The parts below the use cases: they never reach up into the queue's use cases, the entry points or the
# services that hold a page's rules.
UPPER = ("triage.work", "triage.cli", "triage.review", "triage.labels", "triage.export", "triage.demo",
         "triage.evaluation")
LOWER_PARTS = ("triage/routing", "triage/providers", "triage/local", "triage/spend", "triage/quality")


@pytest.mark.parametrize("path", [p for part in LOWER_PARTS for p in modules(part)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_lower_parts_never_import_the_use_cases(path):
    bad = [n for n in imports_of(path) if n.startswith(UPPER)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: {UPPER} sit above it"


# The Anthropic SDK is spoken in providers/ only, and (until its requests go through the provider) by the
# Message Batches use case and the client factory of the classify use cases.
SDK_USERS = {"triage/work/batches.py", "triage/work/services.py"}  # make_client: moves behind the gate


@pytest.mark.parametrize("path", [p for folder in ("triage", "db", "dashboard") for p in modules(folder)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_providers_import_the_sdk(path):
    rel = str(path.relative_to(ROOT))
    if rel.startswith("triage/providers/") or rel in SDK_USERS:
        return
    bad = [n for n in imports_of(path) if n.split(".")[0] == "anthropic"]
    assert not bad, f"{rel} imports {bad}: the SDK belongs in triage/providers/"


def test_the_engine_top_level_stays_small():
    """Parts are folders: at most 20 modules directly in triage/ (a prefix family becomes a subpackage)."""
    top = sorted(p.name for p in (ROOT / "triage").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 20, top
    prefixes = [n.split("_")[0] for n in top if "_" in n]
    assert not [p for p in prefixes if f"{p}.py" in top], f"prefix families left in triage/: {top}"


@pytest.mark.parametrize("path", [p for folder in ("triage", "db", "dashboard", "tests", "bench")
                                  for p in modules(folder)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_db_modules_have_one_alias_convention(path):
    """`from db import queue` by its own name, or `as db_queue` where the name is taken: never `q`, `store`..."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [f"{a.name} as {a.asname}" for node in ast.walk(tree)
           if isinstance(node, ast.ImportFrom) and node.module == "db"
           for a in node.names if a.asname not in (None, f"db_{a.name}")]
    assert not bad, f"{path.relative_to(ROOT)}: from db import {bad}"


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from triage.routing.router import decide\nimport triage.domain\n")
    assert "triage.routing.router" in imports_of(bad) and "triage.domain" in imports_of(bad)
