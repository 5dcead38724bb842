"""Throughput of petri's population engine against its peers, on real MNIST, in one run.

Run: PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/throughput.py [--quick]
(JAX peers need `pip install jax optax`; without them those rows are skipped.)

The plain loop is what a careful user writes: data as resident float tensors,
``torch.randperm`` batches, ``nn.Sequential``, ``torch.optim.Adam(foreach=True)``,
train loss / accuracy accumulated on the device (no per-step sync), test
accuracy per epoch. The population peers train the same 32 MLPs at once:
``torch.func`` (stack_module_state + vmap + grad, Adam over the stacked tensors)
and JAX (jit + vmap with optax's Adam). LeNet-5 runs as a petri layer list and as
a user ``nn.Module`` through petri's torch.func path, against the plain loop.
Every side measures training images/s without evaluation, in the same process,
with the same thread settings.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import petri.data
from petri.models import MLP, MnistCNN, parse_model, register_model
from petri.train import Member, Recipe, train_pack
from petri.treatments import parse_treatment


def plain_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def plain_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def plain_lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


LENET5_LAYERS = [{"name": "conv2d", "filters": 6, "kernel": 5, "padding": 2}, "tanh", {"name": "avg_pool"},
                 {"name": "conv2d", "filters": 16, "kernel": 5}, "tanh", {"name": "avg_pool"}, "flatten",
                 {"name": "dense", "units": 120}, "tanh", {"name": "dense", "units": 84}, "tanh",
                 {"name": "dense", "units": "classes"}]
MLP_LAYERS = ["flatten", {"name": "dense", "units": 64}, "relu", {"name": "dense", "units": "classes"}]


def func_population(ds, K, epochs, batch=100):
    """torch.func peer: K plain MLPs stacked (stack_module_state), one vmap(grad) per step, Adam over the
    stacked tensors. Returns aggregate training images/s."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(plain_mlp())
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    step_grads = vmap(grad(loss))
    opt = torch.optim.Adam(list(params.values()), lr=1e-3, foreach=True)
    x, y, n = ds.train_x.float().div_(255).view(len(ds.train_y), -1), ds.train_y, len(ds.train_y)
    seen, t_train = 0, 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.stack([torch.randperm(n) for _ in range(K)])  # [K, N]: each member its own order
        for i in range(0, n - batch + 1, batch):
            idx = order[:, i:i + batch]
            grads = step_grads(params, buffers, x[idx], y[idx])
            for name, p in params.items():
                p.grad = grads[name]
            opt.step()
            seen += K * batch
        t_train += time.perf_counter() - t0
    return seen / t_train


