"""conf/model/llama3_8b.yaml: Llama 3.1 8B Instruct from the hub (bf16); without network it fails within
seconds with advice, a local folder loads instead, and the dataset's tokenizer follows the model."""

import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from grass.capture.linear import select_linear_layers
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.models.build import build_lm, is_pretrained

HUB_NAME = "meta-llama/Llama-3.1-8B-Instruct"
LM = ("model=llama3_8b", "dataset=local_text")  # no deletions: experiment=tiny sizes its MLP via model=mlp_tiny


def test_config_is_the_pretrained_hub_model_with_its_own_tokenizer(compose_cfg):
    cfg = compose_cfg(*LM)
    assert cfg.model.name_or_path == HUB_NAME and cfg.model.dtype == "bfloat16" and is_pretrained(cfg.model)
    assert cfg.dataset.tokenizer == HUB_NAME and list(cfg.capture.layers) == ["*"]
    moved = compose_cfg(*LM, "model.name_or_path=/models/llama31")
    assert moved.dataset.tokenizer == "/models/llama31"  # one setting moves model and tokenizer


def test_paper_scale_experiment_takes_it_with_1024_token_blocks(compose_cfg):
    cfg = compose_cfg("model=llama3_8b", "dataset.block_size=1024", "hardware=gpu", experiment="gpt2_wikitext")
    assert (cfg.model.name, cfg.dataset.name, cfg.dataset.block_size) == ("llama3_8b", "wikitext2", 1024)
    assert cfg.dataset.tokenizer == HUB_NAME and cfg.compressor.name == "factgrass"


def test_unreachable_hub_fails_fast_with_advice(compose_cfg, no_network, tmp_path):
    (tmp_path / "a.txt").write_text("Some text. " * 50, encoding="utf-8")
    cfg = compose_cfg(*LM, f"dataset.path={tmp_path}")
    start = time.perf_counter()
    with pytest.raises(GrassError, match=f"(?s)could not fetch the model '{HUB_NAME}'.*unreachable.*"
                                         "model.name_or_path=/path/to/that/folder"):
        build_lm(cfg.model)
    with pytest.raises(GrassError, match=f"(?s)could not fetch the tokenizer '{HUB_NAME}'.*unreachable.*"
                                         "model.name_or_path"):
        instantiate_node(cfg.dataset, "dataset")
    assert time.perf_counter() - start < 5


def test_offline_mode_without_a_cached_copy_says_the_same(compose_cfg):
    # tests/conftest.py sets HF_HUB_OFFLINE=1: transformers looks only in its (empty) cache
    with pytest.raises(GrassError, match=f"(?s)could not fetch the model '{HUB_NAME}'.*local folder"):
        build_lm(compose_cfg(*LM).model)


def test_a_local_folder_loads_in_bf16(compose_cfg, tmp_path):
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    model = build_lm(compose_cfg(*LM, f"model.name_or_path={tmp_path / 'llama'}").model)
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert model.dtype == torch.bfloat16 and len(select_linear_layers(model)) == 7 + 1


def test_unknown_dtype_is_a_clear_error(compose_cfg):
    with pytest.raises(GrassError, match="model dtype 'bf16' is not one of"):
        build_lm(compose_cfg(*LM, "model.dtype=bf16").model)
