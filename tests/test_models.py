"""Model registry: every model gets shape, NaN and gradient checks (explicit backward vs autograd)."""

from __future__ import annotations

import math

import pytest
import torch

from petri.models import MLP, MODELS, VGG, MnistCNN, build, parse_model
from petri.models.compile import walk
from petri.train.loss import cross_entropy

RESNET_BLOCK = {"name": "residual", "layers": [{"name": "conv2d", "filters": 8, "stride": 2, "padding": 1},
                                                {"name": "batch_norm"}, "relu", {"name": "conv2d", "filters": 8, "padding": 1}]}
CASES = {
    "mlp": (MLP(hidden=[16, 8], input_bn=True, bn=True, activation="tanh", dropout=0.2), (1, 28, 28)),
    "mnist_cnn": (MnistCNN(), (1, 28, 28)),
    "vgg": (VGG(cfg=[8, "M", 16, "M"], fc=[32], bn=True, bn_noise=0.1, dropout=0.2, pool="avg", activation="elu"),
            (3, 32, 32)),
    "layers": (parse_model([{"name": "conv2d", "filters": 6, "kernel": 5, "padding": "same"}, "tanh",
                            {"name": "avg_pool"}, {"name": "layer_norm"}, RESNET_BLOCK, "silu",
                            {"name": "dropout", "p": 0.2, "spatial": True}, "global_avg_pool",
                            {"name": "dense", "units": 12}, {"name": "batch_norm", "noise": 0.1}, "gelu",
                            {"name": "dropout", "p": 0.3}, {"name": "dense", "units": "classes"}]), (3, 16, 16)),
}


def test_every_registered_model_has_a_case():
    assert set(CASES) == {name for name, cls in MODELS.items() if not getattr(cls, "plugin", False)}


def _autograd_grads(net, x, y):
    """Gradients of the same forward pass through torch.autograd, for comparison."""
    decls = [(layer, d) for layer in walk(net.layers) for d in layer.params()]
    theta = net.theta.detach().clone().requires_grad_(True)
    saved = net.theta
    net.theta = theta
    net._bind(decls)
    with torch.enable_grad():
        logp = torch.log_softmax(net.forward(x, train=True), dim=-1)
        (-logp.gather(-1, y.unsqueeze(-1)).mean(dim=(1, 2))).sum().backward()
    net.theta = saved
    net._bind(decls)
    return theta.grad


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_nan_and_gradients(name):
    spec, shape = CASES[name]
    K, B = 3, 6
    seeds = [0, 1, 2]
    x = torch.rand(K, B, *shape)
    y = torch.randint(0, 10, (K, B))
    net = build(spec, shape, 10, seeds)
    logits = net.forward(x, train=False)
    assert logits.shape == (K, B, 10) and torch.isfinite(logits).all()
    # same generators for both passes: rebuild with the same seeds so dropout / noise match
    ref = build(spec, shape, 10, seeds)
    expected = _autograd_grads(ref, x, y)
    with torch.no_grad():
        _, g, _ = cross_entropy(net.forward(x, train=True), y)
        net.backward(g)
    assert torch.isfinite(net.grad).all()
    assert net.grad.abs().sum() > 0
    torch.testing.assert_close(net.grad, expected, rtol=1e-4, atol=1e-5)


def test_mnist_cnn_parameter_count():
    net = build(MnistCNN(), (1, 28, 28), 10, [0])
    assert net.P == 1_199_882
    assert MnistCNN().n_params((1, 28, 28), 10) == 1_199_882


def test_summary_shapes():
    rows = MLP(hidden=[64]).summary((1, 28, 28), 10)
    assert [r.shape for r in rows] == [(784,), (64,), (64,), (10,)]
    assert [r.params for r in rows] == [0, 784 * 64 + 64, 0, 650]
    rows = CASES["layers"][0].summary((3, 16, 16), 10)
    nested = [r for r in rows if r.depth == 1]
    assert [r.label for r in nested][:2] == ["conv2d filters=8, kernel=3, stride=2, padding=1", "batch_norm"]
    assert sum(r.params for r in rows if r.depth == 0) == build(CASES["layers"][0], (3, 16, 16), 10, [0]).P


@pytest.mark.parametrize("scheme", ["torch", "glorot"])
def test_init_depends_on_seed_only(scheme):
    a = build(MLP(hidden=[32], init=scheme), (1, 28, 28), 10, [5])
    b = build(MLP(hidden=[32], init=scheme), (1, 28, 28), 10, [9, 5, 7])
    assert torch.equal(a.theta[0], b.theta[1])
    assert not torch.equal(b.theta[0], b.theta[1])
    w = a.layers[1].p["weight"]
    bound = 1 / math.sqrt(784) if scheme == "torch" else math.sqrt(6 / (784 + 32))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    bias = a.layers[1].p["bias"]
    assert (bias.abs().max() == 0) == (scheme == "glorot")


def test_bad_model_parameters():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        MLP(hidden=[0])
    with pytest.raises(ValidationError):
        VGG(cfg=["M"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_evaluation_equals_the_population_form(name):
    """Evaluation runs a network's image layers member by member in channels-last layout (on CPU), the
    rest in population form; it computes what the population form computes in evaluation (every layer's
    forward on [B, K*C, H, W]), to float32 rounding. Bound: the two forms take the same products and
    sums in another order (oneDNN blocks NCHW and NHWC convolutions differently); each order's result is
    within a few float32 eps (2^-23) per layer of the exact sum for these few layers of at most 600 terms,
    so 64 eps of the largest logit holds them (measured: at most 10 eps)."""
    spec, shape = CASES[name]
    K, B = 3, 64
    torch.manual_seed(0)
    net = build(spec, shape, 10, [0, 1, 2])
    net.theta.add_(0.05 * torch.randn_like(net.theta) * (net.theta != 0))
    with torch.no_grad():
        for _ in range(3):
            net.forward(torch.rand(K, B, *shape), train=True)  # BatchNorm's running statistics move
        x = torch.rand(K, B, *shape)
        logits = net.forward(x.clone(), train=False)
        ref = x.clone()
        for layer in net.layers:
            ref = layer.forward(ref, False)
    bound = 64 * 2.0 ** -23 * float(ref.abs().max())
    torch.testing.assert_close(logits, ref, rtol=0, atol=bound)
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 2 * bound  # a prediction can flip only within the bound of a tie
    assert torch.equal(logits.argmax(-1)[clear], ref.argmax(-1)[clear])
    y = torch.randint(0, 10, (K, B))
    (a, _, hits_a), (b, _, hits_b) = (cross_entropy(z, y, with_grad=False) for z in (logits, ref))
    torch.testing.assert_close(a, b, rtol=0, atol=2 * bound)
    if clear.all():
        assert torch.equal(hits_a, hits_b)
