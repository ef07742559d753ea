"""staged.queries + staged.report: prompt files as queries (store.prompts_dir): unreadable files, long prompts."""

import logging
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from grass.data.text import TextBlocks
from grass.data.tokenizer import gpt2_tokenizer
from grass.errors import GrassError
from grass.store_stages.attribute import TopK
from grass.store_stages.queries import Queries, prompt_blocks
from grass.store_stages.report import write_report

BLOCK = 8
LONG = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want."


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer(None)


def _data(vocab_map: torch.Tensor | None = None) -> TextBlocks:
    """Two train blocks of BLOCK tokens (block_size = BLOCK), offline GPT-2 tokenizer."""
    ids = torch.arange(2 * BLOCK).reshape(2, BLOCK)
    return TextBlocks(name="t", train_ids=ids, train_mask=torch.ones_like(ids), query_ids=ids[:1],
                      query_mask=torch.ones_like(ids[:1]), pretrain_ids=ids[:0], pretrain_mask=ids[:0],
                      vocab_size=50257, eos_token_id=50256, vocab_map=vocab_map)


@pytest.mark.parametrize("content", [b"caf\xe9 au lait, s'il vous pla\xeet",  # Latin-1
                                     b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # binary, not UTF-8
                                     b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",  # binary that decodes as UTF-8
                                     "a prompt".encode("utf-16-le")],  # UTF-16 without a BOM: valid UTF-8 + NULs
                         ids=["latin1", "png", "gif", "utf16"])
def test_a_prompt_that_is_not_utf8_text_is_one_error_naming_the_file(tmp_path, content):
    (tmp_path / "a_fine.txt").write_text("A perfectly good prompt.", encoding="utf-8")
    (tmp_path / "b_bad.txt").write_bytes(content)
    with pytest.raises(GrassError, match=r"b_bad\.txt is not UTF-8 text .*convert it \(iconv -t UTF-8\) or remove it"):
        prompt_blocks(_data(), tmp_path)


@pytest.mark.parametrize("compact", [False, True])
def test_a_prompt_longer_than_the_block_is_cut_with_a_warning_and_shown_as_cut(tmp_path, tok, caplog, compact):
    (tmp_path / "long.txt").write_text(LONG + "\n", encoding="utf-8")
    (tmp_path / "short.txt").write_text("Mr. Darcy", encoding="utf-8")
    full = tok.encode(LONG)
    assert len(full) > BLOCK
    vocab_map = torch.tensor(sorted(set(full + tok.encode("Mr. Darcy")))) if compact else None
    with caplog.at_level(logging.WARNING, logger="grass.store_stages.queries"):
        names, texts, notes, ids, mask = prompt_blocks(_data(vocab_map), tmp_path)
    assert names == ["long.txt", "short.txt"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"long.txt has {len(full)} tokens, more than the block size {BLOCK}" in warnings[0]
    kept = tok.decode(full[:BLOCK])
    assert texts == [kept, "Mr. Darcy"] and len(kept) < len(LONG)  # the tokens attributed, not the whole file
    assert notes == [f"cut to the block size: the first {BLOCK} of its {len(full)} tokens are attributed", ""]
    model_ids = ids[0] if vocab_map is None else vocab_map[ids[0]]
    assert model_ids.tolist() == full[:BLOCK] and mask[0].tolist() == [1] * BLOCK


def test_the_report_shows_the_attributed_text_and_notes_the_cut(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "long.txt").write_text(LONG, encoding="utf-8")
    (prompts / "short.txt").write_text("Mr. Darcy", encoding="utf-8")
    data = _data()
    names, texts, notes, ids, _ = prompt_blocks(data, prompts)
    top = TopK(1, 2)
    top.add(torch.tensor([[0.5, -1.0], [0.25, 2.0]]), 0)
    ctx = SimpleNamespace(data=data, task=SimpleNamespace(n_train=2), cfg=OmegaConf.create(
        {"experiment_name": "e", "model": {"name": "m"}, "compressor": {"name": "c"}, "proj_dim": 4,
         "tda": {"name": "if_efim"}}))
    layout = SimpleNamespace(report=lambda suffix: tmp_path / f"report.{suffix}")
    queries = Queries(names, texts, notes, {}, [row.tolist() for row in ids])
    md_path, html_path = write_report(ctx, layout, queries, top, damping=0.1)
    md, page = md_path.read_text(), html_path.read_text()
    assert f"> {texts[0]}\n" in md and LONG not in md and LONG not in page
    assert md.count("*Note: cut to the block size") == 1 and page.count("Note: cut to the block size") == 1
    assert "> Mr. Darcy\n" in md
