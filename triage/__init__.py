"""Triage engine: taxonomy, prompts, providers, router, pricing, ingest, services. No Streamlit here."""

__version__ = "0.1.0"
