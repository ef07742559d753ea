"""grass: scalable training-data attribution with gradient sparsification and sparse projection."""

__version__ = "0.1.0"
