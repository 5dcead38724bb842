"""What computed a number: the processor, the vector kernels PyTorch picked, the GPU, the libraries.

petri's bitwise promises (a cell's numbers do not depend on its pack; a resumed cell continues to the
bit) hold on one kind of machine: another CPU family, another ``ATEN_CPU_CAPABILITY`` or another
MKL / oneDNN / CUDA build rounds some sums in another order. Each epoch row of the ledger records
``machine(device)``, so a study computed on more than one kind says so (``kinds``).
"""

from __future__ import annotations

import functools
import platform
import re

import torch


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def _libraries() -> str:
    """MKL and oneDNN versions from torch's build record ("MKL 2024.2 · oneDNN v3.12.0")."""
    config = torch.__config__.show()
    out = []
    if m := re.search(r"Math Kernel Library Version ([\d.]+)", config):
        out.append(f"MKL {m.group(1)}")
    if m := re.search(r"MKL-DNN (v[\d.]+)", config):
        out.append(f"oneDNN {m.group(1)}")
    return " · ".join(out)


def machine(device: torch.device | str = "cpu") -> str:
    """One line naming what computes on ``device`` in this process, e.g.
    "AMD EPYC · AVX512 · torch 2.13.0+cpu · MKL 2024.2 · oneDNN v3.12.0" (a GPU adds its name and CUDA)."""
    parts = [_cpu_model(), torch.backends.cpu.get_cpu_capability(), f"torch {torch.__version__}"]
    if torch.device(device).type == "cuda":
        parts[1:1] = [torch.cuda.get_device_name(torch.device(device)), f"CUDA {torch.version.cuda}"]
    if libs := _libraries():
        parts.append(libs)
    return " · ".join(parts)


def kinds(epochs: list[dict]) -> dict[str, int]:
    """Machines that computed these epoch rows -> how many rows each (rows from before petri recorded
    it are left out)."""
    out: dict[str, int] = {}
    for e in epochs:
        if e.get("machine"):
            out[e["machine"]] = out.get(e["machine"], 0) + 1
    return out


def mixed_note(epochs: list[dict]) -> str | None:
    """One sentence when the rows were computed on more than one kind of machine, else None."""
    ks = kinds(epochs)
    if len(ks) < 2:
        return None
    listed = "; ".join(f"{m} ({n} epochs)" for m, n in sorted(ks.items(), key=lambda kv: -kv[1]))
    return (f"computed on {len(ks)} kinds of machine: {listed}. Numbers are bitwise reproducible on one kind only; "
            "across kinds they agree to rounding (see README, 'What is bitwise').")
