"""SelectiveMask / GraSSSelective (SPEC 3, 4): load the learned mask artifact, never fall back to a random one."""

import pytest
import torch
from omegaconf import OmegaConf

from grass.compress.factory import build_compressor
from grass.compress.mask import IndexMask
from grass.compress.selective import GraSSSelective, SelectiveMask, required_mask_size
from grass.compress.sjlt import SJLT
from grass.errors import GrassError
from grass.run_compressors import mask_node
from grass.seeding import derive_seed
from grass.selective.artifact import mask_fingerprint, mask_path, save_mask

FP = mask_fingerprint("digits-mlp-abc", checkpoint=0, target="margin", learn={"lr": 0.01}, seed=0)


def _save(root, indices, in_dim, layer="flat"):
    indices = torch.tensor(indices)
    return save_mask(mask_path(root, indices.numel(), layer), indices, in_dim, FP)


def test_selective_mask_gathers_the_saved_indices(tmp_path):
    path = _save(tmp_path, [7, 1, 4], 10)
    comp = SelectiveMask(10, 3, seed=2, mask_dir=str(tmp_path), expected_fingerprint=FP)
    assert comp.mask_file == str(path) and comp.indices.tolist() == [1, 4, 7]
    x = torch.arange(20.0).reshape(2, 10)
    assert comp(x).tolist() == [[1.0, 4.0, 7.0], [11.0, 14.0, 17.0]]
    assert (
        comp.fingerprint()["indices_digest"] == IndexMask(10, torch.tensor([1, 4, 7])).fingerprint()["indices_digest"]
    )


def test_selective_mask_per_layer_file(tmp_path):
    _save(tmp_path, [0, 5], 6, layer="fc2")
    comp = SelectiveMask(6, 2, mask_dir=str(tmp_path), layer="fc2", expected_fingerprint=FP)
    assert comp.indices.tolist() == [0, 5]


def test_missing_mask_is_an_error_not_a_random_mask(tmp_path):
    for make in (
        lambda: SelectiveMask(10, 3, mask_dir=str(tmp_path), expected_fingerprint=FP),
        lambda: GraSSSelective(40, 4, mask_dir=str(tmp_path), expected_fingerprint=FP),
    ):
        with pytest.raises(GrassError, match="stage=selective_mask"):
            make()
    with pytest.raises(GrassError, match="mask_dir is not set"):
        SelectiveMask(10, 3, expected_fingerprint=FP)


def test_wrong_fingerprint_is_refused(tmp_path):
    _save(tmp_path, [1, 2, 3], 10)
    other = {**FP, "checkpoint": 1}
    with pytest.raises(GrassError, match="checkpoint: file=0, now=1"):
        SelectiveMask(10, 3, mask_dir=str(tmp_path), expected_fingerprint=other)
    with pytest.raises(GrassError, match="no expected fingerprint"):
        SelectiveMask(10, 3, mask_dir=str(tmp_path))


def test_grass_selective_is_learned_mask_then_sjlt(tmp_path):
    kept = sorted(torch.randperm(100, generator=torch.Generator().manual_seed(0))[:32].tolist())
    path = _save(tmp_path, kept, 100)  # k' = blowup * k = 4 * 8
    comp = GraSSSelective(100, 8, seed=3, blowup=4, c=2, mask_dir=str(tmp_path), expected_fingerprint=FP)
    assert comp.k_prime == 32 and comp.mask_file == str(path) and comp.mask.indices.tolist() == kept
    x = torch.randn(5, 100, generator=torch.Generator().manual_seed(1))
    sjlt = SJLT(32, 8, seed=derive_seed(3, "sjlt"), c=2)
    assert torch.equal(comp(x), sjlt(x[:, kept]))
    torch.testing.assert_close(comp(x), x @ comp.matrix(), rtol=1e-5, atol=1e-5)


def test_required_mask_size():
    sm = {"name": "selective_mask", "_target_": "grass.compress.selective.SelectiveMask", "mask_dir": "x"}
    gs = {"name": "grass_sm", "_target_": "grass.compress.selective.GraSSSelective", "blowup": 2}
    assert required_mask_size(sm, 1000, 64) == 64
    assert required_mask_size(gs, 1000, 64) == 128
    assert required_mask_size({**gs, "blowup": 4}, 200, 64) == 200  # clamped to the width, as GraSS does
    assert required_mask_size({k: v for k, v in gs.items() if k != "blowup"}, 1000, 64) == 256  # GraSS default 4
    with pytest.raises(GrassError, match="does not use a learned mask"):
        required_mask_size({"name": "grass", "_target_": "grass.compress.grass_compressor.GraSS"}, 1000, 64)


