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


ABSENT = "<absent>"


def normalize(parts) -> dict:
    """The JSON round trip of a fingerprint dict (config nodes resolved, tuples as lists), as files hold it."""
    plain = to_plain(parts)
    if not isinstance(plain, dict):
        raise TypeError(f"a fingerprint must be a mapping, got {type(plain).__name__}")
    return json.loads(json.dumps({str(k): to_plain(v) for k, v in plain.items()}, sort_keys=True, default=str))


def flatten(node, prefix: str = "") -> dict:
    """Nested dicts to dotted keys: {"compressor": {"proj_dim": 4}} -> {"compressor.proj_dim": 4}."""
    if not isinstance(node, dict) or (prefix and not node):
        return {prefix: node}
    out = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def describe_diff(old: dict, new: dict, labels: tuple[str, str] = ("cache", "now")) -> list[str]:
    """'key: <old label>=<old>, <new label>=<new>' for every dotted key that differs or exists on one side only."""
    a_flat, b_flat = flatten(normalize(old)), flatten(normalize(new))
    lines = []
    for key in sorted(set(a_flat) | set(b_flat)):
        a, b = a_flat.get(key, ABSENT), b_flat.get(key, ABSENT)
        if a != b:
            lines.append(f"{key}: {labels[0]}={_show(a)}, {labels[1]}={_show(b)}")
    return lines


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)
