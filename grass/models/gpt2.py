"""GPT-2 builders (SPEC 2.1): every Conv1D is converted to nn.Linear so linear-layer capture sees them.

`gpt2_tiny` is built from a GPT2Config with seeded random weights (tests, smoke runs, no network);
`gpt2` loads pretrained weights with `from_pretrained` from a hub name or a local folder.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from grass.data.hub import hub_unreachable
from grass.errors import GrassError
from grass.models.conv1d import convert_conv1d_to_linear


def gpt2_tiny(vocab_size: int | None = None, n_layer: int = 2, n_embd: int = 128, n_head: int = 4,
              n_positions: int = 256, seed: int = 0, attn_implementation: str = "eager") -> GPT2LMHeadModel:
    """A small randomly initialised GPT-2 LM (input_ids [B, T] -> logits [B, T, vocab_size]), in eval mode.

    The initialisation uses its own RNG state seeded by `seed`, so the same arguments give the same
    weights and the global torch RNG is left untouched. vocab_size None = GPT-2's 50,257 (the LM task
    passes the dataset's size instead, e.g. a compacted vocabulary).
    """
    vocab_size = 50257 if vocab_size is None else int(vocab_size)
    config = GPT2Config(vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                        n_positions=n_positions, bos_token_id=0, eos_token_id=0)
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = GPT2LMHeadModel(config)
    return convert_conv1d_to_linear(model).eval()


def gpt2(name_or_path: str = "gpt2", **kwargs) -> GPT2LMHeadModel:
    """Pretrained GPT-2 (`from_pretrained(name_or_path, **kwargs)`) with Conv1D -> Linear, in eval mode."""
    unreachable = hub_unreachable(name_or_path)
    try:
        if unreachable:
            raise OSError(unreachable)
        model = GPT2LMHeadModel.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        raise GrassError(
            f"could not fetch the GPT-2 model '{name_or_path}': {str(err).rstrip('.')}. "
            "Without network access, download the model files (config.json, model.safetensors) "
            "elsewhere, copy them to a local folder and set model.name_or_path=/path/to/that/folder "
            "(or pre-fill the Hugging Face cache and set HF_HUB_OFFLINE=1)."
        ) from None
    return convert_conv1d_to_linear(model).eval()
