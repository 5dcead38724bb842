#!/usr/bin/env bash
# Issue 35 item 6, in one call of a lent GPU machine (under eight minutes): petri's CUDA checks and GPU
# figures (gpu_check.sh), the population peers side by side on the GPU (throughput.py --device cuda: plain
# loop, torch.func, JAX lax.scan, petri; mlp [64] at K = 32 and 256, mnist_cnn at K = 64), and the README's
# study (petri run studies/inverted-mnist.toml, recipe device "auto") with its wall time.
#
# On the device machine (its python3 holds torch, JAX, ...; petri's missing wheels travel in .whl, MNIST in .data):
#   bash benchmarks/gpu_run.sh                      carry: .whl .data; results under $OUT
# Here, to test the plumbing on the CPU (same parts, --device cpu --quick, tiny sizes):
#   PYTHON=.venv/bin/python OUT=/tmp/gpu_run bash benchmarks/gpu_run.sh --cpu-smoke
# Preparing .whl and .data (once, in the repository root; both ignored through .git/info/exclude):
#   pip download --no-deps (cp312, manylinux x86_64) pydantic pydantic-core annotated-types typing-inspection
#   platformdirs pooch into .whl/ and typing-extensions (pydantic needs >= 4.16) into .whl/te/; MNIST's four .gz
#   files into .data/mnist/.
#
# $OUT receives at most 8 files: run.log (everything printed), summary.txt (each part's exit code and seconds),
# gpu_check.json, throughput_mlp.json, throughput_cnn.json, study.json (wall time, device, rates from the
# ledger), study_report.md, study.sqlite (the ledger). Each part has its own time limit and a failing part
# does not stop the others; the whole stays under GPU_RUN_BUDGET seconds (default 470).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[[ "${1:-}" == "--cpu-smoke" ]] && SMOKE=1
OUT=${OUT:-$ROOT/runs/gpu_run}
mkdir -p "$OUT"
export OUT
exec > >(tee -a "$OUT/run.log") 2>&1
TEE=$!
START=$(date +%s)
DEADLINE=$((START + ${GPU_RUN_BUDGET:-470}))
PY=$(command -v "${PYTHON:-python3}")
[[ $PY == /* ]] || PY=$ROOT/$PY  # not resolved further: a venv's python is a link
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PETRI_DATA=${PETRI_DATA:-$ROOT/.data}
SITE=${SITE:-/tmp/site}
echo "gpu_run: $(date -u '+%F %T') UTC, smoke=$SMOKE, python $PY, OUT=$OUT, PETRI_DATA=$PETRI_DATA, budget $((DEADLINE - START)) s"

# --- setup: petri's missing wheels into $SITE, the repository itself on PYTHONPATH, a `petri` command -------------
if [[ $SMOKE == 1 ]]; then
    wheels=(.whl/*-none-any.whl)  # this machine's Python cannot install the cp312 pydantic-core; the pure ones prove the path
else
    wheels=(.whl/*.whl)
fi
if [[ -e ${wheels[0]} ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
        || echo "gpu_run: WARNING: installing the wheels failed"
    # pydantic 2.14 needs typing_extensions >= 4.16: install the carried one only where the machine's is older
    if ! "$PY" -c "import sys; from importlib.metadata import version; from packaging.version import Version as V; \
sys.exit(V(version('typing_extensions')) < V('4.16.0'))" && [[ -e $(echo .whl/te/*.whl) ]]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/te/*.whl
    fi
else
    echo "gpu_run: no .whl/*.whl here (carry .whl): petri's dependencies must already be installed"
fi
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p /tmp/gpu_run_bin
printf '#!/bin/sh\nexec "%s" -m petri.cli "$@"\n' "$PY" > /tmp/gpu_run_bin/petri
chmod +x /tmp/gpu_run_bin/petri
export PATH="/tmp/gpu_run_bin:$PATH"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
"$PY" - <<'EOF'
import importlib, os, platform
print("python", platform.python_version(), "on", platform.node(), os.cpu_count(), "CPUs")
for m in ("torch", "jax", "optax", "numpy", "pydantic", "pydantic_core", "typing_extensions", "platformdirs", "typer",
          "rich", "scipy", "pandas", "statsmodels", "matplotlib", "safetensors", "PIL", "petri"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m} {getattr(mod, '__version__', '?')} {os.path.dirname(mod.__file__)}")
    except Exception as e:
        print(f"  {m}: NOT IMPORTABLE: {type(e).__name__}: {e}")
import torch
print("torch CUDA", torch.version.cuda, "available:", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
try:
    import jax
    print("jax devices:", jax.devices())
except Exception as e:
    print("jax:", type(e).__name__, e)
EOF
petri data list | head -4

# --- parts -------------------------------------------------------------------------------------------------------
# part NAME CAP CMD...: runs CMD under `timeout` (CAP seconds, less if the budget is nearly spent); logs rc and time.
part() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - $(date +%s) - 5))
    local limit=$((cap < left ? cap : left))
    if ((limit < 15)); then
        echo "=== $name: skipped, the budget is spent"
        echo "$name rc=skipped seconds=0 limit=0" >> "$OUT/summary.txt"
        return
    fi
    echo "=== $name (limit ${limit} s) $(date -u +%T)"
    local t0 rc dt
    t0=$(date +%s.%N)
    LIMIT=$limit "$@"
    rc=$?
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "=== $name: rc=$rc, ${dt} s$( ((rc == 124 || rc == 137)) && echo ' (timed out)')"
    echo "$name rc=$rc seconds=$dt limit=$limit" >> "$OUT/summary.txt"
}

gpu_check() {
    if [[ $SMOKE == 1 ]]; then
        timeout -k 10 "$LIMIT" "$PY" benchmarks/gpu_check.py --device cpu --quick
    else  # gpu_check.sh's own timeout, set to this part's limit (an outer one would leave its python running)
        GPU_CHECK_TIMEOUT=$LIMIT PYTHON=$PY bash benchmarks/gpu_check.sh
    fi
}

throughput() {  # MODEL NAME ARGS...
    local model=$1 name=$2
    shift 2
    if [[ $SMOKE == 1 ]]; then
        timeout -k 10 "$LIMIT" "$PY" benchmarks/throughput.py --device cpu --quick --model "$model" "$@" \
            --json "$OUT/throughput_$name.json"
    else
        timeout -k 10 "$LIMIT" "$PY" benchmarks/throughput.py --device cuda --rounds 2 --model "$model" "$@" \
            --json "$OUT/throughput_$name.json"
    fi
}

study() {
    local toml=studies/inverted-mnist.toml dir=/tmp/gpu_run_study
    rm -rf "$dir"
    if [[ $SMOKE == 1 ]]; then  # the same study, 2 seeds, 1 epoch on 3,000 images
        toml=/tmp/gpu_run_smoke.toml
        sed -e 's/^seeds = 5.*/seeds = 2/' -e 's/^epochs = 4/epochs = 1\ntrain_size = 3000\ntest_size = 1000/' \
            studies/inverted-mnist.toml > "$toml"
    fi
    local t0 rc wall
    t0=$(date +%s.%N)
    timeout -k 10 "$LIMIT" petri run "$toml" --out "$dir"
    rc=$?
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "study wall time: ${wall} s (rc $rc)"
    [[ -f $dir/report/report.md ]] && cp "$dir/report/report.md" "$OUT/study_report.md"
    [[ -f $dir/petri.sqlite ]] && "$PY" - "$dir/petri.sqlite" "$OUT/study.sqlite" <<'EOF'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1])
