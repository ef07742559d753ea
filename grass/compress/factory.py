"""Build a compressor from its config node (conf/compressor/*.yaml) once the dimensions are known."""

from __future__ import annotations

from grass.compress.base import Compressor
from grass.errors import GrassError
from grass.instantiate import instantiate_node, plain_node


def compressor_name(node) -> str:
    """The method's short name: the node's `name`, else the class name of its `_target_`."""
    node = plain_node(node)
    name = node.get("name")
    if name:
        return str(name)
    target = node.get("_target_")
    if target:
        return str(target).rsplit(".", 1)[-1].lower()
    raise GrassError(f"compressor config has neither `name` nor `_target_`: {node}")


def build_compressor(node, in_dim: int, out_dim: int, seed: int) -> Compressor:
    """Instantiate node (a Hydra partial without in_dim/out_dim/seed) as a Compressor [B, in_dim] -> [B, k]."""
    label = f"compressor '{compressor_name(node)}'"
    if plain_node(node).get("kind") == "factorized":
        raise GrassError(f"{label} is factorized: it compresses linear layers from their input and output-gradient "
                         "factors (capture `linear`), not whole-model flat gradients; choose a flat compressor "
                         "(identity, gaussian, rademacher, fjlt, sjlt, random_mask, grass) for this model")
    # a partial: the dimensions are only known now
    factory = instantiate_node({**plain_node(node), "_partial_": True}, label)
    try:
        compressor = factory(in_dim=int(in_dim), out_dim=int(out_dim), seed=int(seed))
    except TypeError as err:
        raise GrassError(f"{label} rejected its arguments: {err}") from None
    if not isinstance(compressor, Compressor):
        raise GrassError(f"{label} built a {type(compressor).__name__}, not a Compressor")
    return compressor
