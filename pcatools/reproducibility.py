"""What a CPU run's numbers depend on, and the settings that make them the same on other CPUs.

PyTorch picks its CPU kernels by the instruction set of the machine it runs on: ATen's vectorised
kernels, oneDNN's convolutions and MKL each have AVX2 and AVX-512 versions, which add the same
numbers in a different order. A training run is deterministic on one machine, but the same code,
seed and data give losses that differ in the 5th digit on a CPU with AVX-512 and one without, and
after a few hundred optimiser steps different models (docs/decisions.md, 2026-12-06). Holding
every library to AVX2 (:data:`CPU_ISA_ENV`), which every x86-64 CPU of the last ten years has,
and the number of threads (parallel reductions are split by thread), makes a run on any such CPU
add in the same order as on any other.

The three libraries read their variable once, when torch first loads, so :func:`hold_cpu_isa`
must run before ``import torch``: the ``pcatools`` command does it first thing, and
:func:`check_cpu_isa` tells a Python session afterwards whether it took. Setting
``PCATOOLS_CPU_ISA=native`` keeps the machine's own (faster) kernels.

Examples
--------
>>> env = {}
>>> hold_cpu_isa(env, torch_loaded=False)
True
>>> env["ATEN_CPU_CAPABILITY"], env["ONEDNN_MAX_CPU_ISA"], env["MKL_CBWR"]
('avx2', 'AVX2', 'AVX2')
>>> hold_cpu_isa({"PCATOOLS_CPU_ISA": "native"}, torch_loaded=False)
False
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

__all__ = [
    "CPU_ISA_ENV",
    "ISA_SWITCH",
    "check_cpu_isa",
    "cpu_model",
    "cpu_threads",
    "hold_cpu_isa",
    "numerical_environment",
]

CPU_ISA_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (reductions, elementwise, grid_sample)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions)
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility (matrix products)
}
"""Environment variables that hold torch's CPU libraries to AVX2 (read once, when torch loads)."""

ISA_SWITCH = "PCATOOLS_CPU_ISA"
"""Set to ``native`` to keep the machine's own instruction set (faster; numbers this CPU's own)."""


def hold_cpu_isa(
    environ: MutableMapping[str, str] | None = None, *, torch_loaded: bool | None = None
) -> bool:
    """Set :data:`CPU_ISA_ENV` in ``environ`` (default ``os.environ``) unless already set; ``True`` if held.

    A variable the user set is kept (it is their choice), and nothing is set when
    ``PCATOOLS_CPU_ISA=native`` or torch has loaded already (it would have no effect, and
    :func:`check_cpu_isa` then reports what the run uses).
    """
    env = os.environ if environ is None else environ
    if env.get(ISA_SWITCH, "").lower() == "native":
        return False
    if torch_loaded if torch_loaded is not None else "torch" in sys.modules:
        return False
    for key, value in CPU_ISA_ENV.items():
        env.setdefault(key, value)
    return True


def check_cpu_isa() -> str | None:
    """``None`` when torch's CPU kernels are held to AVX2, else one line saying what they use and why it matters."""
    import torch  # deferred: start-up (see tests/test_imports.py)

    used = torch.backends.cpu.get_cpu_capability()
    if used.upper() == "AVX2" and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        return None
    if os.environ.get(ISA_SWITCH, "").lower() == "native":
        return None  # asked for
    return (
        f"torch's CPU kernels use {used} (oneDNN {os.environ.get('ONEDNN_MAX_CPU_ISA') or 'unlimited'}): "
        "this run's numbers are this CPU's own; for numbers that hold on other CPUs call "
        "pcatools.reproducibility.hold_cpu_isa() before importing torch, or run the pcatools command"
    )


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore; nothing changes for ``None`` or
    when ``OMP_NUM_THREADS`` is set (whoever set it shares the cores out, e.g. a test runner: more
    threads than cores spin against each other, and a 1-minute run took 13).

    Parallel reductions are split by thread, so a CPU run's numbers hold for one thread count;
    ``versions.json`` records the count used (:func:`numerical_environment`).
    """
    import torch  # deferred: start-up (see tests/test_imports.py)

    before = torch.get_num_threads()
    if n is not None and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), with ``+avx512`` when it has AVX-512F."""
    name, flags = platform.processor() or platform.machine(), ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = value
                    break
    return name + (" +avx512" if " avx512f" in f" {flags}" else "")


def numerical_environment() -> dict[str, Any]:
    """What a run's CPU numbers depend on, for its ``versions.json``: CPU, kernels in use, threads.

    Examples
    --------
    >>> sorted(numerical_environment())[:3]
    ['ATEN_CPU_CAPABILITY', 'MKL_CBWR', 'ONEDNN_MAX_CPU_ISA']
    """
    import torch  # deferred: start-up (see tests/test_imports.py)

    out: dict[str, Any] = {key: os.environ.get(key, "") for key in CPU_ISA_ENV}
    out.update(
        {
            "cpu": cpu_model(),
            "cpu_capability_used": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(),
        }
    )
    return out
