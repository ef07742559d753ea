"""grass: scalable training-data attribution with gradient sparsification and sparse projection.

Python API (imported on first use, so `import grass` stays light for the CLI):
    grass.Attributor, grass.ClassifierTask, grass.CausalLMTask, grass.AttributionTask, grass.Target (your own
    scalar output per example: grass.targets); every error
    they raise for bad input is a grass.GrassError (a ValueError).
"""

__version__ = "0.1.0"
from grass.errors import GrassError  # noqa: E402 (light: no torch import)

__all__ = ["Attributor", "AttributionTask", "CausalLMTask", "ClassifierTask", "GrassError", "Target"]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str):
    if name in __all__:
        import grass.api

        return getattr(grass.api, name)
    raise AttributeError(f"module 'grass' has no attribute {name!r}")
