"""One nnU-Net training iteration with L1DFL against the same iteration with nnU-Net's default Dice+CE.

Each trainer is nnU-Net's own class (``nnUNetTrainer``: ``DC_and_CE_loss``; pcatools'
``nnUNetTrainerDiceFocal`` and ``nnUNetTrainerL1DFL``) on the plans nnU-Net's planner makes for a
``--patch`` (:func:`pcatools.nnunet.trainers.plans_for_patch`: PlainConvUNet, 32..320 features,
deep supervision), initialised as for training (network, SGD, deep-supervision loss), and timed in
its own ``train_step``: zero_grad, forward (autocast on CUDA), the deep-supervision loss, backward,
gradient clipping and the optimiser step. Only ``_build_loss`` differs between the trainers, so
the differences are the loss's cost inside a real iteration. Input: ``--batch`` x 2 channels
(CT, PET) of random values, labels with 2 % lesion voxels, downsampled to every deep-supervision
scale by nearest neighbour (as nnU-Net's ``DownsampleSegForDSTransform``).

Time: the trainers run round-robin, ``--repeats`` rounds; in each round every trainer does one
untimed step and then one timed step (as ``benchmarks/losses.py``: load from other processes hits
all alike, each is timed in its allocator's steady state). The median is reported, with the range.

Peak memory: the extra memory one step needs above what existed before it (weights, optimiser
state, inputs). CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. CPU:
``tracemalloc`` does not see torch's allocations, so, as in ``benchmarks/losses.py`` (whose helpers
are used), the peak resident set (``VmHWM`` after ``clear_refs``) minus the RSS before, in a child
process with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors leave the RSS at once.

Ratios are against ``dice_ce`` (nnU-Net's default) measured in the same run.

Run: ``python benchmarks/nnunet_loss.py [--device cpu|cuda] [--patch 64 64 64] [--batch 2] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from losses import _can_reset_peak_rss, measure_step, times_and_memory  # noqa: E402

from pcatools.nnunet import LOSSES, trainer_class  # noqa: E402
from pcatools.nnunet.trainers import standalone_trainer  # noqa: E402

ORDER = ("dice_ce", "dice_focal", "l1dfl")


def make_trainer(loss: str, results: Path, patch: tuple[int, ...], device: str) -> Any:
    """A nnU-Net trainer for ``loss`` with network, optimiser and loss built as its ``initialize()`` builds them.

    ``initialize()`` itself also opens the preprocessed dataset, which a benchmark has none of; the
    network is not ``torch.compile``d (nnU-Net's default on CUDA), the same for every trainer.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = standalone_trainer(trainer_class(loss), results / loss, patch, device=device)
        trainer.network = trainer.build_network_architecture(
            trainer.plans_manager, trainer.configuration_manager, 2,
            trainer.label_manager.num_segmentation_heads, trainer.enable_deep_supervision,
        ).to(trainer.device)  # fmt: skip
        trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
        trainer.loss = trainer._build_loss()
    trainer.network.train()
    return trainer


def make_batch(trainer: Any, batch: int, patch: tuple[int, ...], device: str, seed: int) -> dict[str, Any]:
    """``{"data", "target"}`` as nnU-Net's data loader hands them to ``train_step`` (a target per output scale)."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(batch, 2, *patch, generator=gen)
    seg = (torch.rand(batch, 1, *patch, generator=gen) < 0.02).float()
    targets = []
    for scale in trainer._get_deep_supervision_scales():
        shape = [round(s * f) for s, f in zip(patch, scale, strict=True)]
        targets.append(F.interpolate(seg, size=shape, mode="nearest-exact"))
    return {"data": data.to(device), "target": [t.to(device) for t in targets]}


def measure(
    trainer: Any, batch: dict[str, Any], device: torch.device, cpu_memory: bool
) -> tuple[float, float]:
    """One ``train_step`` (its prints silenced): (seconds, peak extra memory in MiB or nan)."""

    def step() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train_step(batch)

    return measure_step(step, device, cpu_memory)


def run_all(args: argparse.Namespace, memory: bool) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    device = torch.device(args.device)
    cpu_memory = memory and device.type == "cpu" and _can_reset_peak_rss()
    patch = tuple(args.patch)
    times: dict[str, list[float]] = {k: [] for k in ORDER}
    mems: dict[str, list[float]] = {k: [] for k in ORDER}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {k: make_trainer(k, Path(tmp), patch, args.device) for k in ORDER}
        batch = make_batch(trainers["dice_ce"], args.batch, patch, args.device, args.seed)
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                measure(trainer, batch, device, False)  # untimed: this trainer's allocator steady state
                dt, mem = measure(trainer, batch, device, cpu_memory)
                times[name].append(dt)
                mems[name].append(mem)
    return times, mems


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64], help="patch size (voxels)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    measured = times_and_memory(run_all, args, argv, __file__)
    if measured is None:
        return
    times, mems, how = measured

    from importlib.metadata import version

    import nnunetv2

    dev = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU, {torch.get_num_threads()} torch threads"
    )
    print(
        f"nnU-Net train_step, batch {args.batch} x 2 channels, patch {tuple(args.patch)}, on {args.device} ({dev}); "
        f"torch {torch.__version__}, nnunetv2 {version('nnunetv2')} ({Path(nnunetv2.__file__).parent})"
    )
    print(f"median of {args.repeats} repeats; peak memory = extra above weights and inputs, {how}")
    t_ref, m_ref = statistics.median(times["dice_ce"]), statistics.median(mems["dice_ce"])
    header = f"{'loss':<12}{'trainer':<24}{'step [s]':>10}{'x DC+CE':>9}{'peak [MiB]':>12}{'x DC+CE':>9}"
    print(header)
    print("-" * len(header))
    for name in ORDER:
        t, m = statistics.median(times[name]), statistics.median(mems[name])
        print(f"{name:<12}{LOSSES[name]:<24}{t:>10.3f}{t / t_ref:>9.2f}{m:>12.1f}{m / m_ref:>9.2f}")
    print("step range [s]: " + ", ".join(f"{k} {min(v):.3f}-{max(v):.3f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
