"""Alembic migrations of the application schema (see ``env.py``)."""
