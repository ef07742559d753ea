"""Every option of every config group composes against the schema and instantiates."""

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from grass.compress.base import Compressor
from grass.compress.factorized import build_factorized, is_factorized
from grass.compress.factory import build_compressor
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.models.build import build_classifier, build_lm
from grass.run_compressors import uses_learned_mask
from grass.run_settings import tracker_name
from grass.track import Tracker

CONF = Path(__file__).resolve().parents[2] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_are_not_empty():
    for group in ("model", "dataset", "compressor", "tda", "hardware", "logger", "experiment"):
        assert options(group), group


@pytest.mark.parametrize(
    "override, allowed",
    [
        ("pipeline=stor", "[lds, store]"),
        ("stage=atribute", "expected one of [all, finetune,"),
        ("store.dtype=fp8", "[float32, bfloat16]"),
        ("store.verify=never", "[once, always]"),
        ("store.model=finetuned", "[checkpoint, base]"),
        ("tda.damping=exact", "[absolute, relative, none]"),
        ("tda.target=accuracy", "[margin, loss]"),
        ("finetune.optimizer=adm", "[adam, adamw, sgd]"),
        ("finetune.schedule=cosine", "[constant, linear]"),
        ("logger.backend=tensorboard", "[wandb, csv, none]"),
        ("selective_mask.relaxation=hard", "[straight_through, soft]"),
        ("store.damping_from=lds", "[auto, validation, fixed]"),
        ("finetune.source=paper", "[grass, dattri]"),
    ],
)
def test_a_misspelled_choice_fails_when_the_config_is_composed(compose_cfg, override, allowed):
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg(override)
    assert allowed in str(info.value.__cause__)


def test_choices_read_as_their_plain_strings(compose_cfg):
    cfg = compose_cfg("pipeline=store", "store.dtype=bfloat16")
    assert cfg.pipeline == "store" and f"{cfg.pipeline}/{cfg.store.dtype}" == "store/bfloat16"
    assert {"store": 1}[cfg.pipeline] == 1 and repr(cfg.stage) == "'all'"


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(compose_cfg, experiment):
    cfg = compose_cfg(experiment=experiment)
    assert cfg.experiment_name
    assert cfg.proj_dim > 0


def test_music_experiments_compose_at_their_sizes(compose_cfg):
    paper = compose_cfg(experiment="maestro_music")
    m = paper.model
    assert (m.n_layers, m.d_model, m.num_heads, m.dim_feedforward, m.max_sequence, m.rpr) == (
        6, 512, 8, 1024, 256, True)
    assert (paper.dataset.name, paper.dataset.seq_len, paper.dataset.n_train, paper.dataset.n_query) == (
        "maestro", 256, 5000, 178)
    assert (paper.tda.name, paper.tda.num_checkpoints, paper.lds.num_subsets, paper.hardware.name) == (
        "trak", 5, 50, "gpu")
    tiny = compose_cfg(experiment="music21_music_tiny")
    assert tiny.dataset.name == "music21" and tiny.dataset.seq_len <= tiny.model.max_sequence
    assert tiny.hardware.name == "cpu"


@pytest.mark.parametrize("name", options("compressor"))
def test_compressors_build(compose_cfg, name, tmp_path):
    cfg = compose_cfg(f"compressor={name}")
    if uses_learned_mask(cfg):  # built from a learned artifact (tests/unit/selective): here, none exists yet
        with pytest.raises(GrassError, match="stage=selective_mask"):
            if is_factorized(cfg.compressor):
                build_factorized(cfg.compressor, in_dim=301, out_dim=64, proj_dim=64, seed=1, layer_name="l")
            else:
                build_compressor(cfg.compressor, in_dim=500, out_dim=32, seed=3)
        return
    if is_factorized(cfg.compressor):
        fc = build_factorized(cfg.compressor, in_dim=301, out_dim=64, proj_dim=64, seed=1, layer_name="layer")
        assert fc(torch.randn(2, 3, 301), torch.randn(2, 3, 64)).shape == (2, 64)
        with pytest.raises(GrassError, match="factorized"):
            build_compressor(cfg.compressor, in_dim=500, out_dim=32, seed=3)
        return
    c = build_compressor(cfg.compressor, in_dim=500, out_dim=32, seed=3)
    assert isinstance(c, Compressor)
    assert c(torch.randn(4, 500)).shape[0] == 4


@pytest.mark.parametrize("name", options("tda"))
def test_attributors_instantiate(compose_cfg, name):
    cfg = compose_cfg(f"tda={name}")
    attributor = instantiate_node(cfg.tda.attributor, "tda.attributor")
    assert attributor.damping_kind == cfg.tda.damping


def _text_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("It is a truth universally acknowledged, that a single man in possession " * 300)
    return folder


