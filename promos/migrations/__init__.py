"""Alembic migrations, run with the app's own settings (``promos migrate``)."""
