"""WikiText-2 (raw) from the Hugging Face hub as GPT-2 blocks, the way the paper's Table 2 run made them.

Train split -> train blocks, validation split -> query blocks. Blocking mirrors HF run_clm: every
dataset row (a line of an article, empty rows included) is tokenized without special tokens, rows
are concatenated without separators in runs of 1,000 (its `map(batched=True)` batch) and each run's
ragged tail is dropped; at 512 tokens this gives the reference's 4,656 train and ~481 query blocks.
"""

from __future__ import annotations

import logging

from grass.data.hub import hub_unreachable
from grass.data.text import TextBlocks, blocks_from_documents, split_indices, take
from grass.data.tokenizer import resolve_tokenizer
from grass.errors import GrassError

log = logging.getLogger(__name__)


def _fetch_error(hub_name: str, config: str, why: str) -> GrassError:
    return GrassError(
        f"could not fetch the dataset {hub_name} ({config}) from the Hugging Face hub ({why}); without "
        "network access use dataset=local_text dataset.path=<a .txt file or folder> (e.g. Jane Austen's "
        "novels from `make corpus`), or pre-fill the Hugging Face datasets cache and set HF_DATASETS_OFFLINE=1"
    )


def _fetch(hub_name: str, config: str):
    unreachable = hub_unreachable(hub_name)
    if unreachable:
        raise _fetch_error(hub_name, config, unreachable)
    try:
        import datasets

        return datasets.load_dataset(hub_name, config)
    except Exception as e:  # network, hub and offline-mode failures all mean the same thing to the user
        raise _fetch_error(hub_name, config, f"{type(e).__name__}: {str(e).strip()[:300]}") from None


def _split_rows(ds, split: str, hub_name: str) -> list[str]:
    if split not in ds:
        raise GrassError(f"{hub_name} has no '{split}' split (it has {list(ds)})")
    return list(ds[split]["text"])


def load_wikitext2(block_size: int = 512, n_train: int | None = None, n_query: int | None = None,
                   tokenizer=None, hub_name: str = "Salesforce/wikitext", config: str = "wikitext-2-raw-v1",
                   n_pretrain: int = 0, split_seed: int = 0, rows_per_group: int | None = 1000,
                   name: str = "wikitext2") -> TextBlocks:
    """Train blocks [n_train, block_size] and query blocks [n_query, block_size] of WikiText.

    n_train / n_query None: every block of the split; a number: a seeded random subset (sorted).
    n_pretrain: blocks of the train split held out (disjoint from train) to pretrain a small base model.
    tokenizer: None (GPT-2 BPE, offline), a hub name / local folder, or a tokenizer object.
    """
    ds = _fetch(hub_name, config)
    tok, tok_name = resolve_tokenizer(tokenizer)
    parts = {}
    for split in ("train", "validation"):
        rows = _split_rows(ds, split, hub_name)
        docs = tok(rows, add_special_tokens=False, verbose=False)["input_ids"]
        parts[split] = blocks_from_documents(docs, [f"{split}/row{i}" for i in range(len(rows))], block_size,
                                             eos_token_id=None, docs_per_group=rows_per_group)
        log.info("%s %s: %d rows, %d blocks of %d", name, split, len(rows), len(parts[split][0]), block_size)
    blocks, sources = parts["train"]
    n_train = len(blocks) - n_pretrain if n_train is None else n_train
    pre, train = split_indices(len(blocks), [n_pretrain, n_train], split_seed, f"{name}/train")
    q_blocks, q_sources = parts["validation"]
    (query,) = split_indices(
        len(q_blocks), [len(q_blocks) if n_query is None else n_query], split_seed, f"{name}/query"
    )
    if len(train) == 0 or len(query) == 0:
        raise GrassError(
            f"dataset {name}: no train or no query blocks ({len(train)}, {len(query)}); "
            f"check n_train, n_query and block_size={block_size}"
        )
    pre_ids, pre_mask, pre_src = take(blocks, sources, pre)
    train_ids, train_mask, train_src = take(blocks, sources, train)
    query_ids, query_mask, query_src = take(q_blocks, q_sources, query)
    return TextBlocks(
        name=name,
        train_ids=train_ids,
        train_mask=train_mask,
        query_ids=query_ids,
        query_mask=query_mask,
        pretrain_ids=pre_ids,
        pretrain_mask=pre_mask,
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        tokenizer_name=tok_name,
        train_sources=train_src,
        query_sources=query_src,
        pretrain_sources=pre_src,
    )
