"""Compressors: seeded linear maps R^in_dim -> R^out_dim applied row-wise (SPEC section 3)."""
