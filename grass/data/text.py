"""Tokenized text as fixed-length blocks (pretrain / train / query), and the helpers that make and read them.

Blocking follows HF run_clm's `group_texts`: tokenized documents are concatenated (optionally with
an EOS token after each) and cut into `block_size` pieces; the ragged tail is dropped, so every
block is full and its attention mask is all ones. The masks are still carried, so padded blocks
(label -100 on padding) work everywhere a block does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from grass.errors import GrassError
from grass.seeding import generator


@dataclass
class TextBlocks:
    """Token blocks of one corpus.  *_ids [n, T] int64, *_mask [n, T] int64 (1 = real token).

    pretrain_*: blocks for training a from-scratch base model (gpt2_tiny) before the subset
    fine-tuning; 0 rows when the base model is pretrained elsewhere (GPT-2 small).
    *_sources: one label per block, "<document>:<first token offset>+<tokens>" (a block that runs
    into the next document names only the first), for reports.
    tokenizer_name: what `gpt2_tokenizer` rebuilds the tokenizer from (None = offline GPT-2 BPE).
    vocab_map: [vocab_size] tokenizer id of each model token id when the vocabulary was compacted to the
    tokens the corpus uses (`compact_vocabulary`); None = model ids are tokenizer ids.
    """

    name: str
    train_ids: Tensor
    train_mask: Tensor
    query_ids: Tensor
    query_mask: Tensor
    pretrain_ids: Tensor
    pretrain_mask: Tensor
    vocab_size: int
    eos_token_id: int | None
    tokenizer_name: str | None = None
    train_sources: list[str] | None = None
    query_sources: list[str] | None = None
    pretrain_sources: list[str] | None = None
    vocab_map: Tensor | None = None

    @property
    def n_train(self) -> int:
        return len(self.train_ids)

    @property
    def n_query(self) -> int:
        return len(self.query_ids)

    @property
    def n_pretrain(self) -> int:
        return len(self.pretrain_ids)

    @property
    def block_size(self) -> int:
        return int(self.train_ids.shape[1])

    def train_dataset(self, rows: Tensor | None = None) -> "BlockDataset":
        """The train blocks (or the rows selected by a bool mask / index tensor) as LM batches."""
        ids, mask = (self.train_ids, self.train_mask) if rows is None else (self.train_ids[rows], self.train_mask[rows])
        return BlockDataset(ids, mask)

    def query_dataset(self) -> "BlockDataset":
        return BlockDataset(self.query_ids, self.query_mask)

    def pretrain_dataset(self) -> "BlockDataset":
        return BlockDataset(self.pretrain_ids, self.pretrain_mask)


def lm_batch(input_ids: Tensor, attention_mask: Tensor | None = None) -> dict[str, Tensor]:
    """{input_ids, attention_mask, labels} for an HF causal LM; labels = input_ids, -100 on padding."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "labels": input_ids.masked_fill(attention_mask == 0, -100)}


class BlockDataset(Dataset):
    """Rows of ids [n, T] / mask [n, T] as lm_batch dicts; the default collate stacks them to [B, T]."""

    def __init__(self, ids: Tensor, mask: Tensor) -> None:
        if ids.shape != mask.shape:
            raise GrassError(f"block ids {list(ids.shape)} and attention mask {list(mask.shape)} differ in shape")
        self.ids, self.mask = ids, mask

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return lm_batch(self.ids[i], self.mask[i])


def group_into_blocks(token_ids: Sequence[int] | Tensor, block_size: int) -> Tensor:
    """One token stream [N] -> blocks [N // block_size, block_size] int64; the ragged tail is dropped."""
    if block_size <= 0:
        raise GrassError(f"block_size must be positive, got {block_size}")
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    n = len(ids) // block_size
    return ids[: n * block_size].reshape(n, block_size)


