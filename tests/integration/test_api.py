"""The Python API (grass.api): the quickstart examples run on tiny inputs, and the API's scores equal the CLI's on
the same checkpoints, data, seed and damping."""

import runpy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import grass
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.models.build import build_classifier
from grass.pipeline import run

REPO = Path(__file__).resolve().parents[2]


def _example(name: str) -> dict:
    return runpy.run_path(str(REPO / "examples" / name), run_name="example")


def test_classifier_quickstart_runs():
    scores = _example("quickstart_classifier.py")["main"](n_train=64, n_query=6, epochs=2, proj_dim=64)
    assert scores.shape == (64, 6) and torch.isfinite(scores).all()


def test_hf_lm_quickstart_runs_on_a_local_folder(tiny_llama_dir):
    scores = _example("quickstart_hf_lm.py")["main"](str(tiny_llama_dir), max_length=12, proj_dim=16, device="cpu")
    # whole-model gradients of the LM block margin, compressed by SJLT, TRAK weights from the same target
    flat = _example("quickstart_hf_lm.py")["main"](str(tiny_llama_dir), max_length=12, proj_dim=16, device="cpu",
                                                   compressor="sjlt", tda="trak")
    assert flat.shape == scores.shape and torch.isfinite(flat).all() and flat.abs().sum() > 0
    assert scores.shape == (6, 2) and torch.isfinite(scores).all()


def _loader(x, y):
    return DataLoader(TensorDataset(x, y), batch_size=64)


def test_api_scores_equal_the_cli(compose_cfg):
    """Flat (sjlt + trak, two checkpoints) and factorized (factgrass + if_efim) on the tiny CLI run's models."""
    for compressor, tda in (("sjlt", "trak"), ("factgrass", "if_efim")):  # one models folder: trained once
        _check_against_cli(compose_cfg, compressor, tda)


def _check_against_cli(compose_cfg, compressor, tda):
    cfg = compose_cfg(f"compressor={compressor}", f"tda={tda}", "save_scores=true", "proj_dim=32",
                      "lds.num_subsets=4", "tda.num_checkpoints=2")
    metrics = run(cfg)
    (scores_file,) = Path(cfg.paths.root).rglob(f"{compressor}-k32-{tda}-*/scores.pt")
    cli = torch.load(scores_file)["scores"]
    (models_dir,) = (Path(cfg.paths.artifacts) / "models").glob("digits-mlp-*")

    data = instantiate_node(cfg.dataset, "dataset")
    models = []
    for c in range(cfg.tda.num_checkpoints):
        model = build_classifier(cfg.model, data)
        model.load_state_dict(torch.load(models_dir / f"checkpoint_{c:03d}.pt"))
        models.append(model)
    attributor = grass.Attributor(grass.ClassifierTask(models), compressor=compressor, proj_dim=cfg.proj_dim, tda=tda,
                                  damping=metrics["damping/chosen"], seed=cfg.seed, device="cpu", progress=False)
    scores = attributor.cache(_loader(data.x_train, data.y_train)).attribute(_loader(data.x_query, data.y_query))
    torch.testing.assert_close(scores, cli, rtol=1e-4, atol=1e-6 * float(cli.abs().max()))

    values, idx = attributor.top_k(scores, k=3)
    assert torch.equal(values, scores.gather(0, idx)) and values.shape == (3, data.n_query)
    self_inf = attributor.self_influence()
    assert self_inf.shape == (data.n_train,) and (self_inf > 0).all()
    if tda == "if_efim":  # self-influence is the diagonal of the train x train scores
        diag = attributor.attribute(_loader(data.x_train[:5], data.y_train[:5])).diagonal()
        torch.testing.assert_close(self_inf[:5], diag, rtol=1e-3, atol=1e-6)


