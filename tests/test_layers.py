"""Every registered layer, from its own examples: explicit backward == autograd, population form ==
its torch.nn module (member by member), and a misfit refused with its place named. A new layer gets
these checks by registering with examples."""

from __future__ import annotations

import pytest
import torch

from petri.errors import SpecError
from petri.models import LAYERS, Layers, Network, parse_model
from petri.models.compile import compile_layers, member_state, modules, shapes, walk

CASES = [(name, params, shape) for name, cls in LAYERS.items() for params, shape in cls.examples]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]
K, B = 3, 4


def test_every_registered_layer_has_examples():
    assert {name for name, _, _ in CASES} == set(LAYERS)


def _net(name, params, shape):
    spec = LAYERS.parse({"name": name, **params}, "test")
    layers = compile_layers([spec], shape)
    net = Network(layers, shape, seeds=[0, 1, 2])
    for layer in walk(layers):
        layer.need_input_grad = True  # check the input gradient too
    return spec, net


def _to_member(y, k, out):
    """The network's output in member layout [k, B, *out] (it may end in the channels layout [B, k*C, H, W])."""
    return y.view(B, k, *out).transpose(0, 1) if len(out) == 3 and y.dim() == 4 else y


@pytest.mark.parametrize("name,params,shape", CASES, ids=IDS)
def test_backward_matches_autograd(name, params, shape):
    torch.manual_seed(0)
    spec, net = _net(name, params, shape)
    out = shapes([spec], shape)[-1][1]
    x = torch.randn(K, B, *shape)
    net.theta.add_(0.1 * torch.randn_like(net.theta) * (net.theta != 0))  # BN / LN scales away from 1
    theta0 = net.theta.clone()
    with torch.no_grad():
        y = net.forward(x.clone(), train=True)
        gy = torch.randn_like(y)
        g = gy
        for layer in reversed(net.layers):
            g = layer.backward(g)
    grad, gx = net.grad.clone(), g

    _, ref = _net(name, params, shape)  # same seeds: the same dropout masks and BN noise
    theta = theta0.clone().requires_grad_(True)
    ref.theta = theta
    ref._bind([(layer, d) for layer in walk(ref.layers) for d in layer.params()])
    xr = x.clone().requires_grad_(True)
    with torch.enable_grad():
        yr = ref.forward(xr, train=True)
        (yr * gy).sum().backward()
    torch.testing.assert_close(y, yr.detach(), rtol=1e-5, atol=1e-6)
    if net.P:
        torch.testing.assert_close(grad, theta.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_to_member(gx, K, shape), xr.grad, rtol=1e-4, atol=1e-5)
    assert _to_member(y, K, out).shape == (K, B, *out)


def _random(name, params) -> bool:
    return (name == "dropout" and params.get("p", 0.5) > 0) or params.get("noise", 0) > 0