def blocks_from_documents(docs: Sequence[Sequence[int]], names: Sequence[str], block_size: int,
                          eos_token_id: int | None = None, docs_per_group: int | None = None
                          ) -> tuple[Tensor, list[str]]:
    """Tokenized documents -> (blocks [n, block_size] int64, one source label per block).

    Each document is followed by `eos_token_id` when given (none when None, as run_clm does for
    WikiText lines). `docs_per_group`: concatenate and block each run of that many documents on its
    own, dropping each run's tail (run_clm's `map(batched=True)` groups 1,000 rows); None = one run.
    """
    if len(docs) != len(names):
        raise GrassError(f"{len(docs)} documents but {len(names)} names")
    step = len(docs) if docs_per_group is None else int(docs_per_group)
    if step <= 0 and len(docs):
        raise GrassError(f"docs_per_group must be positive, got {docs_per_group}")
    eos = [] if eos_token_id is None else [int(eos_token_id)]
    blocks, sources = [], []
    for start in range(0, len(docs), max(step, 1)):
        members = range(start, min(start + step, len(docs)))
        pieces = [torch.as_tensor(list(docs[d]) + eos, dtype=torch.long) for d in members]
        group = group_into_blocks(torch.cat(pieces), block_size)
        # which document each block starts in, and at which token of it
        lens = torch.tensor([len(p) for p in pieces], dtype=torch.long)
        ends = torch.cumsum(lens, 0)
        first = torch.arange(len(group)) * block_size
        owner = torch.searchsorted(ends, first, right=True)
        offset = first - (ends - lens)[owner]
        blocks.append(group)
        sources += [f"{names[members[o]]}:{off}+{block_size}" for o, off in zip(owner.tolist(), offset.tolist())]
    if not blocks:
        return torch.zeros(0, block_size, dtype=torch.long), []
    return torch.cat(blocks), sources


def split_indices(n_blocks: int, counts: Sequence[int], seed: int, tag: str) -> list[Tensor]:
    """Disjoint seeded index sets of the given sizes drawn from range(n_blocks), each sorted.  -> [LongTensor]"""
    if any(int(c) < 0 for c in counts):
        raise GrassError(f"{tag}: block counts must be non-negative, got {list(counts)}")
    if sum(counts) > n_blocks:
        raise GrassError(f"{tag}: {' + '.join(str(c) for c in counts)} = {sum(counts)} blocks requested but the "
                         f"corpus has only {n_blocks}; lower the counts or the block size, or add text")
    order = torch.randperm(n_blocks, generator=generator(seed, tag, "block_split"))
    parts, start = [], 0
    for c in counts:
        parts.append(order[start : start + int(c)].sort().values)
        start += int(c)
    return parts


def take(blocks: Tensor, sources: list[str], idx: Tensor) -> tuple[Tensor, Tensor, list[str]]:
    """(ids [k, T], all-ones mask [k, T], sources) of the blocks at idx."""
    ids = blocks[idx]
    return ids, torch.ones_like(ids), [sources[i] for i in idx.tolist()]


def compact_vocabulary(parts: Sequence[Tensor], keep: Sequence[int] = ()) -> tuple[list[Tensor], Tensor]:
    """Renumber token ids to 0..V'-1 over the tokens used in `parts` (plus `keep`, e.g. EOS).

    -> (the parts with new ids, vocab_map [V'] = tokenizer id of each new id, sorted). A model over the
    corpus's own vocabulary has a V'-row embedding and lm_head instead of the tokenizer's full one
    (GPT-2 BPE: 50,257 rows; Jane Austen uses about 11,000), which is what makes CPU-scale LMs cheap.
    """
    flat = [p.reshape(-1) for p in parts] + [torch.as_tensor(list(keep), dtype=torch.long)]
    vocab_map = torch.unique(torch.cat(flat))
    return [torch.searchsorted(vocab_map, p) for p in parts], vocab_map


def decode_block(tokenizer, ids: Tensor, mask: Tensor | None = None, max_chars: int | None = None,
                 vocab_map: Tensor | None = None) -> str:
    """Text of one block (ids [T]; padding dropped), cut to max_chars with an ellipsis, for reports.

    vocab_map: TextBlocks.vocab_map when the block's ids were compacted (mapped back before decoding).
    """
    ids = torch.as_tensor(ids).reshape(-1)
    if mask is not None:
        ids = ids[torch.as_tensor(mask).reshape(-1) != 0]
    if vocab_map is not None:
        ids = vocab_map[ids]
    text = tokenizer.decode(ids.tolist())
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    return text
