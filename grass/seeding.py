"""Stable seed derivation: the same (seed, tags) gives the same integer on every machine and run.

Python's built-in hash() is salted per process, so it must never be used for seeds.
"""

import hashlib


def derive_seed(seed: int, *tags: object) -> int:
    """A 63-bit seed from a global seed and any tags (layer name, side, checkpoint index)."""
    text = "\x1f".join([str(int(seed))] + [str(t) for t in tags])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, *tags: object, device: str = "cpu"):
    """A torch.Generator seeded by derive_seed(seed, *tags)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *tags))
    return g
