"""Plain-text corpora from disk (a .txt file or a folder of them) as pretrain / train / query blocks.

Each file is one document, tokenized whole and followed by the tokenizer's EOS token; the blocks
of all files are split at random (seeded) into the three parts. `grass.data.corpus_fetch` writes
suitable folders (Jane Austen's six novels by default) from the Debian package archive.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from grass.data.text import TextBlocks, blocks_from_documents, compact_vocabulary, split_indices, take
from grass.data.tokenizer import resolve_tokenizer
from grass.errors import GrassError

log = logging.getLogger(__name__)


def text_files(path: str | Path) -> list[Path]:
    """[path] for a file, the sorted *.txt files of a folder; a missing path or empty folder is an error."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise GrassError(f"dataset path {p} does not exist; point dataset.path at a .txt file or a folder of "
                         "them (`make corpus` / `python -m grass.data.corpus_fetch janeausten data_cache/janeausten` "
                         "writes Jane Austen's novels there)")
    files = sorted(f for f in p.glob("*.txt") if f.is_file())
    if not files:
        raise GrassError(f"dataset path {p} holds no .txt files")
    return files


def read_text(path: Path) -> str:
    """The UTF-8 text of a corpus or prompt file.

    Raises GrassError naming the file when it is not UTF-8 text: bytes that do not decode, or a NUL byte
    (a binary file, or UTF-16 text, decodes without error but is no text to tokenize).
    """
    hint = "convert it (iconv -t UTF-8) or remove it"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GrassError(f"{path} is not UTF-8 text ({e}); {hint}") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise GrassError(f"{path} is not UTF-8 text (a NUL character at offset {nul}: a binary or UTF-16 file?); "
                         f"{hint}")
    return text


def tokenize_documents(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each whole text, no special tokens added (verbose=False: long texts are fine here)."""
    return [tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] for t in texts]


def load_local_text(path: str, block_size: int = 128, n_pretrain: int = 0, n_train: int = 400,
                    n_query: int = 60, split_seed: int = 0, tokenizer=None, name: str = "local_text",
                    compact_vocab: bool = False) -> TextBlocks:
    """Blocks [n, block_size] of the text under `path`, split into n_pretrain / n_train / n_query at random.

    tokenizer: None (GPT-2 BPE, offline), a hub name / local folder, or a tokenizer object.
    compact_vocab: renumber tokens to those the selected blocks use (plus EOS); TextBlocks.vocab_map
    maps them back. Models whose vocab_size is null in config then get that many embedding rows.
    """
    if n_train <= 0 or n_query <= 0:
        raise GrassError(f"dataset {name}: n_train and n_query must be positive, got {n_train} and {n_query}")
    files = text_files(path)
    tok, tok_name = resolve_tokenizer(tokenizer)
    docs = tokenize_documents(tok, [read_text(f) for f in files])
    blocks, sources = blocks_from_documents(docs, [f.name for f in files], block_size, tok.eos_token_id)
    log.info("%s: %d files, %d tokens, %d blocks of %d", name, len(files), sum(map(len, docs)), len(blocks), block_size)
    pre, train, query = split_indices(len(blocks), [n_pretrain, n_train, n_query], split_seed, name)
    pre_ids, pre_mask, pre_src = take(blocks, sources, pre)
    train_ids, train_mask, train_src = take(blocks, sources, train)
    query_ids, query_mask, query_src = take(blocks, sources, query)
    vocab_size, eos, vocab_map = len(tok), tok.eos_token_id, None
    if compact_vocab:
        keep = [eos] if eos is not None else []
        (pre_ids, train_ids, query_ids), vocab_map = compact_vocabulary([pre_ids, train_ids, query_ids], keep)
        vocab_size = len(vocab_map)
        eos = int(torch.searchsorted(vocab_map, torch.tensor(eos))) if eos is not None else None
        log.info("%s: vocabulary compacted to the %d tokens the blocks use (of %d)", name, vocab_size, len(tok))
    return TextBlocks(name=name, train_ids=train_ids, train_mask=train_mask, query_ids=query_ids,
                      query_mask=query_mask, pretrain_ids=pre_ids, pretrain_mask=pre_mask, vocab_size=vocab_size,
                      eos_token_id=eos, tokenizer_name=tok_name, train_sources=train_src,
                      query_sources=query_src, pretrain_sources=pre_src, vocab_map=vocab_map)
