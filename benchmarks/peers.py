"""The peers petri's population engine is measured against (``throughput.py``), each as its users
write it: a plain PyTorch loop (resident float tensors, ``torch.randperm`` batches, ``nn.Sequential``,
``Adam(foreach=True)``), ``torch.func`` (stack_module_state + vmap + grad) and JAX (jit + vmap with
optax's Adam; the epoch as one ``lax.scan``), and the machine's sgemm peak (the roofline)."""


from __future__ import annotations

import copy
import importlib.util
import time

import torch
import torch.nn as nn
import torch.nn.functional as F



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


def func_population(ds, K, epochs, batch=100):
    """torch.func peer for the 32-member comparison: ``func_peer`` with K plain MLPs on every training
    image, every epoch timed. Returns aggregate training images/s."""
    return func_peer(plain_mlp, ds, K, len(ds.train_y), batch, epochs, "cpu", warm_epochs=0)


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
    """JAX as its users write a fast epoch (``jax_scan_peer``) for K MLPs on every training image, every
    epoch timed. Returns aggregate training images/s, or None without jax / optax."""
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None:
        return None
    return jax_scan_peer("mlp", ds, K, len(ds.train_y), batch, epochs, "cpu", warm_epochs=0)


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


def sgemm_peak(threads: int, sizes=(512, 1024, 2048), reps: int = 10) -> float:
    """The machine's float32 matrix-multiply rate (FLOP/s) on ``threads`` threads: the best of ``reps``
    products of two size × size matrices of each size (torch.mm, MKL), after a warm-up (this VM's speed
    drifts: the best is the machine, the rest is its neighbours)."""
    best, before = 0.0, torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for size in sizes:
            a, b = torch.randn(size, size), torch.randn(size, size)
            out = torch.empty(size, size)
            torch.mm(a, b, out=out)
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.mm(a, b, out=out)
                best = max(best, 2 * size ** 3 / (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(before)
    return best


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


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
