"""Routers that serve the seed systems' HTTP APIs unchanged, on top of the same services."""
