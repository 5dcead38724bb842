"""Numbers and the machine that computed them: every epoch records it, a study computed on more than one
kind says so, and the numeric tests pass under every vector capability this CPU supports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from petri.machine import kinds, machine, mixed_note

ROOT = Path(__file__).resolve().parent.parent

# The tests that compare numbers: optimisers against torch.optim, layers and models against autograd,
# a member alone against the same member packed, bitwise resume. Each kernel family rounds differently,
# so a tolerance that holds for one family only must fail somewhere: CI runs them under each family.
NUMERIC = ["tests/test_train.py", "tests/test_layers.py", "tests/test_models.py", "tests/test_resume.py"]


def supported_capabilities() -> list[str]:
    """The ``ATEN_CPU_CAPABILITY`` values this CPU can run (PyTorch's CPU dispatch: default, avx2, avx512)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    caps = ["default"]
    if {"avx2", "fma"} <= flags:
        caps.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        caps.append("avx512")
    return caps


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    return {**env, **extra}


@pytest.mark.slow
@pytest.mark.parametrize("capability", supported_capabilities())
def test_numeric_tests_pass_under_every_capability(capability):
    """The suite itself runs under the machine's own choice; here each supported family in turn."""
    if capability == torch.backends.cpu.get_cpu_capability().lower() and not os.environ.get("ATEN_CPU_CAPABILITY"):
        pytest.skip(f"{capability} is this process's own capability: the suite already ran these tests under it")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *NUMERIC],
                          cwd=ROOT, env=_env(ATEN_CPU_CAPABILITY=capability), capture_output=True, text=True,
                          timeout=1200)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
    assert done.returncode == 0, f"under ATEN_CPU_CAPABILITY={capability}:\n{tail}"


def test_capability_is_what_torch_reports():
    """The environment variable picks the kernels, and ``machine`` names the ones in use."""
    out = subprocess.run([sys.executable, "-c", "from petri.machine import machine; print(machine())"],
                         env=_env(ATEN_CPU_CAPABILITY="default"), capture_output=True, text=True, check=True)
    assert " · DEFAULT · " in out.stdout
    assert machine().split(" · ")[1] == torch.backends.cpu.get_cpu_capability()
    assert f"torch {torch.__version__}" in machine()


def test_mixed_note():
    rows = [{"machine": "A · AVX2"}, {"machine": "A · AVX2"}, {"machine": "A · DEFAULT"}, {"machine": None}]
    assert kinds(rows) == {"A · AVX2": 2, "A · DEFAULT": 1}
    note = mixed_note(rows)
    assert note.startswith("computed on 2 kinds of machine: A · AVX2 (2 epochs); A · DEFAULT (1 epochs)")
    assert mixed_note(rows[:2]) is None and mixed_note([]) is None


STUDY = """
name = "machines"
data = "mnist"
seeds = SEEDS
baseline = "a"

[recipe]
model = { name = "mlp", hidden = [8] }
batch_size = 100
epochs = 1
train_size = 500
test_size = 200

[variants.a]
[variants.b]
treatments = ["invert"]
"""


def test_a_study_computed_on_two_kinds_says_so(tmp_path):
    """Part of a study under avx2, the rest under the scalar kernels: each epoch row names its machine,
    and ``petri show`` and the report say the study was computed on two kinds."""
    study, out = tmp_path / "s.toml", tmp_path / "out"

    def run(seeds, capability):
        study.write_text(STUDY.replace("SEEDS", seeds))
        done = subprocess.run([sys.executable, "-m", "petri.cli", "run", str(study), "--out", str(out)], cwd=ROOT,
                              env=_env(ATEN_CPU_CAPABILITY=capability), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    if "avx2" not in supported_capabilities():
        pytest.skip("this CPU has no AVX2")
    run("[0]", "avx2")
    first = run("[0]", "default")  # nothing to train: one kind so far
    assert "kinds of machine" not in first.stdout + first.stderr
    run("[0, 1]", "default")
    import petri

    machines = petri.open_study(out).epochs().set_index("seed")["machine"].astype(str)
    assert set(machines.loc[0]) == {machine().replace(machine().split(" · ")[1], "AVX2")}
    assert set(machines.loc[1]) == {machine().replace(machine().split(" · ")[1], "DEFAULT")}
    shown = subprocess.run([sys.executable, "-m", "petri.cli", "show", str(out)], cwd=ROOT, env=_env(),
                           capture_output=True, text=True)
    assert "computed on 2 kinds of machine" in shown.stderr and "2 epochs" in shown.stderr
    report = (out / "report" / "report.md").read_text()
    assert "**Machines.** computed on 2 kinds of machine" in report
