"""data.local_text: .txt files -> GPT-2 blocks split into pretrain / train / query, seeded."""

import pytest
import torch

from grass.data.local_text import load_local_text
from grass.data.text import decode_block
from grass.data.tokenizer import gpt2_tokenizer
from grass.errors import GrassError

SENTENCES = ["It is a truth universally acknowledged that a single man in possession of a good fortune",
             "must be in want of a wife. However little known the feelings or views of such a man may be",
             "on his first entering a neighbourhood, this truth is so well fixed in the minds of the families"]


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer(None)


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(3):
        lines = [f"Chapter {i} line {j}: {SENTENCES[(i + j) % 3]}." for j in range(12)]
        (folder / f"book{i}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "notes.md").write_text("not a .txt file, never read")
    return folder


def test_blocks_shapes_and_disjoint_parts(corpus, tok):
    data = load_local_text(
        str(corpus), block_size=16, n_pretrain=15, n_train=30, n_query=10, split_seed=0, tokenizer=tok
    )
    assert data.train_ids.shape == (30, 16) and data.query_ids.shape == (10, 16) and data.pretrain_ids.shape == (15, 16)
    assert bool((data.train_mask == 1).all()) and data.query_mask.shape == (10, 16)
    assert data.vocab_size == 50257 and data.eos_token_id == 50256 and data.tokenizer_name is None
    all_sources = data.pretrain_sources + data.train_sources + data.query_sources
    assert len(set(all_sources)) == 55  # no block in two parts
    assert {s.split(":")[0] for s in all_sources} <= {"book0.txt", "book1.txt", "book2.txt"}


def test_blocks_are_the_tokenized_text(corpus, tok):
    data = load_local_text(str(corpus), block_size=16, n_pretrain=0, n_train=5, n_query=5, tokenizer=tok)
    stream = {f.name: tok.encode(f.read_text()) + [50256] for f in sorted(corpus.glob("*.txt"))}
    for ids, src in zip(data.train_ids.tolist(), data.train_sources):
        name, rest = src.split(":")
        offset = int(rest.split("+")[0])
        assert 0 <= offset < len(stream[name])
        assert ids[: min(16, len(stream[name]) - offset)] == stream[name][offset : offset + 16]
    assert "Chapter" in decode_block(tok, torch.cat(list(data.train_ids)))


def test_split_depends_on_seed_only(corpus, tok):
    a = load_local_text(str(corpus), block_size=16, n_train=20, n_query=5, split_seed=1, tokenizer=tok)
    b = load_local_text(str(corpus), block_size=16, n_train=20, n_query=5, split_seed=1, tokenizer=tok)
    c = load_local_text(str(corpus), block_size=16, n_train=20, n_query=5, split_seed=2, tokenizer=tok)
    assert torch.equal(a.train_ids, b.train_ids) and torch.equal(a.query_ids, b.query_ids)
    assert a.train_sources != c.train_sources


def test_single_file_path(corpus, tok):
    data = load_local_text(str(corpus / "book1.txt"), block_size=16, n_train=4, n_query=2, tokenizer=tok)
    assert {s.split(":")[0] for s in data.train_sources + data.query_sources} == {"book1.txt"}


def test_missing_path_is_named(tmp_path, tok):
    missing = tmp_path / "no_such_corpus"
    with pytest.raises(GrassError, match=f"{missing} does not exist.*corpus_fetch"):
        load_local_text(str(missing), tokenizer=tok)


def test_empty_folder_and_bad_sizes(tmp_path, corpus, tok):
    with pytest.raises(GrassError, match="holds no .txt files"):
        load_local_text(str(tmp_path / "corpus" / ".."), tokenizer=tok)
    with pytest.raises(GrassError, match="blocks requested but the corpus has only"):
        load_local_text(str(corpus), block_size=16, n_pretrain=1000, n_train=10, n_query=5, tokenizer=tok)
    with pytest.raises(GrassError, match="must be positive"):
        load_local_text(str(corpus), n_train=0, tokenizer=tok)


@pytest.mark.parametrize(
    "content",
    [
        b"caf\xe9 au lait\n" * 50,  # Latin-1
        "au lait\n".encode("utf-16-le") * 50,
    ],  # decodes as UTF-8, with NULs
    ids=["latin1", "utf16"],
)
def test_non_utf8_file_is_named(tmp_path, tok, content):
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(GrassError, match="bad.txt is not UTF-8 text .*iconv"):
        load_local_text(str(tmp_path), tokenizer=tok)


def test_compact_vocab_renumbers_and_decodes_back(corpus, tok):
    full = load_local_text(str(corpus), block_size=16, n_pretrain=15, n_train=30, n_query=10, tokenizer=tok)
    small = load_local_text(
        str(corpus), block_size=16, n_pretrain=15, n_train=30, n_query=10, tokenizer=tok, compact_vocab=True
    )
    used = torch.unique(
        torch.cat(
            [full.pretrain_ids.flatten(), full.train_ids.flatten(), full.query_ids.flatten(), torch.tensor([50256])]
        )
    )
    assert small.vocab_size == len(used) < 200 and torch.equal(small.vocab_map, used)
    for part in ("pretrain_ids", "train_ids", "query_ids"):
        ids = getattr(small, part)
        assert int(ids.max()) < small.vocab_size and torch.equal(small.vocab_map[ids], getattr(full, part))
    assert int(small.vocab_map[small.eos_token_id]) == 50256
    assert decode_block(tok, small.query_ids[0], vocab_map=small.vocab_map) == decode_block(tok, full.query_ids[0])
