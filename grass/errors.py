"""The one exception type grass raises for bad input; run.py prints its message without a traceback."""


class GrassError(ValueError):
    """A user-facing error: bad config, missing artifact, shape mismatch, non-finite gradient."""
