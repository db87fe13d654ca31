"""Forward+backward time and peak memory of L1DiceFocalLoss against its peers.

Measured, in one run on the same inputs (logits ``--shape``, default ``2 2 128 128 128``, float32,
random labels in ``[0, C)``):

* ``l1dfl``          ``pcatools.losses.L1DiceFocalLoss()`` (fused forward/closed-form backward);
* ``l1dfl-autograd`` the same loss composed of plain autograd ops (``fused=False``);
* ``monai-dfl``      ``monai.losses.DiceFocalLoss(to_onehot_y=True, softmax=True)``, the Dice
  Focal Loss L1DFL replaces (the public code's DFL);
* ``public-code``    ``pcatools.losses.ReferenceCodeL1DFL``, a re-implementation of the public
  code's approach (softmax, one-hot, ``bucketize`` + ``scatter_add`` histogram, weights gathered
  per element, plain autograd).

Time: wall time of ``loss(logits, labels).backward()`` (``torch.cuda.synchronize`` around it on
CUDA). The implementations run round-robin, ``--repeats`` rounds, so that load from other
processes on a shared CPU hits all alike; in each round every loss is called twice in a row and
only the second call is timed (steady state of the allocator for that loss, as in a training loop:
otherwise the first call after another loss pays for re-faulting the pages that loss released).
The median over the rounds is reported, with the range.

Peak memory: the extra memory the forward+backward needs above what existed before it (inputs,
labels; the gradient of the logits is included, as it is for every implementation).

* CUDA: ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()`` after
  ``reset_peak_memory_stats()`` (exact, allocator level).
* CPU: ``tracemalloc`` does not see torch's allocations, so the process's resident set is used:
  the peak-RSS counter is reset (``echo 5 > /proc/self/clear_refs``), and the peak (``VmHWM``)
  minus the RSS before the call is read from ``/proc/self/status`` after it. This runs in a child
  process started with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns every freed tensor
  buffer to the OS at once (no heap caching): RSS then tracks live tensor memory to within a few
  pages. (Fresh pages for every tensor make that child slow, so times come from the parent, which
  runs with the normal allocator.) The median over the repeats is reported.

Ratios are against ``monai-dfl`` measured in the same run (goal for ``l1dfl``: <= 1.10 in time and
in peak memory).

Run: ``python benchmarks/losses.py [--device cpu|cuda] [--shape 2 2 128 128 128] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

_MALLOC_ENV = "MALLOC_MMAP_THRESHOLD_"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import monai  # noqa: E402
import torch  # noqa: E402
from monai.losses import DiceFocalLoss  # noqa: E402
from torch import nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pcatools.losses import L1DiceFocalLoss, ReferenceCodeL1DFL  # noqa: E402


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _can_reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_step(step: Callable[[], object], device: torch.device, cpu_memory: bool) -> tuple[float, float]:
    """Run ``step()`` once: (seconds, peak extra memory in MiB, or nan where it cannot be read).

    The peak is CUDA's allocator peak on a GPU, and on CPU the process's peak RSS after resetting it
    (``/proc/self/clear_refs``), which ``cpu_memory`` asks for. Shared by ``nnunet_loss.py``.
    """
    gc.collect()
    mem = float("nan")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    elif cpu_memory:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base = _status_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        mem = (torch.cuda.max_memory_allocated() - base) / 2**20
    elif cpu_memory:
        mem = (_status_kb("VmHWM") * 1024 - base) / 2**20
    return dt, mem


def measure(
    loss: nn.Module, logits: torch.Tensor, labels: torch.Tensor, device: torch.device, cpu_memory: bool
) -> tuple[float, float]:
    """One forward+backward: (seconds, peak extra memory in MiB or nan)."""
    logits.grad = None
    result = measure_step(lambda: loss(logits, labels).backward(), device, cpu_memory)
    logits.grad = None
    return result


def _run_all(args: argparse.Namespace, memory: bool) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Round-robin forward+backward of every loss: (times, memories) per loss name."""
    device = torch.device(args.device)
    cpu_memory = memory and device.type == "cpu" and _can_reset_peak_rss()
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    b, c, *spatial = args.shape
    logits = torch.randn(b, c, *spatial, generator=gen).to(device).requires_grad_(True)
    labels = torch.randint(0, c, (b, 1, *spatial), generator=gen).to(device)
    losses: dict[str, nn.Module] = {
        "l1dfl": L1DiceFocalLoss(),
        "l1dfl-autograd": L1DiceFocalLoss(fused=False),
        "monai-dfl": DiceFocalLoss(to_onehot_y=True, softmax=True),
        "public-code": ReferenceCodeL1DFL(),
    }
    for m in losses.values():
        m.to(device)
    times: dict[str, list[float]] = {k: [] for k in losses}
    mems: dict[str, list[float]] = {k: [] for k in losses}
    run: Callable[[nn.Module], tuple[float, float]] = lambda m: measure(m, logits, labels, device, cpu_memory)  # noqa: E731
    desc = "memory repeats" if memory else "timing repeats"
    for _ in tqdm(range(args.repeats), desc=desc, file=sys.stderr):
        for name, m in losses.items():
            if not memory:
                measure(m, logits, labels, device, False)  # untimed call: this loss's allocator steady state
            dt, mem = run(m)
            times[name].append(dt)
            mems[name].append(mem)
    return times, mems


