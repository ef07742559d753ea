"""conf/model/gpt2*.yaml and conf/dataset/{local_text,wikitext2}.yaml compose and instantiate (offline)."""

import pytest
import torch

from grass.data.text import TextBlocks
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.models.build import build_lm

LM_OVERRIDES = ()  # experiment=tiny sizes its MLP through model=mlp_tiny, so another model needs no deletions


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("The quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    return folder


def test_local_text_and_gpt2_tiny_compose(compose_cfg, corpus):
    cfg = compose_cfg("model=gpt2_tiny", "dataset=local_text", *LM_OVERRIDES, f"dataset.path={corpus}",
                      "dataset.block_size=32", "dataset.n_pretrain=10", "dataset.n_train=20", "dataset.n_query=5")
    data = instantiate_node(cfg.dataset, "dataset")
    assert isinstance(data, TextBlocks) and data.name == "local_text"
    assert (data.n_pretrain, data.n_train, data.n_query, data.block_size) == (10, 20, 5, 32)
    model = instantiate_node(cfg.model, "model")
    assert model.config.n_positions == 32 and model.config.vocab_size == data.vocab_size == 50257
    assert not any(type(m).__name__ == "Conv1D" for m in model.modules())
    with torch.no_grad():
        logits = model(input_ids=data.query_ids[:2], attention_mask=data.query_mask[:2]).logits
    assert logits.shape == (2, 32, 50257)


def test_default_local_text_path_is_the_fetched_corpus(compose_cfg):
    cfg = compose_cfg("model=gpt2_tiny", "dataset=local_text", *LM_OVERRIDES)
    assert cfg.dataset.path == "data_cache/janeausten" and cfg.dataset.block_size == 128
    assert cfg.dataset.n_pretrain + cfg.dataset.n_train + cfg.dataset.n_query <= 7760  # blocks of 128 there
    assert cfg.model.n_positions == 128


def test_hub_configs_fail_offline_with_advice(compose_cfg):
    cfg = compose_cfg("model=gpt2", "dataset=wikitext2", *LM_OVERRIDES)
    assert cfg.dataset.block_size == 512 and cfg.model.name_or_path == "openai-community/gpt2"
    with pytest.raises(GrassError, match="dataset=local_text"):
        instantiate_node(cfg.dataset, "dataset")
    with pytest.raises(GrassError, match="model.name_or_path"):
        build_lm(cfg.model)