def test_api_errors_are_one_clear_line():
    model = torch.nn.Linear(4, 2)
    with pytest.raises(GrassError, match="not a grass option"):
        grass.Attributor(grass.ClassifierTask(model), compressor="sjtl")
    with pytest.raises(GrassError, match="needs damping"):
        grass.Attributor(grass.ClassifierTask(model), tda="if_efim")
    with pytest.raises(GrassError, match="learned"):
        grass.Attributor(grass.ClassifierTask(model), compressor="grass_sm", damping=1.0)
    with pytest.raises(GrassError, match="needs a flat compressor"):
        grass.Attributor(grass.ClassifierTask(model), compressor="factgrass", tda="trak", damping=1.0)
    with pytest.raises(GrassError, match="cache"):
        grass.Attributor(grass.ClassifierTask(model), damping=1.0).attribute([])
    with pytest.raises(GrassError, match="no option"):
        grass.Attributor(grass.ClassifierTask(model), damping=1.0, compressor_options={"cc": 2})


@pytest.mark.parametrize(("compressor", "tda"), [("sjlt", "trak"), ("factgrass", "if_efim"), ("sjlt", "grad_dot")])
def test_store_backed_cache_equals_in_memory(tmp_path, compressor, tda):
    """cache(store_dir=...) streams the train features through grass.store shards (3 rows a chunk here) and
    scores with the streamed math: the same scores and self-influence as in memory."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 6, generator=gen), torch.randint(0, 3, (20,), generator=gen)
    models = [torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)) for _ in range(2)]

    def attributor():
        return grass.Attributor(grass.ClassifierTask(models), compressor=compressor, proj_dim=16, tda=tda,
                                damping=0.1, device="cpu", progress=False)

    train, query = DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x[:7], y[:7]), batch_size=4)
    memory = attributor().cache(train)
    stored = attributor().cache(train, store_dir=tmp_path / "store", chunk_size=3)
    assert (tmp_path / "store" / "checkpoint_1").is_dir()
    torch.testing.assert_close(stored.attribute(query), memory.attribute(query), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stored.self_influence(), memory.self_influence(), rtol=1e-4, atol=1e-5)
    with pytest.raises(GrassError, match="n_train=21 expected"):
        attributor().cache(train, store_dir=tmp_path / "other", n_train=21)


def test_api_refuses_what_cannot_work_before_any_gradient():
    model = torch.nn.Linear(4, 2)  # 10 parameters
    with pytest.raises(grass.GrassError, match="larger than the model's 10 trainable parameters"):
        grass.Attributor(grass.ClassifierTask(model), compressor="sjlt", proj_dim=64, tda="grad_dot").cache(
            [(torch.randn(3, 4), torch.tensor([0, 1, 0]))])
    if not torch.cuda.is_available():
        with pytest.raises(grass.GrassError, match="no CUDA device"):
            grass.Attributor(grass.ClassifierTask(model), tda="grad_dot", device="cuda")
    assert "GrassError" in dir(grass) and "Attributor" in dir(grass)


class _SquaredError(grass.Target):
    """A regression model's squared error: a scalar output grass does not ship."""

    def value(self, model, batch):
        x, y = batch
        return (model(x).squeeze(-1) - y) ** 2

    def trak_weight(self, model, batch):
        return torch.ones(len(batch[0]))


class _RegressionTask(grass.AttributionTask):
    def target(self, output):
        return _SquaredError(output)

    def to_device(self, batch, device):
        return tuple(t.to(device) for t in batch)

    def batch_size(self, batch):
        return len(batch[0])


def test_your_own_scalar_output_is_attributed():
    """identity + grad_dot on a custom Target == the dot products of hand-made per-example gradients."""
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x, y = torch.randn(6, 3, generator=gen), torch.randn(6, generator=gen)
    xq, yq = torch.randn(2, 3, generator=gen), torch.randn(2, generator=gen)
    attributor = grass.Attributor(_RegressionTask(model), compressor="identity", tda="grad_dot", progress=False)
    scores = attributor.cache([(x[:4], y[:4]), (x[4:], y[4:])]).attribute([(xq, yq)])

    def grad(xi, yi):
        model.zero_grad()
        ((model(xi[None]).squeeze() - yi) ** 2).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    train = torch.stack([grad(x[i], y[i]) for i in range(6)])
    query = torch.stack([grad(xq[j], yq[j]) for j in range(2)])
    torch.testing.assert_close(scores, train @ query.T, rtol=1e-4, atol=1e-6)