@pytest.mark.parametrize("name", options("dataset"))
def test_datasets_load_or_say_why(compose_cfg, name, tmp_path, request):
    cfg = compose_cfg(f"dataset={name}")
    if name == "wikitext2":  # the hub is offline in tests: the error must say what to use instead
        with pytest.raises(GrassError, match="dataset=local_text"):
            instantiate_node(cfg.dataset, "dataset")
        return
    if name == "cifar2":  # CIFAR-10 is not available offline: the error names the offline stand-in
        with pytest.raises(GrassError, match="experiment=fmnist2_resnet9_tiny"):
            instantiate_node(cfg.dataset, "dataset")
        return
    if name == "fmnist2" and not Path(cfg.dataset.path).exists():
        with pytest.raises(GrassError, match="make fashion-mnist"):
            instantiate_node(cfg.dataset, "dataset")
        pytest.skip(f"{cfg.dataset.path} not fetched here (make fashion-mnist)")
    if name == "maestro":  # offline: one error naming the stand-in
        request.getfixturevalue("no_network")
        with pytest.raises(GrassError, match="music21_music_tiny"):
            instantiate_node(compose_cfg(f"dataset={name}", f"dataset.root={tmp_path}/maestro").dataset, "dataset")
        return
    if name == "music21":  # parses a handful of pieces
        cfg = compose_cfg(f"dataset={name}", "dataset.seq_len=16", "dataset.n_train=10", "dataset.n_query=2")
        data = instantiate_node(cfg.dataset, "dataset")
        assert (data.n_train, data.n_query, data.seq_len) == (10, 2, 16)
        return
    if name == "local_text":
        cfg = compose_cfg(
            f"dataset={name}",
            f"dataset.path={_text_folder(tmp_path)}",
            "dataset.block_size=32",
            "dataset.n_pretrain=10",
            "dataset.n_train=20",
            "dataset.n_query=5",
        )
        data = instantiate_node(cfg.dataset, "dataset")
        assert (data.n_pretrain, data.n_train, data.n_query, data.block_size) == (10, 20, 5, 32)
        return
    if name == "mnist_dattri":  # the hub is offline in tests: the error must say how to load the files locally
        with pytest.raises(GrassError, match="dataset.source=idx"):
            instantiate_node(cfg.dataset, "dataset")
        return
    if cfg.dataset.get("source") == "idx" and not Path(cfg.dataset.path).exists():
        with pytest.raises(GrassError, match="does not exist"):
            instantiate_node(cfg.dataset, "dataset")
        pytest.skip(f"{cfg.dataset.path} not installed here (apt-get install dataset-fashion-mnist)")
    data = instantiate_node(cfg.dataset, "dataset")
    assert data.n_train == cfg.dataset.n_train and data.n_query == cfg.dataset.n_query
    assert len(set(data.y_train.tolist())) == data.num_classes


HUB_LMS = ("gpt2", "llama3_8b", "hf_causal_lm")  # need the hub or a folder: the error says how to point at one
LMS = ("gpt2_tiny", "gpt2_micro", "gpt2_tiny256", "smollm2_135m", *HUB_LMS)


@pytest.mark.parametrize("name", options("model"))
def test_models_build(compose_cfg, name, request):
    if name in LMS:
        cache = request.getfixturevalue("smollm2_cache") if name == "smollm2_135m" else None  # converted once
        cfg = compose_cfg(
            f"model={name}",
            "dataset=local_text",
            "dataset.block_size=16",
            *([f"model.cache_dir={cache}"] if cache else []),
        )
        if name in HUB_LMS:
            with pytest.raises(GrassError, match="model.name_or_path"):
                build_lm(cfg.model)
            return
        logits = build_lm(cfg.model)(torch.zeros(1, 16, dtype=torch.long)).logits
        assert logits.shape[:2] == (1, 16)
        return
    if name == "music_transformer":  # event ids in, next-event logits out (dattri's 390-event vocabulary)
        model = instantiate_node(compose_cfg(f"model={name}").model, "model")
        assert model(torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, 390)
        return
    # resnet9 (no `hidden`) reads the tiny experiment's 8x8 digits as 1-channel images, 4 wide: milliseconds
    image = ["model.in_channels=1", "model.width=4"] if name == "resnet9" else []
    cfg = compose_cfg(f"model={name}", *image)
    data = instantiate_node(cfg.dataset, "dataset")
    if name == "custom":  # your own class: refused without model.target, named after it with one
        with pytest.raises(GrassError, match="model.target"):
            build_classifier(cfg.model, data)
        cfg = compose_cfg("model=custom", "model.target=grass.models.mlp.MLP", "+model.hidden=[8]")
        assert cfg.model.name == "MLP" and tracker_name(cfg).startswith("tiny/digits-MLP/")
    logits = build_classifier(cfg.model, data)(data.x_train[:3])
    assert logits.shape == (3, data.num_classes)


