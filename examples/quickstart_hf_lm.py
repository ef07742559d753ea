"""Quickstart: which of your training texts most influenced a Hugging Face causal LM's loss on your query texts.

    python examples/quickstart_hf_lm.py                      # SmolLM2-135M from the hub (needs network once)
    python -c "import runpy; runpy.run_path('examples/quickstart_hf_lm.py', run_name='x')['main']('/path/to/folder')"

Any causal LM whose projections are nn.Linear (Llama, Qwen, Mistral, SmolLM2, ... from the hub or a local folder
with config.json, *.safetensors and the tokenizer files). FactGraSS compresses each linear layer's per-example
gradient to K = proj_dim features without ever forming it; influence uses the empirical Fisher per layer.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer

import grass
from grass.models.causal_lm import hub_causal_lm

TRAIN_TEXTS = [
    "The cat sat on the mat and looked out of the window.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "A kitten chased a ball of yarn across the kitchen floor.",
    "The committee approved the budget for the next fiscal year.",
    "Dogs and cats are the most popular pets in many countries.",
    "Bond yields rose as investors expected higher inflation.",
]
QUERY_TEXTS = ["My cat sleeps on the sofa all afternoon.", "The bank announced new rates for savings accounts."]


def batches(tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[dict[str, torch.Tensor]]:
    """[{input_ids [B, T], attention_mask [B, T]}] in order; padding is never scored (attention_mask 0)."""
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return [{"input_ids": enc["input_ids"][i:i + batch_size], "attention_mask": enc["attention_mask"][i:i + batch_size]}
            for i in range(0, len(texts), batch_size)]


def main(name_or_path: str = "HuggingFaceTB/SmolLM2-135M", train_texts: list[str] = TRAIN_TEXTS,
         query_texts: list[str] = QUERY_TEXTS, max_length: int = 32, batch_size: int = 4,
         compressor: str = "factgrass", proj_dim: int = 64, damping: float = 1e-3, tda: str = "if_efim",
         device: str | None = None) -> torch.Tensor:
    """Scores [len(train_texts), len(query_texts)] (positive: the train text lowered the query's loss)."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = hub_causal_lm(name_or_path, dtype="float32", attn_implementation="eager")

    attributor = grass.Attributor(grass.CausalLMTask(model), compressor=compressor, proj_dim=proj_dim, tda=tda,
                                  damping=damping, device=device)
    attributor.cache(batches(tokenizer, train_texts, batch_size, max_length))
    scores = attributor.attribute(batches(tokenizer, query_texts, batch_size, max_length))
    _, top = attributor.top_k(scores, k=min(2, len(train_texts)))
    for q, text in enumerate(query_texts):
        print(f"{text!r} <- {[train_texts[i] for i in top[:, q].tolist()]}")
    return scores


if __name__ == "__main__":
    main()
