"""Hub-backed configs stop within seconds, with advice, when the hub cannot be reached."""

import time

import pytest

from grass.data.hub import hub_unreachable
from grass.data.wikitext import load_wikitext2
from grass.errors import GrassError
from grass.models.gpt2 import gpt2


def test_unreachable_hub_fails_fast_with_advice(no_network):
    start = time.perf_counter()
    with pytest.raises(GrassError, match="dataset=local_text.*HF_DATASETS_OFFLINE"):
        load_wikitext2()
    with pytest.raises(GrassError, match="unreachable.*model.name_or_path"):
        gpt2("openai-community/gpt2")
    assert time.perf_counter() - start < 5


def test_local_paths_and_offline_mode_skip_the_check(no_network, tmp_path, monkeypatch):
    assert hub_unreachable(str(tmp_path)) is None
    assert "unreachable" in hub_unreachable("openai-community/gpt2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unreachable("openai-community/gpt2") is None
