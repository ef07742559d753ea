"""Pretrained causal LMs (Llama family) with their own tokenizers: from the hub / a local folder, or from a GGUF
file shipped in an installed package (offline; converted once, see grass.models.gguf).

Every builder returns the transformers model in eval mode; its projections are plain nn.Linear, so linear
capture sees them all (lm_head included).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from grass.data.hub import hub_unreachable
from grass.errors import GrassError
from grass.models.gguf import converted_folder

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise GrassError(f"model dtype {name!r} is not one of {sorted(DTYPES)}")
    return DTYPES[name]


def hub_causal_lm(name_or_path: str | None, dtype: str = "bfloat16", attn_implementation: str = "sdpa",
                  **kwargs) -> PreTrainedModel:
    """`AutoModelForCausalLM.from_pretrained(name_or_path, ...)` from the hub or a local folder, in eval mode.

    Without network it fails within seconds (grass.data.hub) with advice on using a local folder.
    """
    if not name_or_path:
        raise GrassError("model=hf_causal_lm needs model.name_or_path=<local folder or hub id> of a causal LM")
    dt = torch_dtype(dtype)
    unreachable = hub_unreachable(name_or_path)
    try:
        if unreachable:
            raise OSError(unreachable)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dt, attn_implementation=attn_implementation,
                                                     **kwargs)
    except (OSError, ValueError) as err:
        raise GrassError(
            f"could not fetch the model '{name_or_path}': {str(err).rstrip('.')}. Without network access, "
            "download the model's files (config.json, *.safetensors, tokenizer.json, tokenizer_config.json) "
            "elsewhere (gated models such as Llama 3.1 also need their license accepted on the hub and "
            "`hf auth login`), copy them to a local folder and set model.name_or_path=/path/to/that/folder "
            "(the dataset's tokenizer follows it), or pre-fill the Hugging Face cache and set HF_HUB_OFFLINE=1."
        ) from None
    return model.eval()


def gguf_causal_lm(package: str, gguf_file: str, cache_dir: str, dtype: str = "float32",
                   attn_implementation: str = "eager") -> PreTrainedModel:
    """The model of a GGUF file inside an installed package (dense, converted once into cache_dir), in eval mode."""
    dt = torch_dtype(dtype)
    folder = converted_folder(package, gguf_file, cache_dir)
    return _load_converted(folder, lambda: AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=dt, attn_implementation=attn_implementation)).eval()


def gguf_tokenizer(package: str, gguf_file: str, cache_dir: str):
    """The tokenizer of a GGUF file inside an installed package (converted once into cache_dir, with the model)."""
    folder = converted_folder(package, gguf_file, cache_dir)
    return _load_converted(folder, lambda: AutoTokenizer.from_pretrained(str(folder)))


def _load_converted(folder: Path, load):
    try:
        return load()
    except (OSError, ValueError, SafetensorError) as err:
        raise GrassError(f"the converted model folder {folder} cannot be read ({str(err).rstrip('.')}); delete "
                         "it and rerun to convert the GGUF file again") from None
