"""Test helpers: fakes at the boundaries.

A real HTTP server speaking the Messages API, scripted providers, actors, services, a Streamlit server.
"""
