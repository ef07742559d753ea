"""Test-wide settings: no network, W&B offline; fixtures that compose the real config and write a small corpus."""

import os
import random

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from grass.config import register_configs  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg(*overrides) -> the real composed config with experiment=tiny, writing under tmp_path."""
    register_configs()

    def _compose(*overrides: str, experiment: str = "tiny"):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name="config",
                           overrides=[f"experiment={experiment}", f"paths.root={tmp_path}/outputs", *overrides])

    return _compose


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    """A cache_dir holding SmolLM2-135M converted from its packaged GGUF file: one ~30 s conversion per session."""
    from omegaconf import OmegaConf

    from grass.models.gguf import converted_folder

    spec = OmegaConf.load(REPO / "conf" / "model" / "smollm2_135m.yaml")
    cache = tmp_path_factory.mktemp("gguf_cache")
    converted_folder(spec.package, spec.gguf_file, cache)
    return cache


@pytest.fixture
def no_network(monkeypatch):
    """The hub is unreachable (not merely in offline mode): every TCP connection is refused."""
    import socket

    from grass.data.hub import OFFLINE_VARS

    for var in OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)

    def refuse(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A saved Hugging Face Llama folder (1 layer, 16 wide, seeded random weights) with a byte-level BPE tokenizer of
    320 tokens trained on the fly (any text encodes): what `model=hf_causal_lm model.name_or_path=<folder>` and
    the LM quickstart load. Small vocabulary, so the CLI run on it takes seconds."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = "the of and to a in that was her his she he it had as with for not you be my at which house letter cat"
    backend.train_from_iterator([text] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


WORDS = ("the of and to a in that was her his she he it had as with for not you be my at which mr on all "
         "elizabeth darcy emma anne house sister letter walk morning evening brother father mother dear "
         "happy little great good young much time never could would should every thing think").split()


@pytest.fixture
def corpus(tmp_path):
    """Three small seeded pseudo-English documents (no download): enough for ~110 blocks of 32 tokens."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    rng = random.Random(0)
    for d in range(3):
        sentences = [" ".join(rng.choices(WORDS, k=rng.randint(5, 14))).capitalize() + "." for _ in range(160)]
        (folder / f"doc{d}.txt").write_text(" ".join(sentences), encoding="utf-8")
    return folder
