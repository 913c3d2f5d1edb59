import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from triage.demo import load_samples
from triage.local.embedder import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    from triage.local.embedder import shared

    return shared()


@pytest.fixture(scope="session")
def samples(embedder: Embedder) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    rows = load_samples()
    X = embedder.embed([r["text"] for r in rows])
    return rows, X, np.array([r["label"] for r in rows])


DIFFERENT_STYLE = Path(__file__).resolve().parents[3] / "bench" / "data" / "different_style.jsonl"


@pytest.fixture(scope="session")
def different_style(embedder: Embedder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300 banking/e-commerce messages by a second author (bench/data/README.md); never trained on."""
    rows = [json.loads(line) for line in DIFFERENT_STYLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (embedder.embed([r["text"] for r in rows]), np.array([r["label"] for r in rows]),
            np.array([r["style"] for r in rows]))