@pytest.mark.parametrize("name", ["selective_mask", "grass_sm", "fact_sm", "factgrass_sm"])
def test_one_key_sets_the_mask_folder_of_every_learned_mask_compressor(compose_cfg, tmp_path, name):
    cfg = compose_cfg(f"compressor={name}", f"selective_mask.dir={tmp_path}/masks")
    assert mask_node(cfg.compressor)["mask_dir"] == f"{tmp_path}/masks"


@pytest.mark.parametrize("name,k_file", [("selective_mask", 16), ("grass_sm", 64)])
def test_configs_find_the_artifact(compose_cfg, tmp_path, name, k_file):
    cfg = compose_cfg(f"compressor={name}")
    mask_dir = cfg.compressor.mask_dir
    assert mask_dir == f"{tmp_path}/outputs/artifacts/selective_mask/tiny-digits-mlp-s0"
    assert required_mask_size(cfg.compressor, 300, 16) == k_file
    with pytest.raises(GrassError, match="stage=selective_mask"):
        build_compressor(cfg.compressor, in_dim=300, out_dim=16, seed=1)
    _save(mask_dir, list(range(0, 3 * k_file, 3)), 300)
    node = {**OmegaConf.to_container(cfg.compressor, resolve=True), "expected_fingerprint": FP}
    comp = build_compressor(node, in_dim=300, out_dim=16, seed=1)
    assert comp(torch.randn(4, 300)).shape == (4, 16)


def test_factorized_sides_load_the_mask_of_their_layer_side_and_pair(tmp_path):
    from grass.compress.factorized import build_factorized

    for side, idx, width in (("in", [0, 2, 5], 7), ("out", [1, 3, 4], 5)):
        save_mask(mask_path(tmp_path, (3, 3), "h.0.fc", side), torch.tensor(idx), width, FP)
    node = {
        "name": "fact_sm",
        "kind": "factorized",
        "_target_": "grass.compress.factorized.factorized",
        "side": {
            "_target_": "grass.compress.selective.SelectiveMask",
            "mask_dir": str(tmp_path),
            "expected_fingerprint": FP,
        },
        "stage2": None,
        "blowup": 1,
    }
    comp = build_factorized(node, in_dim=7, out_dim=5, proj_dim=9, seed=0, layer_name="h.0.fc")
    assert comp.in_side.indices.tolist() == [0, 2, 5] and comp.out_side.indices.tolist() == [1, 3, 4]
    a, delta = torch.randn(2, 4, 7), torch.randn(2, 4, 5)
    full = torch.einsum("bto,bti->boi", delta, a)
    torch.testing.assert_close(comp(a, delta), full[:, [1, 3, 4]][:, :, [0, 2, 5]].reshape(2, 9))
    with pytest.raises(GrassError, match="stage=selective_mask"):  # K = 16 needs the 4x4 pair: not learned
        build_factorized(node, in_dim=7, out_dim=5, proj_dim=16, seed=0, layer_name="h.0.fc")
    with pytest.raises(GrassError, match="pair"):
        SelectiveMask(7, 3, mask_dir=str(tmp_path), layer="h.0.fc", side="in", expected_fingerprint=FP)


def test_pipeline_fills_the_fingerprint_into_a_factorized_side(compose_cfg):
    from grass.run_compressors import compressor_node, mask_node, uses_learned_mask

    class Ctx:  # what compressor_node reads
        def __init__(self, cfg):
            self.cfg = cfg

        def models_dir(self):
            return tmp_models

    tmp_models = type("P", (), {"name": "models-key"})()
    cfg = compose_cfg("compressor=fact_sm", experiment="tiny_lm")
    assert uses_learned_mask(cfg) and "mask_dir" in mask_node(cfg.compressor)
    node = compressor_node(Ctx(cfg))
    assert node["side"]["expected_fingerprint"]["models"] == "models-key" and "expected_fingerprint" not in node
    assert "n_heldout" not in node["side"]["expected_fingerprint"]["learn"]
    assert not uses_learned_mask(compose_cfg("compressor=factgrass", experiment="tiny_lm"))
