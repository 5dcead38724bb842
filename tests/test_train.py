"""The population loop: fairness invariants, optimiser semantics, divergence, early stopping, learning."""

from __future__ import annotations

import copy

import pytest
import torch

from petri.models import MLP, VGG, MnistCNN, build, parse_model
from petri.train import SGD, Adam, AdamW, Constant, Cosine, EarlyStopping, Member, OneCycle, Recipe, RMSprop, StepDecay, train_pack
from petri.train.early_stop import Stopper
from petri.train.optim import Optimizer
from petri.treatments import parse_treatment

SMALL = dict(train_size=2000, test_size=500, batch_size=100, device="cpu")


def _final(results):
    return [r.epochs[-1] for r in results]


def test_accuracy_floor_one_epoch(mnist):
    """mlp [64], Adam 1e-3, batch 100, one epoch on all of MNIST: test accuracy >= 0.92."""
    r = train_pack(mnist, Recipe(model=MLP(hidden=[64]), epochs=1, device="cpu"), [Member(0)])[0]
    assert r.status == "done"
    assert r.epochs[0]["test_acc"] >= 0.92


def test_member_alone_equals_member_in_pack_bitwise(mnist):
    recipe = Recipe(model=MLP(hidden=[32]), epochs=2, **SMALL)
    inv = [parse_treatment({"name": "invert"})]
    alone = train_pack(mnist, recipe, [Member(7, inv)])[0]
    packed = train_pack(mnist, recipe, [Member(1), Member(7, inv), Member(3, inv), Member(9)])[1]
    odd = train_pack(mnist, recipe, [Member(s, inv if s % 2 else []) for s in (0, 1, 2, 3, 7, 5, 6)])[4]
    for other in (packed, odd):
        for a, b in zip(alone.epochs, other.epochs):
            for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
                assert a[key] == b[key], key


def test_augmented_member_alone_equals_member_in_pack_bitwise(mnist):
    """crop and flip are done by reading the images (padded copies sized by the pack's largest pad,
    one per mode in the pack): a member's numbers must not depend on who else is in its pack."""
    recipe = Recipe(model=MLP(hidden=[32]), epochs=2, **SMALL)
    aug = [parse_treatment({"name": "crop", "pad": 2}), parse_treatment({"name": "flip"})]
    other = [parse_treatment({"name": "flip"}), parse_treatment({"name": "crop", "pad": 4, "mode": "constant"})]
    alone = train_pack(mnist, recipe, [Member(7, aug)])[0]
    packed = train_pack(mnist, recipe, [Member(1), Member(7, aug), Member(3, other)])[1]
    for a, b in zip(alone.epochs, packed.epochs):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert a[key] == b[key], key


LAYERS_NET = parse_model([{"name": "conv2d", "filters": 6, "kernel": 5, "padding": "same"}, "tanh", {"name": "avg_pool"},
                          {"name": "layer_norm"}, {"name": "residual", "layers": [
                              {"name": "conv2d", "filters": 8, "stride": 2, "padding": 1}, {"name": "batch_norm"}, "relu"]},
                          "global_avg_pool", {"name": "dense", "units": "classes"}])


@pytest.mark.parametrize("model", [MnistCNN(), VGG(cfg=[8, "M", 16, "M"], fc=[32], bn=True, bn_noise=0.1, dropout=0.2),
                                   MLP(hidden=[32], bn=True, dropout=0.1), LAYERS_NET],
                         ids=["mnist_cnn", "vgg", "mlp", "layers"])
def test_member_alone_equals_member_in_packs_of_any_size_bitwise(mnist, model):
    """K = 1 trains on all threads, a member of a larger pack on its shard's one thread: the same bits
    (MKL's strict reproducibility for GEMMs, a lone member's convolution gradients on one thread, BN
    on contiguous inputs)."""
    recipe = Recipe(model=model, epochs=2, train_size=256, test_size=200, batch_size=32, device="cpu")
    alone = train_pack(mnist, recipe, [Member(4)])[0]
    packed = train_pack(mnist, recipe, [Member(2), Member(4)])[1]
    larger = train_pack(mnist, recipe, [Member(s) for s in (9, 4, 5, 6, 7)])[1]
    for a, b, c in zip(alone.epochs, packed.epochs, larger.epochs):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert a[key] == b[key] == c[key], key


