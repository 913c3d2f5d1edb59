import numpy as np
import pytest

from triage.demo import load_samples


@pytest.fixture(scope="session")
def embedder():
    from triage.local.embedder import shared

    return shared()


@pytest.fixture(scope="session")
def samples(embedder):
    rows = load_samples()
    X = embedder.embed([r["text"] for r in rows])
    return rows, X, np.array([r["label"] for r in rows])
