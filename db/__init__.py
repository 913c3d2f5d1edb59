"""Persistence: SQLAlchemy 2 models, queries and Alembic migrations. The only package that knows SQL."""