def test_same_seed_same_result_and_seeds_differ(mnist):
    recipe = Recipe(model=MLP(hidden=[32]), epochs=1, **SMALL)
    a, b, c = _final(train_pack(mnist, recipe, [Member(0), Member(0), Member(1)]))
    assert a["test_loss"] == b["test_loss"]
    assert a["test_loss"] != c["test_loss"]


def test_treatment_does_not_change_batch_order_or_init(mnist):
    """Common random numbers: a treatment that changes nothing numerically (window covering the
    whole image) gives exactly the untreated result, so it consumed no init / order randomness."""
    recipe = Recipe(model=MLP(hidden=[32]), epochs=1, **SMALL)
    full = [parse_treatment({"name": "window_keep", "size": 28, "row": 0, "col": 0})]
    a, b = _final(train_pack(mnist, recipe, [Member(3), Member(3, full)]))
    assert a["test_loss"] == b["test_loss"]


def test_divergence_is_isolated(mnist):
    recipe = Recipe(model=MLP(hidden=[32]), optimizer=SGD(lr=0.1), epochs=3, **SMALL)
    members = [Member(0), Member(1), Member(2, lr=1e3), Member(3)]
    results = train_pack(mnist, recipe, members)
    assert [r.status for r in results] == ["done", "done", "diverged", "done"]
    healthy = train_pack(mnist, recipe, [Member(0), Member(1), Member(3)])
    for r, h in zip([results[0], results[1], results[3]], healthy):
        assert r.epochs[-1]["test_loss"] == h.epochs[-1]["test_loss"]
    assert all(torch.isfinite(torch.tensor(m["train_loss"])) for m in results[2].epochs)


def _torch_reference(spec, seed, steps, opt_factory, mnist):
    """Train the same member with a hand-written nn module + torch.optim for `steps` batches."""
    net = build(MLP(hidden=[16]), (1, 28, 28), 10, [seed])
    w1, b1 = net.layers[1].p["weight"][0].clone(), net.layers[1].p["bias"][0, 0].clone()
    w2, b2 = net.layers[3].p["weight"][0].clone(), net.layers[3].p["bias"][0, 0].clone()
    params = [p.requires_grad_() for p in (w1, b1, w2, b2)]
    opt = opt_factory(params)
    x = mnist.train_x[:steps * 50].reshape(steps, 50, -1).float() / 255
    y = mnist.train_y[:steps * 50].reshape(steps, 50)
    for s in range(steps):
        loss = torch.nn.functional.cross_entropy(torch.relu(x[s] @ w1 + b1) @ w2 + b2, y[s])
        opt.zero_grad()
        loss.backward()
        opt.step()
    ours = Optimizer(spec, net.theta, [spec.lr], [spec.weight_decay])
    for s in range(steps):
        from petri.train.loss import cross_entropy

        _, g, _ = cross_entropy(net.forward(x[s][None].reshape(1, 50, 1, 28, 28), True), y[s][None])
        net.backward(g)
        ours.step(net.theta, net.grad, (True,))
    return torch.cat([p.detach().reshape(-1) for p in params]), net.theta[0, :net.P]


