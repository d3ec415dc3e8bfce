"""Promo codes: generated from a pattern, with a discount, uses left, expiry and bindings."""
