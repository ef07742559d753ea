"""conf/model/smollm2_135m.yaml: the real pretrained SmolLM2-135M from its packaged GGUF file (offline),
converted once and cached; text datasets tokenize with its own tokenizer; the LM task never pretrains it.

The ~30 s conversion happens once per session (tests/conftest.py `smollm2_cache`); cache tests damage
hard-linked copies of it and replace the conversion itself with a copy of the converted files.
"""

import logging
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from transformers import LlamaForCausalLM

from grass.capture.linear import LMTarget, layer_dims, select_linear_layers
from grass.data.text import lm_batch
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.models import gguf
from grass.models.causal_lm import gguf_causal_lm, gguf_tokenizer
from grass.tasks.language import LanguageTask

SPEC = OmegaConf.load(Path(__file__).resolve().parents[3] / "conf" / "model" / "smollm2_135m.yaml")
SENTENCE = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
            "must be in want of a wife.")
TEXT = (SENTENCE + " However little known the feelings or views of such a man may be on his first entering a "
        "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
        "considered the rightful property of some one or other of their daughters. ") * 12


def _folder(cache):
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return folder


@pytest.fixture(scope="module")
def model(smollm2_cache):
    return gguf_causal_lm(SPEC.package, SPEC.gguf_file, smollm2_cache)


@pytest.fixture(scope="module")
def tokenizer(smollm2_cache):
    return gguf_tokenizer(SPEC.package, SPEC.gguf_file, smollm2_cache)


