"""data.text: grouping token streams into blocks (HF group_texts), seeded splits, LM batches, decoding."""

import pytest
import torch
from torch.utils.data import DataLoader

from grass.data.text import (
    BlockDataset,
    TextBlocks,
    blocks_from_documents,
    decode_block,
    group_into_blocks,
    lm_batch,
    split_indices,
)
from grass.errors import GrassError


def hf_group_texts(examples: dict, block_size: int) -> dict:
    """HF run_clm's group_texts, verbatim in substance: concatenate, drop the tail, cut."""
    concatenated = {k: sum(examples[k], []) for k in examples}
    total = (len(concatenated["input_ids"]) // block_size) * block_size
    return {k: [t[i : i + block_size] for i in range(0, total, block_size)] for k, t in concatenated.items()}


def test_group_into_blocks_drops_the_ragged_tail():
    blocks = group_into_blocks(list(range(23)), 5)
    assert blocks.shape == (4, 5) and blocks.dtype == torch.long
    assert blocks.reshape(-1).tolist() == list(range(20))
    assert group_into_blocks(torch.arange(4), 5).shape == (0, 5)
    with pytest.raises(GrassError, match="block_size"):
        group_into_blocks([1, 2], 0)


def test_documents_joined_with_eos_and_labelled_by_source():
    docs = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    blocks, sources = blocks_from_documents(docs, ["a", "b", "c"], 4, eos_token_id=0)
    # stream: 1 2 3 0 | 4 5 6 7 | 8 0 9 0
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 6, 7], [8, 0, 9, 0]]
    assert sources == ["a:0+4", "b:0+4", "b:4+4"]


def test_grouping_per_run_of_rows_matches_hf_map_batches():
    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(1, 100, (int(n),), generator=g).tolist() for n in torch.randint(0, 30, (25,), generator=g)]
    ours, sources = blocks_from_documents(docs, [f"r{i}" for i in range(25)], 8, eos_token_id=None, docs_per_group=10)
    expected = []
    for start in range(0, 25, 10):  # datasets.map(batched=True, batch_size=10)
        expected += hf_group_texts({"input_ids": docs[start : start + 10]}, 8)["input_ids"]
    assert ours.tolist() == expected
    whole, _ = blocks_from_documents(docs, [f"r{i}" for i in range(25)], 8)
    assert whole.tolist() == hf_group_texts({"input_ids": docs}, 8)["input_ids"]
    assert len(whole) >= len(ours)  # one tail dropped instead of three
    assert len(sources) == len(ours) and all(s.startswith("r") for s in sources)


def test_source_offsets_point_at_the_block_start():
    docs = [list(range(100, 113)), list(range(200, 230))]
    blocks, sources = blocks_from_documents(docs, ["x", "y"], 6, eos_token_id=0)
    for block, src in zip(blocks.tolist(), sources):
        doc, rest = src.split(":")
        offset = int(rest.split("+")[0])
        stream = docs[0 if doc == "x" else 1] + [0]
        assert block[0] == stream[offset]


def test_split_is_seeded_disjoint_sorted_and_checked():
    a = split_indices(50, [10, 20, 5], seed=3, tag="t")
    b = split_indices(50, [10, 20, 5], seed=3, tag="t")
    c = split_indices(50, [10, 20, 5], seed=4, tag="t")
    assert [len(p) for p in a] == [10, 20, 5]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    flat = torch.cat(a)
    assert len(set(flat.tolist())) == 35
    assert all(torch.equal(p, p.sort().values) for p in a)
    with pytest.raises(GrassError, match="36 blocks requested but the corpus has only 35"):
        split_indices(35, [10, 20, 6], seed=0, tag="t")
    with pytest.raises(GrassError, match="non-negative"):
        split_indices(35, [-1, 2], seed=0, tag="t")


def test_lm_batch_masks_padding_in_labels():
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    batch = lm_batch(ids, mask)
    assert batch["labels"].tolist() == [[5, 6, 7, 8], [9, 10, -100, -100]]
    assert lm_batch(ids)["attention_mask"].tolist() == [[1] * 4] * 2


def test_block_dataset_collates_to_batches():
    ids = torch.arange(24).reshape(6, 4)
    data = TextBlocks("t", ids, torch.ones_like(ids), ids[:2], torch.ones(2, 4, dtype=torch.long),
                      ids[:0], torch.ones(0, 4, dtype=torch.long), vocab_size=30, eos_token_id=0)
    assert (data.n_train, data.n_query, data.n_pretrain, data.block_size) == (6, 2, 0, 4)
    rows = torch.tensor([True, False, True, False, False, True])
    batch = next(iter(DataLoader(data.train_dataset(rows), batch_size=8)))
    assert batch["input_ids"].tolist() == ids[rows].tolist()
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    with pytest.raises(GrassError, match="differ in shape"):
        BlockDataset(ids, torch.ones(6, 3))


class _CharTokenizer:
    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_decode_block_drops_padding_and_shortens():
    ids = torch.tensor([ord(c) for c in "hello world"] + [0, 0])
    mask = torch.tensor([1] * 11 + [0, 0])
    assert decode_block(_CharTokenizer(), ids, mask) == "hello world"
    assert decode_block(_CharTokenizer(), ids, mask, max_chars=8) == "hello..."
