"""Config fingerprints: artifacts are keyed by a short hash of exactly the config that made them."""

import hashlib
import json

from omegaconf import DictConfig, ListConfig, OmegaConf


def to_plain(node):
    """A resolved, JSON-serialisable copy of a config node (or a plain value)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def fingerprint(parts: dict) -> str:
    """12 hex chars of a stable hash of `parts` (key order does not matter)."""
    text = json.dumps({k: to_plain(v) for k, v in parts.items()}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()