@pytest.mark.parametrize("name", options("logger"))
def test_loggers_start(compose_cfg, name, tmp_path):
    cfg = compose_cfg(f"logger={name}")
    tracker = Tracker(cfg.logger, tmp_path / name, "test", {"a": 1})
    tracker.log({"x/y": 1.0}, step=0)
    tracker.summary({"x/z": 2.0})
    tracker.finish()


@pytest.mark.parametrize("name", options("hardware"))
def test_hardware_composes(compose_cfg, name):
    cfg = compose_cfg(f"hardware={name}")
    assert cfg.hardware.grad_batch_size > 0


def test_wrong_type_fails_at_compose(compose_cfg):
    with pytest.raises((ValidationError, ConfigCompositionException)):
        compose_cfg("proj_dim=many")


def test_unknown_key_fails_at_compose(compose_cfg):
    with pytest.raises(ConfigCompositionException):
        compose_cfg("proj_dmi=4096")


def test_unknown_compressor_lists_options(compose_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg("compressor=nonsense")
    assert "sjlt" in str(info.value.__cause__ or info.value) or "Available options" in str(info.value)


@pytest.mark.parametrize("group, option, expected", [
    ("hardware", "cpu", {"device": "cpu", "devices": 1, "strategy": "auto", "grad_batch_size": 256}),
    ("hardware", "gpu", {"device": "cuda", "accelerator": "gpu", "grad_batch_size": 1024, "precision": "32-true"}),
    ("hardware", "ddp", {"devices": 2, "strategy": "ddp_fork", "device": "cpu", "capture_batch_size": 8}),
    ("logger", "none", {"backend": "none", "mode": "disabled", "project": "grass"}),
    ("logger", "csv", {"backend": "csv", "mode": "offline", "tags": []}),
])
def test_group_files_list_only_what_differs_and_inherit_the_schema_defaults(compose_cfg, group, option, expected):
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(compose_cfg(f"{group}={option}")[group], throw_on_missing=True)
    assert {k: node[k] for k in expected} == expected


FLAT_COMPRESSORS = [
    n for n in options("compressor") if "kind: factorized" not in (CONF / "compressor" / f"{n}.yaml").read_text()
]


@pytest.mark.parametrize("name", FLAT_COMPRESSORS)
def test_flat_compressors_compose_on_a_language_model(compose_cfg, name):
    """Every flat compressor passes the up-front checks on experiment=tiny_lm (whole-model gradients of the LM
    margin, grass.capture.flat) and builds for that model's p (learned masks: refused until learned)."""
    from grass.capture.flat import num_params
    from grass.pipeline import preflight
    from grass.validate import check_proj_dim

    cfg = compose_cfg(f"compressor={name}", experiment="tiny_lm")
    assert not is_factorized(cfg.compressor)
    assert "attribute" in preflight(cfg)
    with torch.device("meta"):
        model = build_lm(cfg.model, vocab_size=200)
    check_proj_dim(cfg, model)
    p = num_params(model)
    if uses_learned_mask(cfg):
        with pytest.raises(GrassError, match="stage=selective_mask"):
            build_compressor(cfg.compressor, in_dim=p, out_dim=cfg.proj_dim, seed=0)
        return
    comp = build_compressor(cfg.compressor, in_dim=p, out_dim=cfg.proj_dim, seed=0)
    assert comp(torch.randn(2, p)).shape[0] == 2


def test_resnet9_experiments_are_the_paper_model_and_its_cpu_stand_in(compose_cfg):
    from types import SimpleNamespace

    from grass.capture.flat import num_params

    paper = compose_cfg(experiment="cifar2_resnet9")
    assert (paper.hardware.name, paper.dataset.name, paper.tda.name, paper.tda.num_checkpoints) == ("gpu", "cifar2",
                                                                                                     "trak", 10)
    assert (paper.lds.num_subsets, paper.finetune.optimizer, paper.finetune.lr, paper.finetune.epochs) == (50, "sgd",
                                                                                                         0.01, 10)
    shape = SimpleNamespace(num_features=3 * 32 * 32, num_classes=2)
    with torch.device("meta"):
        assert num_params(build_classifier(paper.model, shape)) == 4_825_154  # dattri's benchmark ResNet-9
    assert compose_cfg("hardware=cpu", experiment="cifar2_resnet9").hardware.name == "cpu"  # the command line wins
    tiny = compose_cfg(experiment="fmnist2_resnet9_tiny")
    with torch.device("meta"):
        side = 28 // tiny.dataset.downsample
        p = num_params(build_classifier(tiny.model, SimpleNamespace(num_features=side * side, num_classes=2)))
    # k' = 131,072 keeps under a third of the flat gradient (the fused mask + SJLT then reads less than SJLT), and the
    # model stays CPU-sized
    assert 3 * 131_072 < p < 1_000_000