@pytest.fixture
def cfg_for(compose_cfg, smollm2_cache, tmp_path):
    """cfg_for(*overrides): model=smollm2_135m + dataset=local_text over a small English text, shared cache."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "austen.txt").write_text(TEXT, encoding="utf-8")
    return lambda *o: compose_cfg("model=smollm2_135m", "dataset=local_text",
                                  f"model.cache_dir={smollm2_cache}", f"dataset.path={corpus}", "dataset.block_size=32",
                                  "dataset.n_pretrain=4", "dataset.n_train=8", "dataset.n_query=4",
                                  "finetune.optimizer=adamw", *o)


@pytest.fixture
def damaged_copy(smollm2_cache, tmp_path, monkeypatch):
    """A hard-linked copy of the converted cache, and a stand-in conversion that copies the good files (counted)."""
    cache = tmp_path / "cache"
    shutil.copytree(smollm2_cache, cache, copy_function=os.link)
    good, calls = _folder(smollm2_cache), []

    def convert(source, out):
        calls.append(source)
        for f in good.iterdir():
            if f.name != gguf.MANIFEST:
                os.link(f, out / f.name)

    monkeypatch.setattr(gguf, "convert_gguf", convert)
    return cache, _folder(cache), calls


def test_loads_a_llama_whose_linear_layers_capture_selects(model):
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert model.config.vocab_size == 49152 and not hasattr(model.config, "quantization_config")
    layers = select_linear_layers(model)
    assert len(layers) == 30 * 7 + 1  # q, k, v, o, gate, up, down per layer + lm_head
    assert {"lm_head", "model.layers.0.self_attn.q_proj", "model.layers.29.mlp.down_proj"} <= set(layers)
    assert layer_dims(model)["model.layers.0.mlp.down_proj"] == (576, 1536)  # no bias column
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_is_really_pretrained(model, tokenizer):
    ids = tokenizer(SENTENCE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = float(LMTarget("loss")(model, lm_batch(ids))[0])
    assert math.isfinite(loss) and loss < 0.5 * math.log(len(tokenizer))  # measured 2.8; random init ~10.8


def test_second_load_reads_the_cache(smollm2_cache, monkeypatch):
    folder = _folder(smollm2_cache)
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}

    def no_conversion(*args):
        raise AssertionError("converted again although the cache is complete")

    monkeypatch.setattr(gguf, "convert_gguf", no_conversion)
    assert isinstance(gguf_causal_lm(SPEC.package, SPEC.gguf_file, smollm2_cache), LlamaForCausalLM)
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before
    assert [p.name for p in smollm2_cache.iterdir() if not p.name.endswith(".lock")] == [folder.name]  # no temp folders


@pytest.mark.parametrize("damage, reason", [("truncate", "bytes, the manifest says"), ("no_manifest", "manifest"),
                                            ("lose_tokenizer", "tokenizer.json is missing")])
def test_partial_cache_is_converted_again(damaged_copy, caplog, damage, reason):
    cache, folder, calls = damaged_copy
    if damage == "truncate":  # a new file, not a write into the hard-linked original
        (folder / "model.safetensors").unlink()
        (folder / "model.safetensors").write_bytes(b"\0" * 100)
    else:
        (folder / (gguf.MANIFEST if damage == "no_manifest" else "tokenizer.json")).unlink()
    with caplog.at_level(logging.WARNING, logger="grass.models.gguf"):
        model = gguf_causal_lm(SPEC.package, SPEC.gguf_file, cache)
    assert len(calls) == 1 and reason in caplog.text and "converting" in caplog.text
    assert isinstance(model, LlamaForCausalLM)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [folder.name]
    assert gguf.cache_problem(folder, folder.name.rsplit("-", 1)[1]) is None


def test_corrupt_bytes_behind_a_valid_manifest_say_what_to_delete(damaged_copy):
    cache, folder, calls = damaged_copy
    size = (folder / "model.safetensors").stat().st_size
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(b"\0" * size)
    with pytest.raises(GrassError, match=f"(?s){folder.name} cannot be read.*delete it"):
        gguf_causal_lm(SPEC.package, SPEC.gguf_file, cache)
    assert not calls


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    def killed(source, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf, "convert_gguf", killed)
    with pytest.raises(KeyboardInterrupt):
        gguf.converted_folder(SPEC.package, SPEC.gguf_file, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_loads_convert_once(tmp_path, monkeypatch):
    import threading
    import time

    source = tmp_path / "pkg" / "model.gguf"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    calls = []

    def slow_convert(src, out):
        calls.append(src)
        time.sleep(0.5)  # the second caller arrives while this conversion runs
        (out / "config.json").write_bytes(src.read_bytes())

    monkeypatch.setattr(gguf, "packaged_gguf", lambda package, gguf_file: source)
    monkeypatch.setattr(gguf, "convert_gguf", slow_convert)
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(
        gguf.converted_folder("pkg", "model.gguf", tmp_path / "cache"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(folders) == 2 and folders[0] == folders[1]


def test_another_gguf_file_gets_another_cache(tmp_path, monkeypatch):
    files = {}
    for name, body in (("a", b"one"), ("b", b"two")):
        (tmp_path / name).mkdir()
        files[name] = tmp_path / name / "model.gguf"
        files[name].write_bytes(body)
    monkeypatch.setattr(gguf, "packaged_gguf", lambda package, gguf_file: files[package])
    monkeypatch.setattr(gguf, "convert_gguf",
                        lambda source, out: (out / "config.json").write_bytes(source.read_bytes()))
    a, b = (gguf.converted_folder(n, "model.gguf", tmp_path / "cache") for n in ("a", "b"))
    assert a != b and a.name.startswith("model-") and (a / "config.json").read_bytes() == b"one"


def test_missing_package_says_how_to_install():
    with pytest.raises(GrassError, match="make setup"):
        gguf.packaged_gguf("grass_no_such_package", SPEC.gguf_file)
    with pytest.raises(GrassError, match=r"SmolLM2-135M-Instruct.Q4_1.gguf"):
        gguf.packaged_gguf(SPEC.package, "other.gguf")


def test_local_text_tokenizes_with_the_models_own_tokenizer(cfg_for, tokenizer, smollm2_cache):
    cfg = cfg_for()
    assert cfg.dataset.tokenizer._target_ == "grass.models.causal_lm.gguf_tokenizer"  # follows model.tokenizer
    data = instantiate_node(cfg.dataset, "dataset")
    assert data.vocab_size == len(tokenizer) == 49152 and data.vocab_map is None
    assert data.tokenizer_name == str(_folder(smollm2_cache)) and data.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.decode(data.train_ids[0], skip_special_tokens=True) in TEXT


def test_lm_task_fine_tunes_from_the_pretrained_weights(cfg_for, monkeypatch):
    cfg = cfg_for()
    task = LanguageTask(cfg, instantiate_node(cfg.dataset, "dataset"))
    assert task.data.n_pretrain == 4 and not task.pretrains_base and task.fingerprint_extra() == {}
    monkeypatch.setattr(LanguageTask, "_pretrain", lambda *a: pytest.fail("a pretrained model was pretrained"))
    task.prepare(SimpleNamespace(artifacts=None, metrics={}, device=torch.device("cpu")))
    base = task._fresh()
    assert isinstance(base, LlamaForCausalLM)
    assert float(task.query_losses(base, torch.device("cpu")).mean()) < 0.5 * math.log(49152)


@pytest.mark.parametrize(
    "override, message",
    [
        ("dataset.tokenizer=null", "49152-token vocabulary but dataset local_text was tokenized with a 50257-token"),
        ("dataset.compact_vocab=true", "set dataset.compact_vocab=false"),
    ],
)
def test_foreign_token_ids_are_a_clear_error(cfg_for, override, message):
    cfg = cfg_for(override)
    task = LanguageTask(cfg, instantiate_node(cfg.dataset, "dataset"))
    with pytest.raises(GrassError, match=message):
        task.prepare(SimpleNamespace(artifacts=None, metrics={}, device=torch.device("cpu")))
