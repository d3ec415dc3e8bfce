"""Promos: a self-hosted promotions service."""

__version__ = "0.1.0"
