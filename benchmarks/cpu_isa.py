"""What holding torch's CPU kernels to AVX2 costs: the demo's training step, AVX2 against the machine's own.

``pcatools`` holds torch to AVX2 (``pcatools.reproducibility``) so that a CPU run gives the same
numbers on CPUs with and without AVX-512. This benchmark times one optimiser step of each demo
network (the demo profile's widths, batch and 32^3 patches, L1DFL with batch Dice) in two child
processes started together, one held to AVX2 and one with ``PCATOOLS_CPU_ISA=native``, each with
one thread so that both see the same machine, and prints the ratio. It also checks that the two
give different losses where the machine has AVX-512 (otherwise there is nothing to hold).

    .venv/bin/python benchmarks/cpu_isa.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def child(steps: int) -> None:
    from pcatools.reproducibility import hold_cpu_isa

    hold_cpu_isa()
    import torch

    from pcatools.losses import build_loss
    from pcatools.models import build_model
    from pcatools.study import get_profile

    out: dict[str, object] = {"capability": torch.backends.cpu.get_cpu_capability()}
    for network in ("segresnet", "attention_unet"):
        cfg = get_profile("demo").train_config(network, "l1dfl")
        torch.manual_seed(0)
        net = build_model(network, in_channels=2, out_channels=2, **cfg.model_overrides)
        loss_fn = build_loss("l1dfl", **cfg.loss_overrides)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
        shape = (cfg.batch_size * cfg.num_samples, *cfg.patch_size)
        x = torch.randn(shape[0], 2, *shape[1:], generator=torch.Generator().manual_seed(1))
        y = (torch.rand(shape[0], 1, *shape[1:], generator=torch.Generator().manual_seed(2)) > 0.97).long()
        times, losses = [], []
        for _ in range(steps + 2):  # two warm-up steps
            start = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
            losses.append(float(loss))
        times = sorted(times[2:])
        out[network] = {"median_s": times[len(times) // 2], "last_loss": losses[-1]}
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.steps)
        return
    base = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {
        "avx2": subprocess.Popen(
            [sys.executable, __file__, "--child", "--steps", str(args.steps)],
            stdout=subprocess.PIPE,
            text=True,
            env={k: v for k, v in base.items() if k != "PCATOOLS_CPU_ISA"},
        ),
        "native": subprocess.Popen(
            [sys.executable, __file__, "--child", "--steps", str(args.steps)],
            stdout=subprocess.PIPE,
            text=True,
            env={**base, "PCATOOLS_CPU_ISA": "native"},
        ),
    }
    found = {name: json.loads(proc.communicate()[0]) for name, proc in runs.items()}
    print(f"kernels: held {found['avx2']['capability']}, native {found['native']['capability']}")
    print(
        "| network | step, AVX2 (s) | step, native (s) | AVX2 / native | loss after the steps, AVX2 vs native |"
    )
    print("|---|---|---|---|---|")
    for network in ("segresnet", "attention_unet"):
        a, n = found["avx2"][network], found["native"][network]
        print(
            f"| {network} | {a['median_s']:.3f} | {n['median_s']:.3f} | {a['median_s'] / n['median_s']:.2f} | "
            f"{a['last_loss']:.9f} vs {n['last_loss']:.9f} |"
        )


if __name__ == "__main__":
    main()