def _jax_mlps(ds, K):
    """The JAX peers' common part: MNIST as arrays, K stacked mlp [64] parameter pytrees (PyTorch's
    default init bounds), their optax Adam states, the loss; None without jax / optax."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    x = jnp.asarray(ds.train_x.float().div_(255).view(len(ds.train_y), -1).numpy())
    y = jnp.asarray(ds.train_y.numpy())

    def init(key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        u = lambda k, shape, fan: jax.random.uniform(k, shape, minval=-fan ** -0.5, maxval=fan ** -0.5)  # noqa: E731
        return {"w1": u(k1, (784, 64), 784), "b1": u(k2, (64,), 784), "w2": u(k3, (64, 10), 64), "b2": u(k4, (10,), 64)}

    def loss(p, xb, yb):
        logits = jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    opt = optax.adam(1e-3)
    params = jax.vmap(init)(jax.random.split(jax.random.PRNGKey(0), K))
    return x, y, loss, opt, params, jax.vmap(opt.init)(params)


def jax_population(ds, K, epochs, batch=100):
    """JAX peer, one dispatch per step: K MLPs as stacked pytrees, jit(vmap(grad)) and optax Adam vmapped
    over members. Returns aggregate training images/s, or None without jax / optax."""
    common = _jax_mlps(ds, K)
    if common is None:
        return None
    import jax
    import jax.numpy as jnp
    import optax

    x, y, loss, opt, params, state = common
    n = len(y)

    @jax.jit
    def step(params, state, idx):
        grads = jax.vmap(jax.grad(loss))(params, x[idx], y[idx])
        updates, state = jax.vmap(opt.update)(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = torch.Generator().manual_seed(0)
    warm = jnp.asarray(torch.randperm(n, generator=rng)[:K * batch].view(K, batch).numpy())
    jax.block_until_ready(step(params, state, warm))  # compile outside the timing
    seen, t_train = 0, 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = jnp.asarray(torch.stack([torch.randperm(n, generator=rng) for _ in range(K)]).numpy())
        for i in range(0, n - batch + 1, batch):
            params, state = step(params, state, order[:, i:i + batch])
            seen += K * batch
        jax.block_until_ready(params)
        t_train += time.perf_counter() - t0
    return seen / t_train


def jax_scan_population(ds, K, epochs, batch=100):
    """JAX as its users write a fast epoch: the whole epoch is one jitted call, ``lax.scan`` over the
    batches inside ``jit`` and ``vmap`` over members (optax Adam), so Python dispatches once per epoch.
    Returns aggregate training images/s (compilation outside the timing), or None without jax / optax."""
    common = _jax_mlps(ds, K)
    if common is None:
        return None
    import jax
    import jax.numpy as jnp
    import optax

    x, y, loss, opt, params, state = common
    n = len(y)
    steps = n // batch

    def member_epoch(p, s, order):  # one member's epoch: order [steps, batch]
        def step(carry, idx):
            p, s = carry
            g = jax.grad(loss)(p, x[idx], y[idx])
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), None

        (p, s), _ = jax.lax.scan(step, (p, s), order)
        return p, s

    epoch = jax.jit(jax.vmap(member_epoch))
    rng = torch.Generator().manual_seed(0)

    def orders():
        return jnp.asarray(torch.stack([torch.randperm(n, generator=rng)[:steps * batch].view(steps, batch)
                                        for _ in range(K)]).numpy())

    jax.block_until_ready(epoch.lower(params, state, orders()).compile())  # compile outside the timing
    seen, t_train = 0, 0.0
    for _ in range(epochs):
        o = orders()
        t0 = time.perf_counter()
        params, state = epoch(params, state, o)
        jax.block_until_ready(params)
        t_train += time.perf_counter() - t0
        seen += K * steps * batch
    return seen / t_train


def lenet5_module(n_classes: int):
    return plain_lenet5()


def plain_loop(make, ds, epochs, batch, seed, max_steps=None, device="cpu"):
    """Returns (training images/s, final test accuracy). ``device``: where the model and the data live."""
    torch.manual_seed(seed)
    model = make().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    x = ds.train_x.float().div_(255).to(device)
    y = ds.train_y.to(device)
    tx, ty = ds.test_x.float().div_(255).to(device), ds.test_y.to(device)
    n, seen, train_time, acc = len(y), 0, 0.0, 0.0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        loss_sum, hits = torch.zeros((), device=device), torch.zeros((), dtype=torch.int64, device=device)
        steps = range(0, n, batch) if max_steps is None else range(0, max_steps * batch, batch)
        for i in steps:
            idx = perm[i:i + batch]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            hits += (out.argmax(1) == y[idx]).sum()
            seen += len(idx)
        float(loss_sum), int(hits)  # the epoch log syncs once
        train_time += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            acc = sum((model(tx[i:i + 1000]).argmax(1) == ty[i:i + 1000]).sum().item()
                      for i in range(0, len(ty), 1000)) / len(ty)
    return seen / train_time, acc


MLP64_FLOP = 2 * (784 * 64 + 64 * 10) * 2 + 2 * 64 * 10  # per training image: forward, weight gradients, one
# input gradient (the hidden layer's; the first layer's input needs none): 204,544 FLOP


def sgemm_peak(threads: int, sizes=(512, 1024, 2048), reps: int = 10) -> float:
    """The machine's float32 matrix-multiply rate (FLOP/s) on ``threads`` threads: the best of ``reps``
    products of two size × size matrices of each size (torch.mm, MKL), after a warm-up (this VM's speed
    drifts: the best is the machine, the rest is its neighbours)."""
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        out = torch.empty(size, size)
        torch.mm(a, b, out=out)
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = max(best, 2 * size ** 3 / (time.perf_counter() - t0))
    return best


def petri_run(model, ds, epochs, batch, seeds, train_size=None):
    recipe = Recipe(model=model, batch_size=batch, epochs=epochs, train_size=train_size, device="cpu")
    results = train_pack(ds, recipe, [Member(s) for s in seeds])
    per_member = sum(e["images_per_s"] for e in results[0].epochs) / len(results[0].epochs)
    return per_member * len(seeds), [r.epochs[-1]["test_acc"] for r in results]


def treatment_costs(ds, K=32, n=10000, reps=5):
    """Each treatment's cost inside the training loop: a K-member mlp [64] pack (batch 100) trains one
    epoch on n images without and then with it, ``reps`` times; the median of the paired relative
    differences is reported (adjacent runs: the machine's drift cancels). Returns the median
    untreated step (ms) and per treatment (name, extra ms per step, fraction of the untreated step):
    what the treatment adds to a step as the loop runs it (shards, threads, caches shared with
    training), not an isolated kernel time."""
    specs = {
        "invert": {"name": "invert"}, "sparsify": {"name": "sparsify", "threshold": 0.5},
        "standardize": {"name": "standardize"},
        "window_keep": {"name": "window_keep", "size": 9, "row": 10, "col": 10},
        "window_drop": {"name": "window_drop", "size": 9, "row": 10, "col": 10},
        "label_noise": {"name": "label_noise", "p": 0.1}, "permute_pixels": {"name": "permute_pixels"},
        "shuffle_pixels": {"name": "shuffle_pixels"}, "gaussian_images": {"name": "gaussian_images"},
        "crop": {"name": "crop", "pad": 4}, "flip": {"name": "flip"},
    }
    recipe = Recipe(model=MLP(hidden=[64]), batch_size=100, epochs=1, train_size=n, device="cpu")

    def step_ms(treatments):
        r = train_pack(ds, recipe, [Member(s, treatments) for s in range(K)])
        return 100 / r[0].epochs[-1]["images_per_s"] * 1e3

    bases, extra = [], {name: [] for name in specs}
    for _ in range(reps):
        for name, spec in specs.items():
            base = step_ms([])
            extra[name].append(step_ms([parse_treatment(spec)]) / base - 1)
            bases.append(base)
    base = _median(bases)
    return base, [(name, _median(f) * base, _median(f)) for name, f in extra.items()]


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


# --- Population peers on any device (``--device cuda``, ``--model``, ``--K``): the GPU comparison of issue 35 ---

PEER_MODELS = {"mlp": (plain_mlp, lambda: MLP(hidden=[64]), 100, 60000),  # plain module, petri model, batch, images
               "mnist_cnn": (plain_cnn, MnistCNN, 128, 12800)}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def func_peer(make, ds, K, n, batch, epochs, device, warm_epochs=1):
    """torch.func on ``device``: K plain modules stacked (stack_module_state), vmap(grad) per step with each
    member's own dropout masks (randomness="different"), Adam(foreach) over the stacked tensors, each member its
    own order. The first ``warm_epochs`` are not timed. Returns aggregate training images/s."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(make().to(device))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    step_grads = vmap(grad(loss), randomness="different")
    opt = torch.optim.Adam(list(params.values()), lr=1e-3, foreach=True)
    x, y = ds.train_x[:n].float().div_(255).to(device), ds.train_y[:n].to(device)
    seen, t_train = 0, 0.0
    for e in range(warm_epochs + epochs):
        _sync(device)
        t0 = time.perf_counter()
        order = torch.stack([torch.randperm(n, device=device) for _ in range(K)])
        for i in range(0, n - batch + 1, batch):
            idx = order[:, i:i + batch]
            grads = step_grads(params, buffers, x[idx], y[idx])
            for name, p in params.items():
                p.grad = grads[name]
            opt.step()
            if e >= warm_epochs:
                seen += K * batch
        _sync(device)
        if e >= warm_epochs:
            t_train += time.perf_counter() - t0
    return seen / t_train


def jax_scan_peer(model, ds, K, n, batch, epochs, device, precision=None, warm_epochs=1):
    """JAX as its users write a fast epoch, for ``mlp`` [64] or ``mnist_cnn``: one jitted call per epoch,
    ``lax.scan`` over the batches, ``vmap`` over members (optax Adam, each member its own order and dropout
    key), the images passed as arguments. ``precision``: jax_default_matmul_precision (None: JAX's default,
    which on a GPU may use TF32; "highest": float32). Compilation and ``warm_epochs`` are not timed.
    Returns aggregate training images/s; raises if JAX does not see the device."""
    import contextlib

    import jax
    import jax.numpy as jnp
    import optax

    dev = jax.devices("cpu")[0] if torch.device(device).type == "cpu" else jax.devices()[0]
    if torch.device(device).type == "cuda" and dev.platform != "gpu":
        raise RuntimeError(f"JAX sees no GPU (its devices: {jax.devices()})")
    ctx = jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()
    xt = ds.train_x[:n].float().div_(255)
    x = jax.device_put(xt.view(n, -1).numpy() if model == "mlp" else xt.numpy(), dev)
    y = jax.device_put(ds.train_y[:n].numpy().astype("int32"), dev)

    def u(k, shape, fan):  # PyTorch's default init bounds
        return jax.random.uniform(k, shape, minval=-fan ** -0.5, maxval=fan ** -0.5)

    if model == "mlp":
        def init(key):
            k = jax.random.split(key, 4)
            return {"w1": u(k[0], (784, 64), 784), "b1": u(k[1], (64,), 784), "w2": u(k[2], (64, 10), 64),
                    "b2": u(k[3], (10,), 64)}

        def apply(p, xb, key):
            return jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    else:
        def init(key):
            k = jax.random.split(key, 8)
            return {"c1": u(k[0], (32, 1, 3, 3), 9), "cb1": u(k[1], (32,), 9),
                    "c2": u(k[2], (64, 32, 3, 3), 288), "cb2": u(k[3], (64,), 288),
                    "w1": u(k[4], (9216, 128), 9216), "b1": u(k[5], (128,), 9216),
                    "w2": u(k[6], (128, 10), 128), "b2": u(k[7], (10,), 128)}

        def conv(h, w, b):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return jax.nn.relu(h + b[None, :, None, None])

        def dropout(key, h, rate):
            return jnp.where(jax.random.bernoulli(key, 1 - rate, h.shape), h / (1 - rate), 0.0)

        def apply(p, xb, key):
            k1, k2 = jax.random.split(key)
            h = conv(conv(xb, p["c1"], p["cb1"]), p["c2"], p["cb2"])
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            h = dropout(k1, h, 0.25).reshape(xb.shape[0], -1)
            h = dropout(k2, jax.nn.relu(h @ p["w1"] + p["b1"]), 0.5)
            return h @ p["w2"] + p["b2"]

    def loss(p, xb, yb, key):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb, key), yb).mean()

    opt = optax.adam(1e-3)
    steps = n // batch

    def member_epoch(p, s, key, order, x, y):  # one member's epoch: order [steps, batch]
        def step(carry, idx):
            p, s, key = carry
            key, sub = jax.random.split(key)
            g = jax.grad(loss)(p, x[idx], y[idx], sub)
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s, key), None

        (p, s, key), _ = jax.lax.scan(step, (p, s, key), order)
        return p, s, key

    rng = torch.Generator().manual_seed(0)

    def orders():
        return jax.device_put(torch.stack([torch.randperm(n, generator=rng)[:steps * batch].view(steps, batch)
                                           for _ in range(K)]).numpy().astype("int32"), dev)

    with ctx:
        keys = jax.device_put(jax.random.split(jax.random.PRNGKey(0), 2 * K), dev)
        params = jax.vmap(init)(keys[:K])
        state = jax.vmap(opt.init)(params)
        keys = keys[K:]
        epoch = jax.jit(jax.vmap(member_epoch, in_axes=(0, 0, 0, 0, None, None)))
        compiled = epoch.lower(params, state, keys, orders(), x, y).compile()  # compile outside the timing
        seen, t_train = 0, 0.0
        for e in range(warm_epochs + epochs):
            o = orders()
            jax.block_until_ready(o)
            t0 = time.perf_counter()
            params, state, keys = compiled(params, state, keys, o, x, y)
            jax.block_until_ready(params)
            if e >= warm_epochs:
                t_train += time.perf_counter() - t0
                seen += K * steps * batch
    return seen / t_train


