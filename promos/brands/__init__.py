"""Brands of the discount generator: a brand is a code-pool client; its users get one code."""
