"""petri's CUDA paths and GPU figures, in one run (under ten minutes on one GPU).

Run on a machine with a CUDA GPU: `bash benchmarks/gpu_check.sh` (or this file with --device cuda).
`--device cpu --quick` runs the same checks on the CPU (the tests do, so the script cannot rot).

Checks (each prints PASS/FAIL and the largest deviation):
1. every registered layer (its own examples): outputs and gradients on the device equal the CPU's
   and autograd's, the population form equals the torch.nn module per member;
2. a member alone equals the same member in a pack on the device (mlp, mnist_cnn, vgg with BN, a
   user module through torch.func vmap), within the documented tolerance;
3. every optimizer's update on the device equals the CPU's;
4. a pack resumed from a checkpoint taken within an epoch continues as if uninterrupted (bitwise on
   the CPU; the deviation on the device is printed).
Figures: a 64-member mnist_cnn pack against the same members one by one; mlp widths 50 / 1000 /
3000 (the Chainer study) on the device against the CPU. With OUT set, results go to $OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

import petri.data
from petri.models import LAYERS, MLP, VGG, MnistCNN, Network, parse_model, register_model
from petri.models.compile import compile_layers, member_state, modules, shapes, walk
from petri.train import SGD, Adam, AdamW, Member, Recipe, RMSprop, train_pack
from petri.train.optim import Optimizer

RESULTS: dict = {"checks": {}, "figures": {}}


def save() -> None:
    """With OUT set, the results so far to $OUT/gpu_check.json (after every check: a run stopped at a time limit
    keeps what it found)."""
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(RESULTS, indent=1))


def report(name: str, ok: bool, detail: str) -> None:
    RESULTS["checks"][name] = {"ok": ok, "detail": detail}
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    save()


def _layer_run(spec, shape, device, x, gy):
    """Forward + explicit backward of one layer (K = 3) on ``device``: output, input grad, theta grad."""
    net = Network(compile_layers([spec], shape), shape, seeds=[0, 1, 2], device=device)
    for layer in walk(net.layers):
        layer.need_input_grad = True
    with torch.no_grad():
        y = net.forward(x.to(device), train=True)
        g = gy.to(device).reshape(y.shape)
        for layer in reversed(net.layers):
            g = layer.backward(g)
    return y.cpu(), g.cpu(), net.grad.cpu(), net


def check_layers(device: str) -> None:
    worst, failed = 0.0, []
    for name, cls in LAYERS.items():
        for params, shape in cls.examples:
            try:
                worst = max(worst, _check_layer(name, params, shape, device))
            except AssertionError as e:
                failed.append(f"{name} {params}: {str(e).splitlines()[0]}")
    total = sum(len(c.examples) for c in LAYERS.classes.values())
    report("layers", not failed, "; ".join(failed) if failed else
           f"{total} layer examples match the CPU, autograd and their torch.nn modules; max |Δ| vs CPU {worst:.2e}")


def _check_layer(name, params, shape, device) -> float:
    """One layer example on ``device`` against the CPU, and against its torch.nn module; the largest |Δ|."""
    spec = LAYERS.parse({"name": name, **params}, "check")
    torch.manual_seed(0)
    x = torch.randn(3, 4, *shape)
    out = shapes([spec], shape)[-1][1]
    gy = torch.randn(3 * 4 * int(torch.tensor(out).prod()))
    ref = _layer_run(spec, shape, "cpu", x, gy)
    dev = _layer_run(spec, shape, device, x, gy)
    worst = 0.0
    for a, b in zip(ref[:3], dev[:3]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
        worst = max(worst, float((a - b).abs().max()) if a.numel() else 0.0)
    net = dev[3]
    for k in range(3):  # the module, on the device, with member k's weights (eval mode)
        m = modules([spec], shape).to(device)
        m.load_state_dict(member_state(net.layers, k))
        with torch.no_grad():
            y = net.forward(x.to(device), train=False)
            if len(out) == 3 and y.dim() == 4:
                y = y.view(4, 3, *out).transpose(0, 1)
            torch.testing.assert_close(y[k], m.eval()(x[k].to(device)), rtol=1e-4, atol=1e-5)
    return worst


def lenet(n_classes: int):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 84),
                         nn.Tanh(), nn.Dropout(0.2), nn.Linear(84, n_classes))


def check_alone_vs_packed(ds, device: str, quick: bool) -> None:
    register_model("gpu_check_lenet", lenet)
    cases = {"mlp": MLP(hidden=[64], input_bn=True), "mnist_cnn": MnistCNN(),
             "vgg+bn": VGG(cfg=[16, "M", 32, "M"], fc=[64], bn=True, bn_noise=0.1),
             "module (torch.func)": parse_model("gpu_check_lenet")}
    for name, model in cases.items():
        recipe = Recipe(model=model, epochs=1, batch_size=64, train_size=640 if quick else 2560, test_size=500,
                        device=device)
        alone = train_pack(ds, recipe, [Member(3)])[0].epochs[-1]
        packed = train_pack(ds, recipe, [Member(s) for s in (1, 3, 5, 7)])[1].epochs[-1]
        dev = max(abs(alone[k] - packed[k]) / max(abs(alone[k]), 1e-12) for k in ("train_loss", "test_loss"))
        tol = 1e-3 if "module" in name else 1e-4  # a user's module: a lone member's ops on all threads
        report(f"alone vs packed: {name}", dev < tol, f"largest relative difference of the losses {dev:.2e} "
                                                      f"(tolerance {tol:g})")


def check_resume_within_an_epoch(ds, device: str) -> None:
    recipe = Recipe(model=MLP(hidden=[64], bn=True, dropout=0.2), epochs=2, batch_size=50, train_size=1000,
                    test_size=500, device=device)
    full = train_pack(ds, recipe, [Member(1), Member(2)], keep_state=True)
    taken = []
    train_pack(ds, recipe, [Member(1), Member(2)], keep_state=True, checkpoint_every=0.0,
               on_checkpoint=lambda results: taken.append([r.state for r in results]))
    states = taken[len(taken) // 2]  # somewhere inside an epoch
    resumed = train_pack(ds, recipe, [Member(1, state=states[0]), Member(2, state=states[1])], keep_state=True)
    dev = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for f, r in zip(full, resumed)
              for a, b in zip(f.epochs[states[0].epoch:], r.epochs) for k in ("train_loss", "test_loss"))
    report("resume within an epoch", dev <= (0.0 if device == "cpu" else 1e-6),
           f"resumed {states[0].inner} steps into epoch {states[0].epoch + 1}: largest relative difference of the "
           f"losses {dev:.2e} ({'bitwise' if dev == 0 else 'not bitwise'})")


def check_optimizers(device: str) -> None:
    for spec in (Adam(lr=1e-2, weight_decay=1e-3), AdamW(lr=1e-2), SGD(lr=0.1, momentum=0.9, nesterov=True),
                 RMSprop(lr=1e-3, momentum=0.9, centered=True)):
        torch.manual_seed(0)
        theta0, grads = torch.randn(4, 512), [torch.randn(4, 512) for _ in range(5)]
        out = []
        for d in ("cpu", device):
            theta = theta0.clone().to(d)
            opt = Optimizer(spec, theta, [spec.lr, spec.lr, spec.lr / 2, spec.lr], [spec.weight_decay] * 4)
            for g in grads:
                opt.step(theta, g.to(d), (True, True, True, False))
            out.append(theta.cpu())
        dev = float((out[0] - out[1]).abs().max())
        report(f"optimizer {spec.name}", dev < 1e-5, f"max |Δ| vs CPU after 5 steps {dev:.2e}")


def figures(ds, device: str, quick: bool) -> None:
    K = 8 if quick else 64
    recipe = Recipe(model=MnistCNN(), epochs=1, batch_size=128, train_size=128 * (4 if quick else 40), test_size=500,
                    device=device)
    t = time.perf_counter()
    train_pack(ds, recipe, [Member(s) for s in range(K)])
    pack_s = time.perf_counter() - t
    singles = 2 if quick else 4  # one by one: time a few and scale
    t = time.perf_counter()
    for s in range(singles):
        train_pack(ds, recipe, [Member(s)])
    single_s = (time.perf_counter() - t) / singles * K
    n = recipe.train_size * K
    RESULTS["figures"]["mnist_cnn"] = {"K": K, "pack_img_per_s": n / pack_s, "one_by_one_img_per_s": n / single_s}
    save()
    print(f"mnist_cnn, batch 128, {K} members: pack {n / pack_s:,.0f} img/s (wall incl. evaluation), one by one "
          f"{n / single_s:,.0f} img/s: {single_s / pack_s:.1f}×", flush=True)
    for width in (50, 1000, 3000):
        rates = {}
        for d in ("cpu", device):
            r = Recipe(model=MLP(hidden=[width, width]), epochs=1, batch_size=100, test_size=500,
                       train_size=5000 if quick or d == "cpu" else 60000, device=d)
            rates[d] = train_pack(ds, r, [Member(0)])[0].epochs[-1]["images_per_s"]
        RESULTS["figures"][f"mlp{width}"] = rates
        save()
        print(f"mlp [{width}, {width}], batch 100: cpu {rates['cpu']:,.0f} img/s, {device} {rates[device]:,.0f} img/s "
              f"({rates[device] / rates['cpu']:.1f}×)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine (or with --device cpu --quick)")
        return 2
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, device {args.device} ({name})", flush=True)
    RESULTS["device"] = name
    ds = petri.data.load("mnist")
    check_layers(args.device)
    check_optimizers(args.device)
    check_alone_vs_packed(ds, args.device, args.quick)
    check_resume_within_an_epoch(ds, args.device)
    figures(ds, args.device, args.quick)
    save()
    return 0 if all(c["ok"] for c in RESULTS["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
