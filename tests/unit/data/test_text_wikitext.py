"""data.wikitext: hub failures say what to do; blocking of hub rows follows run_clm (fake hub, no network)."""

import datasets
import pytest

from grass.data.text import group_into_blocks
from grass.data.tokenizer import gpt2_tokenizer
from grass.data.wikitext import load_wikitext2
from grass.errors import GrassError


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer(None)


def test_unreachable_hub_points_to_local_text(tok):
    # tests/conftest.py sets HF_DATASETS_OFFLINE=1: load_dataset fails at once instead of hanging
    with pytest.raises(
        GrassError, match="(?s)could not fetch the dataset Salesforce/wikitext.*dataset=local_text dataset.path="
    ):
        load_wikitext2(block_size=32, tokenizer=tok)


def _rows(n, tag):
    return [
        (
            ""
            if i % 4 == 3
            else f" = {tag} heading {i} = \n"
            if i % 4 == 0
            else f" Some {tag} text number {i} , with @-@ marks .\n"
        )
        for i in range(n)
    ]


@pytest.fixture
def fake_hub(monkeypatch):
    hub = {"train": {"text": _rows(50, "train")}, "validation": {"text": _rows(20, "valid")}}
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: calls.append((name, config)) or hub)
    return hub, calls


def test_blocks_follow_run_clm_grouping(fake_hub, tok):
    hub, calls = fake_hub
    data = load_wikitext2(block_size=8, tokenizer=tok, rows_per_group=10)
    assert calls == [("Salesforce/wikitext", "wikitext-2-raw-v1")]
    expected = []
    for start in range(0, 50, 10):
        ids = sum((tok.encode(t) for t in hub["train"]["text"][start : start + 10]), [])
        expected += group_into_blocks(ids, 8).tolist()
    assert data.train_ids.tolist() == expected  # every block, in order, no EOS between rows
    assert data.n_query > 0 and data.query_sources[0].startswith("validation/row")
    assert data.n_pretrain == 0 and data.pretrain_ids.shape == (0, 8)


def test_subsets_and_pretrain_are_disjoint(fake_hub, tok):
    data = load_wikitext2(block_size=8, n_train=10, n_query=3, n_pretrain=5, tokenizer=tok, split_seed=1)
    assert (data.n_train, data.n_query, data.n_pretrain) == (10, 3, 5)
    assert not set(data.train_sources) & set(data.pretrain_sources)
    with pytest.raises(GrassError, match="blocks requested"):
        load_wikitext2(block_size=8, n_query=10_000, tokenizer=tok)


def test_missing_split_is_named(monkeypatch, tok):
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: {"train": {"text": ["a b c"]}})
    with pytest.raises(GrassError, match="no 'validation' split"):
        load_wikitext2(block_size=2, tokenizer=tok)