OPTIMISERS = [
    (Adam(lr=1e-2, weight_decay=1e-3), lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3)),
    (SGD(lr=0.1, momentum=0.9, weight_decay=1e-4), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4)),
    (SGD(lr=0.1, momentum=0.9, nesterov=True), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    (SGD(lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    (AdamW(lr=1e-2, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1)),
    (RMSprop(lr=1e-3, weight_decay=1e-3), lambda p: torch.optim.RMSprop(p, lr=1e-3, weight_decay=1e-3)),
    (RMSprop(lr=1e-3, momentum=0.9, centered=True, alpha=0.9),
     lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.9, centered=True, alpha=0.9)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spec,factory", OPTIMISERS)
def test_optimisers_match_torch_optim(spec, factory, dtype):
    """petri's update and torch.optim's (its default, non-fused implementation) on the *same* gradients,
    so only the update rule is compared: 3 members x 512 elements, 20 steps, gradients of every scale
    (1, 1e-4, 1e-8 and exact zeros, where Adam's and RMSprop's normalisation is most sensitive)."""
    steps, K, P = 20, 3, 512
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(K, P, generator=gen, dtype=dtype)
    scale = torch.tensor([1.0, 1e-4, 1e-8, 0.0], dtype=dtype).repeat(P // 4)  # [P]
    grads = [torch.randn(K, P, generator=gen, dtype=dtype) * scale for _ in range(steps)]
    ref = theta.clone().requires_grad_()
    opt = factory([ref])
    ours = Optimizer(spec, theta, [spec.lr] * K, [spec.weight_decay] * K)
    for g in grads:
        ref.grad = g.clone()
        opt.step()
        ours.step(theta, g.clone(), (True,) * K)
    # Why this bound: both sides compute the same rule from the same inputs in a different operation
    # order (fused kernel vs op by op), so each step's update differs by a few roundings (eps) of an
    # update whose size is at most lr / (1 - momentum) (normalised by Adam/RMSprop, or times |g| <= 4.5
    # for SGD); the differences add up over the steps. A wrong rule (bias correction, decay coupling,
    # eps placement, Nesterov) moves elements by ~lr per step, orders of magnitude beyond it.
    eps = torch.finfo(dtype).eps
    update = spec.lr / (1 - getattr(spec, "momentum", 0.0)) * 5
    torch.testing.assert_close(theta, ref.detach(), rtol=8 * steps * eps, atol=8 * steps * eps * update)


@pytest.mark.parametrize("spec,factory", [o for o in OPTIMISERS if isinstance(o[0], SGD)])
def test_training_matches_nn_and_torch_optim(spec, factory, mnist):
    """The whole step (petri's forward, explicit backward and update) against autograd + torch.optim
    for 5 batches. SGD only: its update is linear in the gradient, so the float32 rounding differences
    of the two gradient computations stay as small, relatively, as the gradients themselves; Adam and
    RMSprop would divide an element's rounding noise by its own tiny magnitude when its gradient is near
    zero (their update rule is compared on identical gradients above; the gradients against autograd in
    test_models)."""
    ref, ours = _torch_reference(spec, 0, 5, factory, mnist)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def test_per_member_learning_rates():
    theta = torch.ones(3, 4)
    opt = Optimizer(SGD(lr=1.0), theta, [0.1, 0.2, 0.0], [0, 0, 0])
    opt.step(theta, torch.ones(3, 4), (True, True, True))
    assert theta[:, 0].tolist() == pytest.approx([0.9, 0.8, 1.0])


@pytest.mark.parametrize("spec", [Adam(lr=0.1), SGD(lr=0.1, momentum=0.9), AdamW(lr=0.1),
                                  RMSprop(lr=0.1, momentum=0.5, centered=True)])
def test_frozen_members_keep_parameters_and_state(spec):
    theta = torch.ones(4, 256)
    opt = Optimizer(spec, theta, [0.1, 0.2, 0.1, 0.1], [0.0, 0.0, 0.0, 0.01])
    assert [(lr, wd, [(r.start, r.stop) for r in rows]) for lr, wd, rows in opt.groups((True, True, False, True))] \
        == [(0.1, 0.0, [(0, 1)]), (0.2, 0.0, [(1, 2)]), (0.1, 0.01, [(3, 4)])]
    opt.step(theta, torch.ones(4, 256), (True, True, True, True))

    def member_2():  # its parameters and every [K, P] optimiser state tensor
        return [t[2].clone() for t in (theta, *opt.state.values())]

    before = member_2()
    for _ in range(3):
        opt.step(theta, torch.ones(4, 256), (True, True, False, True))
    assert all(torch.equal(a, b) for a, b in zip(member_2(), before))
    assert not torch.equal(theta[0], before[0])


def test_schedules():
    total, per = 100, 10
    assert Constant().factor(50, per, total) == 1.0
    assert StepDecay(step_epochs=3, gamma=0.5).factor(35, per, total) == 0.5
    cos = [Cosine().factor(s, per, total) for s in range(total)]
    assert cos[0] == 1.0 and cos[-1] == pytest.approx(0.0) and all(a >= b for a, b in zip(cos, cos[1:]))
    one = [OneCycle().factor(s, per, total) for s in range(total)]
    peak = max(range(total), key=lambda s: one[s])
    assert one[0] == pytest.approx(1 / 25) and 25 <= peak <= 35 and one[-1] < 1e-5


def test_early_stopping_patience():
    s = Stopper(EarlyStopping(monitor="test_acc", patience=2))
    stops = [s.update({"test_acc": a, "train_acc": 1.0}) for a in (0.5, 0.6, 0.6, 0.59)]
    assert stops == [False, False, False, True]


def test_early_stopping_cross_sampling_rule():
    rule = EarlyStopping(monitor="val_acc", patience=2, overfit_ratio=0.995)
    s = Stopper(rule)
    # no improvement for 2 epochs, but train acc * 0.995 is not above val acc: keep going
    seq = [(0.90, 0.90), (0.90, 0.89), (0.90, 0.90), (0.90, 0.999)]
    assert [s.update({"val_acc": v, "train_acc": t}) for v, t in seq] == [False, False, False, True]


def test_early_stopping_in_the_loop_freezes_member(mnist):
    recipe = Recipe(model=MLP(hidden=[16]), epochs=6, val_size=500,
                    early_stopping=EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0), **SMALL)
    results = train_pack(mnist, recipe, [Member(0), Member(1)])
    assert [r.status for r in results] == ["stopped-early", "stopped-early"]
    assert all(len(r.epochs) == 2 for r in results)
    assert results[0].epochs[0]["val_acc"] is not None


def test_pack_members_may_have_other_treatments_and_rates(mnist):
    recipe = Recipe(model=MLP(hidden=[32]), epochs=1, **SMALL)
    members = [Member(0), Member(0, [parse_treatment({"name": "invert"})], lr=3e-3)]
    a, b = train_pack(mnist, recipe, members)
    alone = train_pack(mnist, recipe, [copy.deepcopy(members[1])])[0]
    assert b.epochs[-1]["test_loss"] == alone.epochs[-1]["test_loss"]
    assert a.epochs[-1]["test_loss"] != b.epochs[-1]["test_loss"]


@pytest.mark.parametrize("shards, input_bn", [(2, False), (3, False), (5, False), (2, True)])
def test_shards_change_where_members_run_not_their_numbers(mnist, monkeypatch, shards, input_bn):
    """A pack split over threads (one intra-op thread each) gives every member exactly the numbers it
    gets in one shard; a shard whose members all stopped early idles while the others train on."""
    from petri.train import loop

    recipe = Recipe(model=MLP(hidden=[16], input_bn=input_bn), epochs=3, val_size=500,
                    early_stopping=EarlyStopping(monitor="val_loss", patience=1, min_delta=0.0), **SMALL)
    members = [Member(0), Member(1, lr=0.5), Member(2), Member(3, lr=0.5), Member(4)]
    threads = torch.get_num_threads()
    monkeypatch.setattr(loop, "shard_count", lambda *a: 1)
    whole = train_pack(mnist, recipe, members)
    monkeypatch.setattr(loop, "shard_count", lambda *a: shards)
    split = train_pack(mnist, recipe, members)
    assert torch.get_num_threads() == threads  # the caller's setting is restored
    assert [r.status for r in split] == [r.status for r in whole]
    assert len({len(r.epochs) for r in whole}) > 1  # some members stopped before others
    for a, b in zip(whole, split):
        assert len(a.epochs) == len(b.epochs)
        for ea, eb in zip(a.epochs, b.epochs):
            timed = ("images_per_s", "seconds", "train_seconds", "eval_seconds", "checkpoint_seconds")
            assert {k: v for k, v in ea.items() if k not in timed} == {k: v for k, v in eb.items() if k not in timed}
            assert eb["pack_size"] == len(members)


def test_a_failing_shard_stops_the_pack_promptly(mnist, monkeypatch):
    """An error in one shard reaches the caller at once, and the other shard stops at its next step
    instead of finishing its epoch."""
    from petri.train import loop, shard

    monkeypatch.setattr(loop, "shard_count", lambda *a: 2)
    steps = {1: 0, 2: 0}  # steps taken by the one-member and the two-member shard
    real = shard.cross_entropy

    def failing(logits, y, with_grad=True):
        steps[logits.shape[0]] += 1
        if logits.shape[0] == 1 and steps[1] == 3:
            raise RuntimeError("shard failed")
        return real(logits, y, with_grad)

    monkeypatch.setattr(shard, "cross_entropy", failing)
    recipe = Recipe(model=MLP(hidden=[16]), epochs=1, batch_size=10, device="cpu")  # 6000 steps an epoch
    with pytest.raises(RuntimeError, match="shard failed"):
        train_pack(mnist, recipe, [Member(0), Member(1), Member(2)])
    assert steps[2] < 6000


@pytest.mark.parametrize("input_bn", [False, True])
def test_absorbed_pixel_permutation_equals_training_on_permuted_images(mnist, input_bn):
    """An mlp takes permute_pixels into its first layer's weights instead of gathering every batch:
    it must train as it would on images whose pixels really were permuted (up to summation order)."""
    from dataclasses import replace

    from petri.treatments.base import Context
    from petri.treatments.pipeline import treatment_key

    recipe = Recipe(model=MLP(hidden=[32], input_bn=input_bn), epochs=2, **SMALL)
    t = parse_treatment({"name": "permute_pixels"})
    perm = t.state(treatment_key(5, t, 0), Context((1, 28, 28), 10, mnist.train_y, None, torch.device("cpu")))["perm"]
    permuted = replace(mnist, train_x=mnist.train_x.flatten(1)[:, perm].view_as(mnist.train_x),
                       test_x=mnist.test_x.flatten(1)[:, perm].view_as(mnist.test_x))
    absorbed, plain = train_pack(mnist, recipe, [Member(5, [t]), Member(5)])
    by_hand = train_pack(permuted, recipe, [Member(5)])[0]
    assert absorbed.epochs[-1]["test_loss"] != plain.epochs[-1]["test_loss"]  # the permutation did act
    for a, b in zip(absorbed.epochs, by_hand.epochs):
        for key in ("train_loss", "test_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=2e-3)


def test_gpu_check_script_runs_on_the_cpu(shared_data):
    """benchmarks/gpu_check.py (for a session lent a GPU) runs its checks on the CPU too, so it cannot rot."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick"],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PETRI_DATA": str(shared_data.resolve())})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASS") >= 9 and "FAIL" not in r.stdout


def test_each_epoch_records_its_learning_rate(mnist):
    """The rate of an epoch's last step: the member's own rate times the schedule's factor there."""
    recipe = Recipe(model=MLP(hidden=[16]), epochs=3, schedule=StepDecay(step_epochs=1, gamma=0.5), **SMALL)
    a, b = train_pack(mnist, recipe, [Member(0), Member(1, lr=0.01)])
    assert [e["lr"] for e in a.epochs] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert [e["lr"] for e in b.epochs] == pytest.approx([1e-2, 5e-3, 2.5e-3])
    cos = train_pack(mnist, Recipe(model=MLP(hidden=[16]), epochs=2, schedule=Cosine(), **SMALL), [Member(0)])[0]
    assert cos.epochs[-1]["lr"] == pytest.approx(0.0, abs=1e-12) and cos.epochs[0]["lr"] < 1e-3


def test_recorded_metrics_carry_no_digits_beyond_float32(mnist):
    """0.9452, not 0.9452000260353088: each float32 result is stored as the shortest decimal that is it."""
    import numpy as np

    r = train_pack(mnist, Recipe(model=MLP(hidden=[16]), epochs=1, **SMALL), [Member(0)])[0]
    for key in ("train_loss", "test_loss", "test_acc", "train_eval_loss", "train_eval_acc"):
        v = r.epochs[-1][key]
        assert repr(v) == str(np.float32(v)) and float(np.float32(v)) == pytest.approx(v, rel=1e-7), (key, v)
    assert r.epochs[-1]["test_acc"] * 500 == pytest.approx(round(r.epochs[-1]["test_acc"] * 500), abs=1e-9)


def test_eval_every_evaluates_scheduled_last_and_best_epochs(mnist):
    """eval_every = 3 over 7 epochs: the test split and the first training images are evaluated at epochs 3
    and 6, at a member's last epoch and at each new best of early stopping (whose validation split is
    evaluated every epoch); the other epochs record None. Training is unchanged, an evaluated epoch has the
    numbers an every-epoch run has, and which epochs a member evaluates does not depend on its pack."""
    es = EarlyStopping(monitor="val_loss", patience=2)
    members = [Member(0), Member(1, lr=0.05), Member(2, lr=0.3)]
    base = dict(model=MLP(hidden=[16]), epochs=7, val_size=300, early_stopping=es, **SMALL)
    every = train_pack(mnist, Recipe(**base), members)
    sparse = train_pack(mnist, Recipe(eval_every=3, **base), members)
    alone = train_pack(mnist, Recipe(eval_every=3, **base), [members[2]])[0]
    tested = ("test_loss", "test_acc", "train_eval_loss", "train_eval_acc")
    stops, skipped = set(), set()
    for a, b in zip(every, sparse):
        assert a.status == b.status and len(a.epochs) == len(b.epochs)
        stopper, best = Stopper(es), set()
        for e in a.epochs:
            stopper.update(e)
            best |= {e["epoch"]} if stopper.since_best == 0 else set()
        expected = {3, 6, a.epochs[-1]["epoch"]} & {e["epoch"] for e in a.epochs} | best
        assert {e["epoch"] for e in b.epochs if e["test_acc"] is not None} == expected
        skipped |= {len(expected) < len(b.epochs)}
        for ea, eb in zip(a.epochs, b.epochs):
            assert all(ea[k] == eb[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc"))
            assert all(eb[k] == (ea[k] if eb["epoch"] in expected else None) for k in tested)
        stops.add(a.status)
    assert stops == {"done", "stopped-early"} and True in skipped  # both ends of a course; some epochs left out
    for ea, eb in zip(alone.epochs, sparse[2].epochs):
        assert {k: ea[k] for k in tested} == {k: eb[k] for k in tested}


def test_eval_every_with_early_stopping_on_test_evaluates_every_epoch(mnist):
    es = EarlyStopping(monitor="test_acc", on_test=True, patience=5)
    r = train_pack(mnist, Recipe(model=MLP(hidden=[16]), epochs=3, eval_every=2, early_stopping=es, **SMALL),
                   [Member(0)])[0]
    assert all(e["test_acc"] is not None for e in r.epochs)


@pytest.mark.parametrize("train_size", [100, 150, 2000])
def test_a_packs_measured_cost_covers_epochs_of_any_length(mnist, train_size):
    """``cost.measure`` (the dry run's rates) keeps the fastest chunk of steps; an epoch of one step does
    not end the measurement early (the next epoch's steps are timed), an epoch whose last batch is short
    (150 images: 100 + 50) is measured too, and every part it prices is there."""
    from petri.train.cost import measure

    recipe = Recipe(model=MLP(hidden=[16]), epochs=1, **{**SMALL, "train_size": train_size})
    cost = measure(mnist, recipe, [Member(0), Member(1)], seconds=0.2)
    assert 0 < cost.step < 0.2 and 0 < cost.eval_image < 0.01 and cost.startup > 0 and cost.capture > 0
    assert cost.state_bytes > 2 * 3 * 4 * (784 * 16 + 16 + 16 * 10 + 10)  # 2 members: weights, Adam's m and v, ...
