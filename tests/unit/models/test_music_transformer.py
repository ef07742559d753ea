"""dattri's MusicTransformer through grass: builds quietly, follows its weights' device, and its last-event
margin's flat per-example gradients (grass.capture.flat) equal a one-example autograd loop."""

import torch

from grass.capture.flat import flat_grads
from grass.models.music_transformer import TOKEN_PAD, VOCAB_SIZE, music_transformer
from grass.outputs import margin
from grass.tasks.music import MusicTarget

TINY = dict(n_layers=2, num_heads=2, d_model=16, dim_feedforward=32, dropout=0.1, max_sequence=12)


def _batch(n=5, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, TOKEN_PAD - 1, (n, t), generator=g)
    y = torch.cat([x[:, 1:], torch.randint(0, TOKEN_PAD - 1, (n, 1), generator=g)], dim=1)
    return x, y


def test_builds_in_eval_mode_with_dattri_vocabulary():
    torch.manual_seed(0)
    model = music_transformer(**TINY)
    assert not model.training and model.Wout.out_features == VOCAB_SIZE == 390
    x, _ = _batch()
    assert model(x).shape == (5, 12, VOCAB_SIZE)


def test_device_follows_the_weights():
    model = music_transformer(**TINY)
    assert model.device == torch.device("cpu")
    model.to("meta")
    assert model.device == torch.device("meta")


def test_margin_is_the_last_event_logit_margin():
    torch.manual_seed(0)
    model = music_transformer(**TINY)
    x, y = _batch()
    with torch.no_grad():
        got = MusicTarget("margin")(model, (x, y))
        logp = torch.log_softmax(model(x)[:, -1], dim=-1).gather(1, y[:, -1:]).squeeze(1)
    # dattri's loss_trak: logp - log(1 - exp(logp))
    torch.testing.assert_close(got, logp - torch.log1p(-logp.exp()), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got, margin(model(x)[:, -1], y[:, -1]).detach())
    with torch.no_grad():  # TRAK's Q = 1 - p of the same p
        torch.testing.assert_close(MusicTarget("margin").trak_weight(model, (x, y)), 1 - logp.exp())


def test_flat_capture_of_the_margin_matches_a_one_example_loop():
    torch.manual_seed(0)
    model = music_transformer(**TINY)  # dropout 0.1: flat capture runs the model in eval mode (dropout off)
    model.train()
    x, y = _batch(n=4)
    target = MusicTarget("margin")
    flat = flat_grads(model, target, (x, y), chunk_size=3)  # two vmap chunks
    assert model.training  # the caller's mode is restored
    model.eval()
    assert flat.shape == (4, sum(p.numel() for p in model.parameters()))
    for b in range(len(x)):
        model.zero_grad()
        target(model, (x[b:b + 1], y[b:b + 1])).sum().backward()
        loop = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(flat[b], loop, rtol=1e-4, atol=1e-5)
