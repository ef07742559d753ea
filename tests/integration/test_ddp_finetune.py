"""hardware=ddp: Lightning DDP (2 processes over gloo on CPU) trains the models the later stages read."""

import lightning as L
import torch

from grass.instantiate import instantiate_node
from grass.models.build import build_classifier
from grass.pipeline import run
from grass.seeding import derive_seed


def test_ddp_trains_models_that_the_chain_uses(compose_cfg, tmp_path):
    overrides = ("hardware=ddp", "lds.num_subsets=4", "tda.num_checkpoints=1", "finetune.epochs=2")
    cfg = compose_cfg(*overrides, "stage=finetune")
    metrics = run(cfg)
    assert metrics["finetune/models_trained"] == 5
    (saved,) = sorted((tmp_path / "outputs" / "artifacts" / "models").glob("*/subset_000.pt"))
    trained = torch.load(saved)
    # the same initialisation train_one starts from: the stored weights must be the trained ones that the
    # spawned DDP workers sent back, not the main process's untouched copy
    L.seed_everything(derive_seed(cfg.seed, "train", "subset", 0) % (2**31), verbose=False)
    initial = build_classifier(cfg.model, instantiate_node(cfg.dataset, "dataset")).state_dict()
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)
    rest = run(compose_cfg(*overrides, "stage=all"))
    assert rest["finetune/models_trained"] == 0 and rest["lds/n_queries"] > 0
