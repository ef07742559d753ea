"""Instantiate a `_target_` config node that also carries a display `name` key."""

from collections.abc import Mapping

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from grass.errors import GrassError


def plain_node(node) -> dict:
    """A resolved plain-dict copy of a config node (DictConfig or mapping)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return dict(node)
    raise GrassError(f"expected a config mapping with a _target_, got {type(node).__name__}")


def instantiate_node(node, what: str, **kwargs):
    """hydra.utils.instantiate(node without `name`, **kwargs), with one clear error naming `what`."""
    spec = plain_node(node)
    spec.pop("name", None)
    target = spec.get("_target_")
    if not isinstance(target, str) or not target:
        raise GrassError(f"{what}: config needs a `_target_` naming a class, got {target!r}")
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, GrassError):  # the builder's own message is already the clear one
            raise e.__cause__ from None
        raise GrassError(f"{what}: cannot build '{target}': {e}") from None