with sqlite3.connect(sys.argv[2]) as dst:  # one consistent file, whatever state the run left
    src.backup(dst)
EOF
    "$PY" - "$dir" "$rc" "$wall" "$OUT/study.json" <<'EOF'
import json, sqlite3, sys
from pathlib import Path
d, rc, wall, out = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
res = {"study": "studies/inverted-mnist.toml", "rc": rc, "wall_s": wall}
if (d / "petri.sqlite").is_file():
    db = sqlite3.connect(d / "petri.sqlite")
    q = lambda sql: db.execute(sql).fetchall()
    res["runs"] = [dict(zip(("device", "torch", "started", "finished", "status"), r))
                   for r in q("SELECT device, torch_version, started, finished, status FROM runs")]
    res["cells"] = dict(q("SELECT status, COUNT(*) FROM cells GROUP BY status"))
    res["machines"] = [r[0] for r in q("SELECT DISTINCT machine FROM epochs")]
    res["epochs"] = q("SELECT COUNT(*) FROM epochs")[0][0]
    res["train_seconds_sum_of_packs_epochs"] = q("SELECT SUM(seconds / pack_size) FROM epochs")[0][0]
    res["images_per_s_aggregate_by_pack_size"] = {
        str(k): v for k, v in q("SELECT pack_size, AVG(images_per_s) * pack_size FROM epochs GROUP BY pack_size")}
    res["test_acc_by_variant"] = dict(q(
        "SELECT c.variant, AVG(e.test_acc) FROM epochs e JOIN cells c ON c.hash = e.cell_hash "
        "WHERE e.epoch = (SELECT MAX(epoch) FROM epochs WHERE cell_hash = e.cell_hash) GROUP BY c.variant"))
Path(out).write_text(json.dumps(res, indent=1))
print(json.dumps(res, indent=1))
EOF
    return $rc
}

if [[ $SMOKE == 1 ]]; then
    part gpu_check 400 gpu_check
    part throughput_mlp 300 throughput mlp mlp --K 2 4 --train-size 1000
    part throughput_cnn 300 throughput mnist_cnn cnn --K 2 --train-size 256
    part study 400 study
else
    part gpu_check 150 gpu_check
    part throughput_mlp 120 throughput mlp mlp --K 32 256
    part throughput_cnn 95 throughput mnist_cnn cnn --K 64 --train-size 6400
    part study 100 study
fi
echo "gpu_run: done in $(($(date +%s) - START)) s; files in $OUT:"
ls -la "$OUT"
exec >&- 2>&-
wait "$TEE"  # run.log complete before the call returns
