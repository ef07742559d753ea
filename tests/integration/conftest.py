"""Fixtures shared by the integration tests."""

import random

import pytest

WORDS = ("the of and to a in that was her his she he it had as with for not you be my at which mr on all "
         "elizabeth darcy emma anne house sister letter walk morning evening brother father mother dear "
         "happy little great good young much time never could would should every thing think").split()


@pytest.fixture
def corpus(tmp_path):
    """Three small seeded pseudo-English documents (no download): enough for ~110 blocks of 32 tokens."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    rng = random.Random(0)
    for d in range(3):
        sentences = [" ".join(rng.choices(WORDS, k=rng.randint(5, 14))).capitalize() + "." for _ in range(160)]
        (folder / f"doc{d}.txt").write_text(" ".join(sentences), encoding="utf-8")
    return folder
