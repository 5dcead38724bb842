"""Throughput of petri's population engine against its peers (``peers.py``), on real MNIST, in one run.

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
import time

import torch

import petri.data
from petri.models import MLP, MnistCNN, parse_model, register_model
from petri.train import Member, Recipe, train_pack
from petri.treatments import parse_treatment

from peers import (  # (the script's folder is on sys.path when it runs)
    _median, _sync, func_peer, func_population, jax_population, jax_scan_peer, jax_scan_population, lenet5_module,
    plain_cnn, plain_lenet5, plain_loop, plain_mlp, sgemm_peak,
)


LENET5_LAYERS = [{"name": "conv2d", "filters": 6, "kernel": 5, "padding": 2}, "tanh", {"name": "avg_pool"},
                 {"name": "conv2d", "filters": 16, "kernel": 5}, "tanh", {"name": "avg_pool"}, "flatten",
                 {"name": "dense", "units": 120}, "tanh", {"name": "dense", "units": 84}, "tanh",
                 {"name": "dense", "units": "classes"}]


MLP_LAYERS = ["flatten", {"name": "dense", "units": 64}, "relu", {"name": "dense", "units": "classes"}]


MLP64_FLOP = 2 * (784 * 64 + 64 * 10) * 2 + 2 * 64 * 10  # per training image: forward, weight gradients, one


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


PEER_MODELS = {"mlp": (plain_mlp, lambda: MLP(hidden=[64]), 100, 60000),  # plain module, petri model, batch, images
               "mnist_cnn": (plain_cnn, MnistCNN, 128, 12800)}


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


def conv_packs(ds, rounds: int) -> None:
    """LeNet-5 (as a layer list and as a module) and `mnist_cnn` packs of 1 and 8 against the plain loop
    training one member, batch 128, one epoch on a slice; plain and petri alternate each round and the
    ratios' medians are printed (K = 8 aggregate images/s over the plain loop's)."""
    register_model("bench_lenet5", lenet5_module)
    ratios: dict[str, list[float]] = {}
    for r in range(rounds):
        plain = plain_loop(plain_lenet5, ds, 1, 128, r, max_steps=40)[0]
        row = {}
        for k in (1, 8):
            n = 128 * (40 if k == 1 else 10)
            row[f"lenet5_list_k{k}"] = petri_run(parse_model(LENET5_LAYERS), ds, 1, 128, list(range(k)), train_size=n)[0]
            row[f"lenet5_module_k{k}"] = petri_run(parse_model("bench_lenet5"), ds, 1, 128, list(range(k)),
                                                   train_size=n)[0]
        cnn_plain = plain_loop(plain_cnn, ds, 1, 128, r, max_steps=15)[0]
        for k in (1, 8):
            row[f"cnn_k{k}"] = petri_run(MnistCNN(), ds, 1, 128, list(range(k)),
                                         train_size=128 * (15 if k == 1 else 4))[0]
        print(f"  round {r + 1} (img/s, K = 8 aggregate): LeNet-5 plain {plain:,.0f}; mnist_cnn plain {cnn_plain:,.0f}; "
              + ", ".join(f"{k} {v:,.0f}" for k, v in row.items()), flush=True)
        for k, v in row.items():
            ratios.setdefault(k, []).append(v / (cnn_plain if k.startswith("cnn") else plain))
    for k, v in ratios.items():
        print(f"{k}_ratio={_median(v):.2f}  ({', '.join(f'{x:.2f}' for x in v)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 epoch, 1 round (smoke run)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved plain/petri rounds; medians are reported")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--population", action="store_true", help="only the 32-member mlp [64] population and its peers")
    ap.add_argument("--conv", action="store_true", help="only the LeNet-5 and mnist_cnn packs against the plain loop")
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

    if args.conv:
        return conv_packs(ds, rounds)
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

    conv_packs(ds, 1)

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


if __name__ == "__main__":
    main()
