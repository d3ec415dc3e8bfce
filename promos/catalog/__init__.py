"""The catalog's promotions: specials (a product on offer) and upgrade programs."""