def memory_in_child(script: str | Path, argv: list[str]) -> dict[str, list[float]] | None:
    """Run ``script``'s memory measurement (``--memory-child``) in a child process with glibc's mmap
    threshold pinned, so that freed buffers return to the system alike for every loss; shared by
    ``nnunet_loss.py``."""
    env = {**os.environ, _MALLOC_ENV: "65536"}
    cmd = [sys.executable, str(Path(script).resolve()), *argv, "--memory-child"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"memory child failed ({proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, list[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


RunAll = Callable[[argparse.Namespace, bool], tuple[dict[str, list[float]], dict[str, list[float]]]]


def times_and_memory(
    run_all: RunAll, args: argparse.Namespace, argv: list[str], script: str | Path
) -> tuple[dict[str, list[float]], dict[str, list[float]], str] | None:
    """Times and peak memories per name from ``run_all(args, memory)``, and how memory was read.

    On CUDA one run gives both; on CPU the timed run goes without memory and a child process
    (:func:`memory_in_child`) measures it. In that child (``args.memory_child``) the memories are
    printed as JSON and ``None`` is returned. Shared by ``nnunet_loss.py``.
    """
    if args.memory_child:
        print(json.dumps(run_all(args, True)[1]))
        return None
    if args.device == "cuda":
        times, mems = run_all(args, True)
        return times, mems, "torch.cuda.max_memory_allocated"
    times, _ = run_all(args, False)
    child = memory_in_child(script, argv) if _can_reset_peak_rss() else None
    mems = child if child is not None else {k: [float("nan")] for k in times}
    how = "peak RSS (VmHWM after clear_refs) minus RSS before, child process" if child else "unavailable"
    return times, mems, how


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--shape", type=int, nargs="+", default=[2, 2, 128, 128, 128], help="B C *spatial")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if len(args.shape) < 3 or args.shape[1] < 2:
        ap.error(f"--shape must be B C *spatial with C >= 2, found {args.shape}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda requested but torch.cuda.is_available() is False")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    measured = times_and_memory(_run_all, args, argv, __file__)
    if measured is None:
        return
    times, mems, mem_method = measured

    dev = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU, {torch.get_num_threads()} torch threads"
    )
    print(
        f"shape {tuple(args.shape)} float32 on {args.device} ({dev}); torch {torch.__version__}, monai {monai.__version__}"
    )
    print(f"median of {args.repeats} repeats; peak memory = extra above inputs, {mem_method}")
    t_ref = statistics.median(times["monai-dfl"])
    m_ref = statistics.median(mems["monai-dfl"])
    t_pub = statistics.median(times["public-code"])
    m_pub = statistics.median(mems["public-code"])
    header = f"{'loss':<16}{'time [s]':>10}{'x MONAI':>9}{'x public':>10}{'peak [MiB]':>12}{'x MONAI':>9}{'x public':>10}"
    print(header)
    print("-" * len(header))
    for name in times:
        t = statistics.median(times[name])
        m = statistics.median(mems[name])
        print(
            f"{name:<16}{t:>10.3f}{t / t_ref:>9.2f}{t / t_pub:>10.2f}{m:>12.1f}{m / m_ref:>9.2f}{m / m_pub:>10.2f}"
        )
    print("time range [s]: " + ", ".join(f"{k} {min(v):.3f}-{max(v):.3f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
