"""Offers (seed 004): games, offer templates with versions, and per-player offers."""
