"""The README is a front page and docs/ the reference a static site (MkDocs) can build: every relative link and
#anchor resolves, every page is in mkdocs.yml's nav, and the README stays short."""

import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 300
PAGES = sorted(DOCS.glob("*.md"))
SOURCES = [ROOT / "README.md", *PAGES]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+).+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed (a `[x](y)` in code is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower-case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    """Every link's target, a link whose text wraps onto the next line included."""
    return [m.group(1) for m in LINK.finditer("\n".join(prose_lines(path.read_text(encoding="utf-8"))))]


def broken_links(path: Path) -> list[str]:
    """What is wrong with each relative link of one file (an empty list: nothing)."""
    problems = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: are not checked
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}: ({target})"
        if not dest.exists():
            problems.append(f"{where}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
            continue
        if path.parent == DOCS and not dest.is_relative_to(DOCS):
            problems.append(f"{where}: outside docs/, which a static site built from docs_dir cannot link to")
        if anchor:
            if dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{where}: no heading '#{anchor}' in {dest.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_a_broken_link_or_anchor_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A page\n\n## Stopping and crashes\n\n```\n# not a heading\n```\n", encoding="utf-8")
    page = docs / "b.md"
    page.write_text(
        "# B\n\n[ok](a.md#stopping-and-crashes) [ok](a.md) [ok](#b) `[code](nowhere.md)` [web](https://x.org/y#z)\n"
        "[gone](missing.md) [no heading](a.md#stopping) [code\ncomment](a.md#not-a-heading)\n",
        encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "DOCS", docs)
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "no file docs/missing.md" in problems[0]
    assert "no heading '#stopping'" in problems[1] and "#not-a-heading" in problems[2]


def test_slugs_follow_githubs_rules() -> None:
    assert slug("Few-shot (optional)") == "few-shot-optional"
    assert slug("Stopping and crashes") == "stopping-and-crashes"
    assert slug("`triage settings`: one setting") == "triage-settings-one-setting"
    assert slug("Who may do what?") == "who-may-do-what"


def test_every_page_is_in_the_mkdocs_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["site_name"] and config["docs_dir"] == "docs"

    def pages(nav: list[Any]) -> Iterator[str]:
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    listed = list(pages(config["nav"]))
    assert sorted(listed) == sorted(p.name for p in PAGES), "mkdocs.yml's nav and docs/*.md differ"
    assert all((DOCS / name).exists() for name in listed)


def test_every_page_starts_with_a_title() -> None:
    for page in PAGES:
        assert page.read_text(encoding="utf-8").startswith("# "), page.name


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "bash scripts/dashboard" in readme and "bash scripts/test" in readme  # the first two commands
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md") if t.startswith("docs/")}
    assert {p.resolve() for p in PAGES} - {(DOCS / "index.md").resolve()} <= linked, "a docs page the README omits"
