"""The offline tier: all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings and a small linear head, on the CPU."""
