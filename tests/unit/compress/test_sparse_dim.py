"""compressor.sparse_dim, the two-stage first-stage size k' of grass / grass_sm (the paper's ablation): the
compressors use it, grass.validate bounds it (proj_dim < k' <= p), and it names the run folder and the mask."""

import pytest
import torch

from grass.compress.grass_compressor import GraSS
from grass.compress.selective import GraSSSelective, required_mask_size
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.lds_stages.run import lds_stages as stages_to_run
from grass.pipeline import run_dir
from grass.selective.artifact import mask_path, save_mask
from grass.tasks import make_task
from grass.validate import validate_config, validate_for_task

TINY_P = 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10  # experiment=tiny: MLP 64-32-16-10 on digits


def test_sparse_dim_sets_the_mask_width_whatever_the_blowup():
    comp = GraSS(1000, 16, seed=1, blowup=2, sparse_dim=300)
    assert comp.k_prime == 300 and comp.mask.out_dim == 300 and comp.sjlt.in_dim == 300
    assert comp(torch.randn(3, 1000)).shape == (3, 16)
    assert GraSS(1000, 16, seed=1, blowup=2).k_prime == 32  # null: blowup * k as before
    assert comp.fingerprint()["k_prime"] != GraSS(1000, 16, seed=1, sparse_dim=400).fingerprint()["k_prime"]


@pytest.mark.parametrize("bad", [16, 8, 1001, 2.5, True])
def test_sparse_dim_outside_proj_dim_and_the_width_is_refused(bad):
    with pytest.raises(GrassError, match=r"sparse_dim .*proj_dim=16 < k' <= 1000"):
        GraSS(1000, 16, sparse_dim=bad)


def test_the_selective_variant_learns_and_reads_the_mask_of_size_sparse_dim(tmp_path):
    node = {"_target_": "grass.compress.selective.GraSSSelective", "name": "grass_sm", "blowup": 4, "sparse_dim": 64}
    assert required_mask_size(node, 500, 8) == 64
    assert required_mask_size({**node, "sparse_dim": None}, 500, 8) == 32
    fp = {"models": "m"}
    save_mask(mask_path(tmp_path, 64), torch.arange(0, 128, 2), 500, fp)
    comp = GraSSSelective(500, 8, mask_dir=str(tmp_path), expected_fingerprint=fp, sparse_dim=64)
    assert comp.k_prime == 64 and comp.mask_file.endswith("64/flat.pt")
    with pytest.raises(GrassError, match="stage=selective_mask"):  # k'=32's folder holds no mask
        GraSSSelective(500, 8, mask_dir=str(tmp_path), expected_fingerprint=fp, sparse_dim=32)


@pytest.mark.parametrize("compressor", ["grass", "grass_sm"])
def test_sparse_dim_names_the_run_folder(compose_cfg, compressor):
    default = run_dir(compose_cfg(f"compressor={compressor}"))
    small, large = (run_dir(compose_cfg(f"compressor={compressor}", f"compressor.sparse_dim={k}")) for k in (512, 1024))
    assert len({default, small, large}) == 3
    assert small.name.startswith(f"{compressor}-kp512-k128-trak-s0-")
    assert default.name.startswith(f"{compressor}-k128-trak-s0-")


def test_sparse_dim_not_above_proj_dim_is_refused_from_the_config(compose_cfg):
    cfg = compose_cfg("compressor=grass", "compressor.sparse_dim=128")
    with pytest.raises(GrassError, match=r"compressor.sparse_dim=128 is not allowed: .* integer > proj_dim=128"):
        validate_config(cfg, stages_to_run(cfg.stage))


def test_sparse_dim_above_the_parameter_count_is_refused_before_training(compose_cfg):
    for k_prime, ok in ((TINY_P, True), (TINY_P + 1, False)):
        cfg = compose_cfg("compressor=grass", f"compressor.sparse_dim={k_prime}")
        validate_config(cfg, stages_to_run(cfg.stage))
        task = make_task(cfg, instantiate_node(cfg.dataset, "dataset"))
        if ok:
            validate_for_task(cfg, task, stages_to_run(cfg.stage))
            continue
        with pytest.raises(GrassError, match=rf"sparse_dim={k_prime} is larger .* choose sparse_dim <= {TINY_P}"):
            validate_for_task(cfg, task, stages_to_run(cfg.stage))
