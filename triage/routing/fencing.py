"""Ticket text as data: the block tags the project puts around it (`<ticket>`, `<example>`), found in a text however
they are spelt, and neutralised so a text can neither open nor close a block.

A tag is looked for on the text's *fold*: each character decomposed (NFKD: fullwidth and small forms, compatibility
characters), case-folded and mapped from common look-alikes (Cyrillic and Greek letters, angle brackets and slashes
NFKD leaves alone), with every character a reader does not see, or sees as part of its neighbour, made a marker
the tag pattern skips: format (Cf: LRM, zero-width, tag characters U+E0000..), control (Cc), combining marks
(Mn, Me: CGJ, variation selectors), Hangul fillers, private-use and unassigned code points. Each folded
character remembers the character of the text it came from, so only that character changes: a tag's `<` (and
its `>`) becomes `(` (`)`), the rest of the text is kept as written (accents, CJK, emoji included).
"""

from __future__ import annotations

import functools
import re
import unicodedata

TAG_NAMES = ("ticket", "example")  # the blocks of a request (prompts.user_message, prompts.examples_block)
HIDDEN = "\x01"  # what an unseen character folds to
_UNSEEN_CATEGORIES = frozenset({"Cf", "Cc", "Mn", "Me", "Cn", "Co", "Cs"})
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters (Lo) that render as nothing
_LOOKALIKE = str.maketrans({
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y", "\u0445": "x",
    "\u0456": "i", "\u0458": "j", "\u043a": "k", "\u0442": "t", "\u043c": "m", "\u03b9": "i", "\u03ba": "k",
    "\u03b5": "e", "\u03bf": "o", "\u03c4": "t", "\u03c1": "p", "\u03c7": "x", "\u0131": "i", "\u0269": "i",
    "\u2039": "<", "\u3008": "<", "\u27e8": "<", "\u02c2": "<", "\u2329": "<", "\u276e": "<", "\u2264": "<",
    "\u203a": ">", "\u3009": ">", "\u27e9": ">", "\u02c3": ">", "\u232a": ">", "\u276f": ">", "\u2265": ">",
    "\u2044": "/", "\u2215": "/", "\u29f8": "/", "\u2571": "/",
})
# Characters whose fold holds a "<": a text without any needs no folding (tests check the list is complete)
OPENERS = frozenset("<\ufe64\uff1c\u226e\u2039\u3008\u27e8\u02c2\u2329\u276e\u2264\u2270\ufe3f")

_NAMES = "|".join(f"{HIDDEN}*".join(name) for name in TAG_NAMES)
_TAG_RE = re.compile(rf"<[\s{HIDDEN}]*(?:/[\s{HIDDEN}]*)?(?:{_NAMES})(?!\w)[^<>]{{0,200}}>?")


def _unseen(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSEEN_CATEGORIES or ch in _FILLERS


@functools.lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """One character as tags are looked for: HIDDEN when unseen, else its compatibility decomposition, case-folded
    and de-confused, its combining marks HIDDEN (so `é` folds to `e` and a marker)."""
    if _unseen(ch):
        return HIDDEN
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold()).translate(_LOOKALIKE)
    return "".join(HIDDEN if _unseen(c) else c for c in folded)


def fold(text: str) -> tuple[str, list[int]]:
    """The text's fold and, for each folded character, the index of the text's character it came from."""
    parts = [fold_char(ch) for ch in text]
    origin = [i for i, part in enumerate(parts) for _ in part]
    return "".join(parts), origin


_ASCII_PLAIN = str.maketrans({chr(c): " " if chr(c).isspace() else None for c in (*range(32), 127)})


def plain(text: str) -> str:
    """The text's fold for looking for words: unseen characters dropped, whitespace kept as spaces (so `la\u200bbel`
    reads `label` and `ticket\n3` reads `ticket 3`)."""
    if text.isascii():  # the common case, at C speed: the same result
        return text.translate(_ASCII_PLAIN).lower()
    return "".join(" " if ch.isspace() else fold_char(ch).replace(HIDDEN, "") for ch in text)


def has_tag(text: str) -> bool:
    """Whether the text spells a block tag (opening or closing, any of TAG_NAMES) in any spelling."""
    return not OPENERS.isdisjoint(text) and _TAG_RE.search(fold(text)[0]) is not None


def neutralise(text: str) -> str:
    """The text with every opening or closing block tag, however spelt, made round: its `<` becomes `(` and its
    `>` (when within 200 characters) `)`. Every other character is kept as written."""
    if OPENERS.isdisjoint(text):
        return text
    folded, origin = fold(text)
    chars = list(text)
    for m in _TAG_RE.finditer(folded):
        chars[origin[m.start()]] = "("
        if folded[m.end() - 1] == ">":
            chars[origin[m.end() - 1]] = ")"
    return "".join(chars)