@pytest.mark.parametrize("name,params,shape", CASES, ids=IDS)
def test_population_equals_torch_module(name, params, shape):
    """Each member computes what the layer's plain torch.nn module computes with that member's weights,
    in training (batch statistics, running-statistics updates) and in evaluation."""
    torch.manual_seed(1)
    spec, net = _net(name, params, shape)
    out = shapes([spec], shape)[-1][1]
    net.theta.add_(0.1 * torch.randn_like(net.theta) * (net.theta != 0))
    x = torch.randn(K, B, *shape)
    mods = []
    for k in range(K):
        m = modules([spec], shape)
        m.load_state_dict(member_state(net.layers, k), strict=True)
        mods.append(m)
    with torch.no_grad():
        if not _random(name, params):
            y = _to_member(net.forward(x.clone(), train=True), K, out)
            for k, m in enumerate(mods):
                torch.testing.assert_close(y[k], m.train()(x[k]), rtol=1e-5, atol=1e-6)
                for key, t in member_state(net.layers, k).items():  # running statistics moved alike
                    torch.testing.assert_close(t, m.state_dict()[key], rtol=1e-5, atol=1e-6)
        y = _to_member(net.forward(x.clone(), train=False), K, out)
        for k, m in enumerate(mods):
            torch.testing.assert_close(y[k], m.eval()(x[k]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,params,shape", CASES, ids=IDS)
def test_member_alone_equals_member_in_pack(name, params, shape):
    """A member's outputs and gradients do not depend on the others (K = 1 vs K = 3), random draws included."""
    torch.manual_seed(2)
    spec = LAYERS.parse({"name": name, **params}, "test")
    out = shapes([spec], shape)[-1][1]
    x, gy = torch.randn(3, B, *shape), torch.randn(3, B, *out)
    ys, grads = [], []
    for seeds, k in (([5], 0), ([3, 5, 9], 1)):
        net = Network(compile_layers([spec], shape), shape, seeds=seeds)
        xs, gs = x[:len(seeds)].clone(), gy[:len(seeds)].clone()
        xs[k], gs[k] = x[1], gy[1]
        with torch.no_grad():
            y = net.forward(xs, train=True)
            g = gs.transpose(0, 1).reshape(y.shape) if y.dim() == 4 and len(out) == 3 else gs
            for layer in reversed(net.layers):
                g = layer.backward(g)
                if g is None:
                    break
        ys.append(_to_member(y, len(seeds), out)[k])
        grads.append(net.grad[k, :net.P].clone())
    # Not bitwise here: the population layers alone and packed may take different kernels (a batched
    # GEMM of 1 vs 3, BatchNorm over 1 vs 3 members' channels), whose sums are rounded in another order,
    # each rounding within eps of the running sum. An element that cancels to ~0 (a conv bias before
    # BatchNorm: exactly zero in real arithmetic) keeps only that rounding, so the absolute bound scales
    # with the tensor's largest elements: 2^-13 ≈ 64 float32 eps per unit of the largest |value|.
    # (Training is bitwise alone vs packed: test_train, test_resume.)
    for a, b in (ys, grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2 ** -13 * float(b.abs().max()) if b.numel() else 0.0)


def _misfit(items, shape=(1, 8, 8)):
    with pytest.raises(SpecError) as e:
        parse_model(items, "model").check(shape, 10)
    return str(e.value)


def test_misfits_name_the_layer_and_shapes():
    assert _misfit(["flatten", {"name": "conv2d", "filters": 4}]) .startswith(
        "model.layers[1] (conv2d): conv2d needs an image input")
    msg = _misfit([{"name": "conv2d", "filters": 4, "kernel": 5}, {"name": "conv2d", "filters": 4, "kernel": 5}])
    assert msg.startswith("model.layers[1] (conv2d): a 5×5 kernel does not fit a 4×4 map") and "input 4×4×4" in msg
    assert "add \"flatten\"" in _misfit([{"name": "dense", "units": 10}])
    assert _misfit(["flatten", {"name": "dense", "units": 12}]).startswith("model: the last layer gives 12")
    nested = _misfit([{"name": "residual", "layers": [{"name": "conv2d", "filters": 2, "kernel": 9}]}, "flatten",
                      {"name": "dense", "units": "classes"}])
    assert nested.startswith("model.layers[0].layers[0] (conv2d)")
    assert "identity shortcut" in _misfit([{"name": "residual", "shortcut": "identity",
                                            "layers": [{"name": "conv2d", "filters": 2}]}])


@pytest.mark.parametrize("item,message", [
    ({"name": "convv"}, "model.layers[0]: unknown layer 'convv'; known layers: dense, flatten, conv2d"),
    ({"name": "conv2d", "filters": 4, "kernel": 0}, "model.layers[0].kernel: must be ≥ 1 (got 0)"),
    ({"name": "conv2d"}, "model.layers[0].filters: missing (required)"),
    ({"name": "dense", "units": 10, "bais": True}, "model.layers[0].bais: unknown field; allowed: units, bias"),
    ({"name": "dropout", "p": 1.5}, "model.layers[0].p: must be < 1.0 (got 1.5)"),
    (3, "model.layers[0]: a layer is a name or a table with a name (got 3)"),
])
def test_layer_errors_in_petri_words(item, message):
    with pytest.raises(SpecError) as e:
        parse_model([item], "model")
    assert str(e.value).startswith(message), str(e.value)


def test_bare_names_and_classes():
    m = parse_model(["flatten", {"name": "dense", "units": 32}, "gelu", {"name": "dense", "units": "classes"}])
    assert isinstance(m, Layers)
    assert [r.shape for r in m.summary((1, 8, 8), 7)] == [(64,), (32,), (32,), (7,)]
