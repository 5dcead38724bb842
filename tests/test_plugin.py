"""A user's own torch.nn.Module as a petri model: registration, population training through
torch.func, pack independence, refusals in one line, plugins named by a study file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import petri
from petri.errors import SpecError
from petri.models import MODELS, parse_model
from petri.models.plugin import ModuleNetwork
from petri.study.spec import parse_study
from petri.train import Member, Recipe, train_pack
from petri.train.loss import cross_entropy

ROOT = Path(__file__).resolve().parent.parent


def small_net(n_classes: int, width: int = 4, dropout: float = 0.3, bn: bool = True):
    layers = [nn.Conv2d(1, width, 3), *([nn.BatchNorm2d(width)] if bn else []), nn.ReLU(), nn.AvgPool2d(2),
              nn.Dropout2d(0.1), nn.Flatten(), nn.Linear(width * 13 * 13, 16), nn.Tanh(), nn.Dropout(dropout),
              nn.Linear(16, n_classes)]
    return nn.Sequential(*layers)


@pytest.fixture
def registered():
    names = []

    def register(name, factory):
        petri.register_model(name, factory)
        names.append(name)
        return name

    yield register
    for n in names:
        MODELS.classes.pop(n, None)


def _steps(net, x, y, steps=3):
    from petri.train.optim import Optimizer
    from petri.train.recipe import Adam

    opt = Optimizer(Adam(lr=1e-2), net.theta, [1e-2] * net.K, [0.0] * net.K)
    with torch.no_grad():
        for _ in range(steps):
            _, g, _ = cross_entropy(net.forward(x, train=True), y)
            net.backward(g)
            opt.step(net.theta, net.grad, (True,) * net.K)
        return net.forward(x, train=False)


def test_factory_parameters_become_model_parameters(registered):
    registered("small_net", small_net)
    spec = parse_model({"name": "small_net", "width": 6}, "model")
    assert spec.width == 6 and spec.dropout == 0.3
    with pytest.raises(SpecError, match=r"^model.width: must be an integer \(got 'six'\)$"):
        parse_model({"name": "small_net", "width": "six"}, "model")
    with pytest.raises(SpecError, match=r"^model.depth: unknown field; allowed: width, dropout, bn$"):
        parse_model({"name": "small_net", "depth": 2}, "model")
    rows = spec.summary((1, 28, 28), 10)
    assert rows[0].label == "0 (Conv2d)" and rows[0].shape == (6, 26, 26) and rows[0].params == 60
    assert spec.n_params((1, 28, 28), 10) == sum(p.numel() for p in small_net(10, 6).parameters())


def test_members_alone_equal_members_in_pack_bitwise_on_cpu(registered):
    """Each member runs its own functional_call on CPU (dropout masks and BN statistics per member)."""
    torch.manual_seed(0)
    x, y = torch.rand(3, 8, 1, 28, 28), torch.randint(0, 10, (3, 8))
    make = lambda: small_net(10)  # noqa: E731
    alone = ModuleNetwork(make, (1, 28, 28), [7], "cpu", "t")
    packed = ModuleNetwork(make, (1, 28, 28), [2, 7, 4], "cpu", "t")
    xs, ys = x.clone(), y.clone()
    out_alone = _steps(alone, x[1:2], y[1:2])
    out_packed = _steps(packed, xs, ys)
    assert torch.equal(out_alone[0], out_packed[1])
    assert torch.equal(alone.theta[0], packed.theta[1])
    assert torch.equal(alone.member_state(0)["1.running_mean"], packed.member_state(1)["1.running_mean"])
    assert not torch.equal(packed.theta[0], packed.theta[1])  # other seeds, other weights


def test_vmap_path_matches_per_member_path():
    """What a GPU runs (one vmap-ed call for all members) computes what the CPU path does."""
    torch.manual_seed(1)
    x, y = torch.rand(3, 8, 1, 28, 28), torch.randint(0, 10, (3, 8))
    make = lambda: small_net(10)  # noqa: E731
    outs, grads, stats = [], [], []
    for use_vmap in (False, True):
        net = ModuleNetwork(make, (1, 28, 28), [1, 2, 3], "cpu", "t", use_vmap=use_vmap)
        with torch.no_grad():
            out = net.forward(x, train=True)
            net.backward(cross_entropy(out, y)[1])
        outs.append(out)
        grads.append(net.grad.clone())
        stats.append(net.buffers["1.running_var"].clone())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stats[1], stats[0], rtol=1e-5, atol=1e-6)


def test_initial_weights_come_from_the_members_seed():
    a = ModuleNetwork(lambda: small_net(10), (1, 28, 28), [5], "cpu", "t")
    b = ModuleNetwork(lambda: small_net(10), (1, 28, 28), [9, 5], "cpu", "t")
    assert torch.equal(a.theta[0], b.theta[1]) and not torch.equal(b.theta[0], b.theta[1])
    torch.manual_seed(123)  # the global stream is neither used nor disturbed
    before = torch.rand(3)
    torch.manual_seed(123)
    ModuleNetwork(lambda: small_net(10), (1, 28, 28), [5], "cpu", "t")
    assert torch.equal(torch.rand(3), before)


def test_module_trains_in_the_loop_alone_vs_packed(registered, mnist):
    registered("small_net", small_net)
    recipe = Recipe(model={"name": "small_net", "dropout": 0.2}, epochs=2, batch_size=50, train_size=500,
                    test_size=200, device="cpu")
    alone = train_pack(mnist, recipe, [Member(3)])[0]
    packed = train_pack(mnist, recipe, [Member(1), Member(3), Member(5)])[1]
    assert alone.status == packed.status == "done"
    for a, b in zip(alone.epochs, packed.epochs):  # shards run on one thread each: conv kernels may round otherwise
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-3)
    assert alone.epochs[-1]["test_acc"] > 0.5


def _refused(registered, factory, match):
    registered("bad_net", factory)
    with pytest.raises(SpecError, match=match) as e:
        parse_model("bad_net", "model").check((1, 28, 28), 10)
    assert "\n" not in str(e.value)


def test_modules_that_cannot_train_in_population_form_are_refused_in_one_line(registered):
    class RandomInForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return F.dropout(self.fc(x.flatten(1)), 0.5, self.training)

    _refused(registered, lambda: RandomInForward(), r"^model: model 'bad_net' cannot train in population form: its "
                                                    r"forward draws random numbers outside nn.Dropout")
    _refused(registered, lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 7)),
             r"gives outputs of shape \(7,\) per image; the data set has 10 classes")
    _refused(registered, lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).double(), r"Float and Double")
    _refused(registered, lambda: nn.Sequential(nn.Flatten(), nn.Linear(100, 10)),
             r"^model: model 'bad_net' fails on a batch of 1×28×28 images: RuntimeError: .*shapes cannot be multiplied")
    _refused(registered, lambda: "not a module", r"the factory returned str, not a torch.nn.Module")


def test_built_in_names_cannot_be_taken():
    with pytest.raises(SpecError, match="'mlp' is a built-in model"):
        petri.register_model("mlp", small_net)


PLUGIN = '''
import torch.nn as nn
import petri

def tiny(n_classes: int, hidden: int = 8):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

petri.register_model("tiny_plugin", tiny)
'''

STUDY = '''
name = "plugged"
data = "mnist"
seeds = 2
plugins = ["models/tiny.py"]

[recipe]
model = { name = "tiny_plugin", hidden = { values = [8, 16] } }
epochs = 1
train_size = 500
test_size = 200

[variants.a]
'''


def test_study_plugins_enter_the_cell_hash(tmp_path):
    (tmp_path / "models").mkdir()
    plugin = tmp_path / "models" / "tiny.py"
    plugin.write_text(PLUGIN)
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY)
    try:
        from petri.study.spec import load_study

        s = load_study(study_file)
        assert len(s.cells) == 4 and s.plugins == [str(plugin.resolve())]
        assert all('"model_code"' in c.config for c in s.cells)
        plugin.write_text(PLUGIN.replace("nn.ReLU()", "nn.Tanh()"))  # an edited module: other cells
        edited = load_study(study_file)
        assert {c.hash for c in edited.cells}.isdisjoint({c.hash for c in s.cells})
        assert type(edited.cells[0].recipe.model).__name__ == "Plugin_tiny_plugin"
    finally:
        MODELS.classes.pop("tiny_plugin", None)


@pytest.mark.parametrize("entry,match", [
    ('"models/missing.py"', r"plugins\[0\]: cannot read .*missing.py \(No such file or directory\)"),
    ('"no_such_module_xyz"', r"plugins\[0\]: no file or module 'no_such_module_xyz'"),
    ('"models/broken.py"', r"plugins\[0\]: importing .*broken.py failed: NameError: name 'undefined' is not defined"),
    ('3', r"plugins: must be a list of Python files or module names"),
])
def test_bad_plugins_are_one_line(tmp_path, entry, match):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "broken.py").write_text("x = undefined\n")
    f = tmp_path / "study.toml"
    f.write_text(STUDY.replace('["models/tiny.py"]', f"[{entry}]" if entry != "3" else "3"))
    with pytest.raises(SpecError, match=match) as e:
        parse_study(f.read_text(), str(f))
    assert "\n" not in str(e.value)


def test_shipped_lenet5_module_example_runs(tmp_path, shared_data):
    """examples/lenet5: LeNet-5 as a plain nn.Module, run through the CLI (quick profile), then shown and
    reported from another working directory (the plugin is found again from the stored study path)."""
    env = {**os.environ, "PETRI_DATA": str(shared_data.resolve())}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "petri.cli", "run", str(ROOT / "examples/lenet5/study.toml"),
                        "--profile", "quick", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "6 cells — 6 done" in r.stdout
    r = subprocess.run([sys.executable, "-m", "petri.cli", "show", str(out)], capture_output=True, text=True,
                       cwd="/", env=env, timeout=120)
    assert r.returncode == 0 and "relu-dropout" in r.stdout, r.stderr
    assert (out / "report" / "index.html").is_file()
    summary = textwrap.dedent(r.stdout)
    assert "2 done" in summary


def test_own_treatment_example_is_documented_runs_and_keeps_pairing(tmp_path, shared_data):
    """examples/own-treatment: a treatment in a plugin file, seen by `petri models --plugins`, trained
    by the shipped study; its draws depend on (member key, image, epoch) only, and its source is part
    of its cells."""
    env = {**os.environ, "PETRI_DATA": str(shared_data.resolve())}
    plugin = ROOT / "examples/own-treatment/brightness.py"
    r = subprocess.run([sys.executable, "-m", "petri.cli", "models", "--plugins", str(plugin), "brightness"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "brightness (treatment)" in r.stdout and "strength" in r.stdout, r.stderr
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "petri.cli", "run", str(ROOT / "examples/own-treatment/study.toml"),
                        "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "6 cells — 6 done" in r.stdout

    import petri
    from petri.study import plugins
    from petri.study.spec import load_study
    from petri.treatments import TREATMENTS

    try:  # in this process too (then forgotten: the registry stays the built-in one for other tests)
        study = load_study(ROOT / "examples/own-treatment/study.toml")
    finally:
        TREATMENTS.classes.pop("brightness", None)
        plugins._loaded.pop(str(plugin.resolve()), None)
    treated = [c for c in study.cells if c.variant == "brightness"]
    assert all('"treatment_code"' in c.config for c in treated)
    assert not any('"treatment_code"' in c.config for c in study.cells if c.variant == "plain")
    t = treated[0].treatments[0]
    x = torch.full((2, 3, 1, 4, 4), 0.5)
    idx = torch.tensor([[0, 1, 2], [2, 1, 0]])
    keys = torch.tensor([11, 11])
    y = t.apply(x.clone(), idx, {}, keys, epoch=1)
    assert torch.equal(y[0, 0], y[1, 2]) and not torch.equal(y[0, 0], y[0, 1])  # the image's draw, wherever it is
    assert not torch.equal(y, t.apply(x.clone(), idx, {}, keys, epoch=2))  # fresh each epoch
    assert ((y >= 0.3 - 1e-6) & (y <= 0.7 + 1e-6)).all()  # 0.5 × [0.6, 1.4]
    with pytest.raises(petri.PetriError, match="needs a name field with a default"):
        petri.register_treatment(type("Nameless", (petri.Treatment,), {"__annotations__": {}}))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        x = x.flatten(1)
        if x.sum() > 0:  # data-dependent control flow: one vmapped call over all members cannot branch
            return self.fc(x)
        return -self.fc(x)


def test_data_dependent_control_flow_is_refused_with_what_to_do_and_where(registered):
    name = registered("branchy_test", lambda: _Branchy())
    with pytest.raises(SpecError) as e:
        parse_model(name).check((1, 28, 28), 10)
    msg = str(e.value)
    assert "branches on a tensor's value" in msg and "torch.where(cond, a, b)" in msg
    assert f"at {__file__}:" in msg and "if x.sum() > 0:" in msg and "\n" not in msg