def petri_peer(model, ds, K, n, batch, epochs, device, warm_epochs=1):
    """petri's pack of K members on ``device``: (its own recorded training images/s, aggregate, of the timed
    epochs; the wall-clock rate of those epochs between synchronised epoch ends, evaluation of 1,000 test and
    2,000 training images per member included). The recorded rate stops its clock with no explicit device
    sync (train_pack), so on a GPU the wall rate is the one to trust."""
    recipe = Recipe(model=model, batch_size=batch, epochs=warm_epochs + epochs, train_size=n, test_size=1000,
                    device=device)
    ends = []  # an epoch's end syncs (divergence check, metrics) before on_epoch is called
    _sync(device)
    results = train_pack(ds, recipe, [Member(s) for s in range(K)],
                         on_epoch=lambda epoch, results: ends.append(time.perf_counter()))
    timed = results[0].epochs[warm_epochs:]
    recorded = sum(e["images_per_s"] for e in timed) / len(timed) * K
    wall = K * n * epochs / (ends[-1] - ends[warm_epochs - 1]) if warm_epochs else float("nan")
    return recorded, wall


def population_peers(args, ds) -> None:
    """Side by side on ``args.device``: a plain loop (one model; K of them one after another train at its
    rate), torch.func, JAX lax.scan (its default precision and float32) and petri, for each K in args.K."""
    import json
    import os

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX shares the GPU with torch in this process
    model = args.model or "mlp"
    make, petri_model, batch, n = PEER_MODELS[model]
    n = min(args.train_size or n, len(ds.train_y))
    n -= n % batch
    Ks, epochs, rounds = args.K or [32], args.epochs or 1, 1 if args.quick else args.rounds
    device = args.device
    name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu"
    out = {"device": device, "device_name": name, "torch": torch.__version__, "model": model, "batch": batch,
           "train_images": n, "epochs_timed": epochs, "warm_epochs": 1, "rounds": rounds, "K": Ks,
           "torch_tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
           "rows": [], "errors": []}
    try:
        import jax
        out["jax"], out["jax_devices"] = jax.__version__, [str(d) for d in jax.devices()]
    except Exception as e:  # noqa: BLE001
        out["errors"].append(f"jax: {type(e).__name__}: {e}")

    def save():
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)

    def attempt(label, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001  one failing peer does not stop the others
            out["errors"].append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            print(f"    {label} failed: {type(e).__name__}: {e}", flush=True)
            save()
            return None

    print(f"torch {torch.__version__}, device {device} ({name}), {model}, batch {batch}, Adam 1e-3, {n:,} training "
          f"images, {epochs} timed epoch(s) after 1 warm-up epoch; {rounds} round(s), medians", flush=True)
    plain_steps = n // batch
    plain_loop(make, ds, 1, batch, 0, max_steps=min(20, plain_steps), device=device)  # CUDA, cuBLAS, cuDNN warm-up
    fmt = lambda v: "failed" if v is None else f"{v:,.0f}"  # noqa: E731
    for r in range(rounds):
        plain = attempt("plain", lambda: plain_loop(make, ds, epochs, batch, r, max_steps=plain_steps,
                                                    device=device)[0])
        for K in Ks:
            row = {"round": r + 1, "K": K, "plain_one_by_one": plain}
            out["rows"].append(row)  # filled in as it goes: a run stopped at its time limit keeps what it measured
            both = attempt(f"petri K={K}", lambda: petri_peer(petri_model(), ds, K, n, batch, epochs, device))
            row["petri"], row["petri_wall"] = both if both else (None, None)
            save()
            row["torch_func"] = attempt(f"torch.func K={K}", lambda: func_peer(make, ds, K, n, batch, epochs, device))
            save()
            row["jax_scan"] = attempt(f"jax scan K={K}", lambda: jax_scan_peer(model, ds, K, n, batch, epochs, device))
            save()
            row["jax_scan_fp32"] = attempt(f"jax scan fp32 K={K}", lambda: jax_scan_peer(
                model, ds, K, n, batch, epochs, device, precision="highest"))
            save()
            ratio = lambda a, b: f"{row[a] / row[b]:.2f}" if row[a] and row[b] else "n/a"  # noqa: E731
            print(f"  round {r + 1}: {model} population K={K} on {device}: petri aggregate {fmt(row['petri'])} img/s "
                  f"(wall incl. evaluation {fmt(row['petri_wall'])}); torch.func vmap {fmt(row['torch_func'])}; "
                  f"JAX lax.scan {fmt(row['jax_scan'])} (default precision), {fmt(row['jax_scan_fp32'])} (float32); "
                  f"plain one-by-one {fmt(plain)} img/s; petri / plain {ratio('petri', 'plain_one_by_one')}, "
                  f"/ torch.func {ratio('petri', 'torch_func')}, / JAX scan {ratio('petri', 'jax_scan')}, "
                  f"/ JAX scan fp32 {ratio('petri', 'jax_scan_fp32')}", flush=True)
    medians = {}
    for K in Ks:
        rows = [row for row in out["rows"] if row["K"] == K]
        for key in ("plain_one_by_one", "torch_func", "jax_scan", "jax_scan_fp32", "petri", "petri_wall"):
            vals = [row[key] for row in rows if row.get(key)]
            medians[f"{model}_k{K}_{key}"] = _median(vals) if vals else None
    out["medians"] = medians
    save()
    for key, v in medians.items():
        print(f"{key}={'n/a' if v is None else f'{v:.0f}'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 epoch, 1 round (smoke run)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved plain/petri rounds; medians are reported")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--population", action="store_true", help="only the 32-member mlp [64] population and its peers")
    ap.add_argument("--device", default="cpu", help="cpu (default: the full CPU benchmark) or cuda: the population "
                    "peers side by side on that device (as --model / --K do on the CPU)")
    ap.add_argument("--model", choices=sorted(PEER_MODELS), help="population peers of this model (default mlp)")
    ap.add_argument("--K", type=int, nargs="+", help="population sizes for the peers (default 32)")
    ap.add_argument("--epochs", type=int, help="peers: timed epochs after a warm-up epoch (default 1)")
    ap.add_argument("--train-size", type=int, help="peers: training images (default: mlp 60,000, mnist_cnn 12,800)")
    ap.add_argument("--json", help="peers: write the results to this JSON file (after every measurement)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    ds = petri.data.load("mnist")
    if args.device != "cpu" or args.model or args.K:
        return population_peers(args, ds)
    epochs = 1 if args.quick else 4
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, MNIST, batch 100, Adam 1e-3; "
          f"{rounds} interleaved round(s), medians")

    singles = []
    for r in range(0 if args.population else rounds):  # plain and petri alternate so machine noise hits both alike
        plain_ips, plain_acc = plain_loop(plain_mlp, ds, epochs, 100, r)
        petri_ips, petri_acc = petri_run(MLP(hidden=[64]), ds, epochs, 100, [r])
        singles.append(petri_ips / plain_ips)
        print(f"  round {r + 1}: mlp [64] single, {epochs} epochs: plain {plain_ips:,.0f} img/s "
              f"(test acc {plain_acc:.4f}); petri {petri_ips:,.0f} img/s (test acc {petri_acc[0]:.4f}); "
              f"ratio {singles[-1]:.2f}")
    single = _median(singles) if singles else float("nan")

    K, pops, peers = 32, [], {"layer list": [], "torch.func": [], "jax": [], "jax scan": []}
    peak = sgemm_peak(torch.get_num_threads())
    roofline = peak / MLP64_FLOP
    print(f"sgemm peak {peak / 1e9:,.1f} GFLOP/s on {torch.get_num_threads()} threads; mlp [64] needs "
          f"{MLP64_FLOP:,} FLOP per training image: roofline {roofline:,.0f} img/s")
    fractions = []
    pop_epochs = 1 if args.quick else 2
    for r in range(rounds):
        seq_ips = sum(plain_loop(plain_mlp, ds, 1, 100, s)[0] for s in range(2)) / 2  # one after another
        pop_ips, pop_acc = petri_run(MLP(hidden=[64]), ds, pop_epochs, 100, list(range(K)))
        list_ips, _ = petri_run(parse_model(MLP_LAYERS), ds, pop_epochs, 100, list(range(K)))
        func_ips = func_population(ds, K, pop_epochs)
        jax_ips = jax_population(ds, K, pop_epochs)
        scan_ips = jax_scan_population(ds, K, pop_epochs)
        pops.append(pop_ips / seq_ips)
        fractions.append(pop_ips / roofline)
        peers["layer list"].append(list_ips / pop_ips)
        peers["torch.func"].append(pop_ips / func_ips)
        if jax_ips:
            peers["jax"].append(pop_ips / jax_ips)
            peers["jax scan"].append(pop_ips / scan_ips)
        jax_text = (f"JAX jit+vmap, one dispatch per step {jax_ips:,.0f}; JAX lax.scan over the epoch "
                    f"{scan_ips:,.0f}" if jax_ips else "JAX not installed")
        print(f"  round {r + 1}: mlp [64] population K={K}: petri aggregate {pop_ips:,.0f} img/s "
              f"(mean test acc {sum(pop_acc) / K:.4f}); as a layer list {list_ips:,.0f}; torch.func vmap "
              f"{func_ips:,.0f}; {jax_text}; plain one-by-one {seq_ips:,.0f} img/s; ratio {pops[-1]:.2f}; "
              f"{100 * fractions[-1]:.0f} % of the roofline")
    population = _median(pops)
    if args.population:
        print(f"petri_roofline_fraction={_median(fractions):.2f}")
        if peers["jax"]:
            print(f"petri_vs_jax_per_step={_median(peers['jax']):.2f}")
            print(f"petri_vs_jax_scan={_median(peers['jax scan']):.2f}")
        return

    lenet = {"plain": plain_loop(plain_lenet5, ds, 1, 128, 0, max_steps=40)[0]}
    register_model("bench_lenet5", lenet5_module)
    for k in (1, 8):
        n = 128 * (40 if k == 1 else 10)
        lenet[f"list K={k}"], _ = petri_run(parse_model(LENET5_LAYERS), ds, 1, 128, list(range(k)), train_size=n)
        lenet[f"module K={k}"], _ = petri_run(parse_model("bench_lenet5"), ds, 1, 128, list(range(k)), train_size=n)
    print("LeNet-5 batch 128 (img/s; K = 8 aggregate): " + ", ".join(f"{k} {v:,.0f}" for k, v in lenet.items()))

    cnn_plain, _ = plain_loop(plain_cnn, ds, 1, 128, 0, max_steps=15)
    cnn = {}
    for k in (1, 8):
        cnn[k], _ = petri_run(MnistCNN(), ds, 1, 128, list(range(k)), train_size=128 * (15 if k == 1 else 4))
    print(f"mnist_cnn batch 128: plain {cnn_plain:,.0f} img/s; petri K=1 {cnn[1]:,.0f} img/s "
          f"(ratio {cnn[1] / cnn_plain:.2f}); K=8 aggregate {cnn[8]:,.0f} img/s (ratio {cnn[8] / cnn_plain:.2f})")

    step_ms, rows = treatment_costs(ds, reps=1 if args.quick else 5)
    print(f"treatment cost in the loop, 32-member mlp [64] pack, batch 100 (untreated step {step_ms:.2f} ms):")
    for name, ms, frac in rows:
        print(f"  {name:16s} {ms:+7.3f} ms per step  {100 * frac:+6.1f} %")
    print(f"single_mlp_ratio={single:.2f}")
    print(f"population_mlp_ratio={population:.2f}")
    print(f"layer_list_vs_preset={_median(peers['layer list']):.2f}")
    print(f"petri_vs_torch_func={_median(peers['torch.func']):.2f}")
    print(f"petri_roofline_fraction={_median(fractions):.2f}")
    if peers["jax"]:
        print(f"petri_vs_jax_per_step={_median(peers['jax']):.2f}")
        print(f"petri_vs_jax_scan={_median(peers['jax scan']):.2f}")
    for k in (1, 8):
        print(f"lenet5_list_k{k}_ratio={lenet[f'list K={k}'] / lenet['plain']:.2f}")
        print(f"lenet5_module_k{k}_ratio={lenet[f'module K={k}'] / lenet['plain']:.2f}")
    print(f"cnn_k1_ratio={cnn[1] / cnn_plain:.2f}")
    print(f"cnn_k8_ratio={cnn[8] / cnn_plain:.2f}")


if __name__ == "__main__":
    main()
