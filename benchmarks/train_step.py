"""Training-step speed of the study's networks, data waiting against compute, and inference time.

Three measurements (each can be switched off; all print a table and the ratios):

``steps``
    Optimiser steps per second of ``segresnet`` and ``attention_unet`` (the paper's sizes,
    :func:`pcatools.models.build_model`) with L1DFL, AdamW, on random inputs
    ``(batch, 2, n, n, n)`` for ``--sizes`` (default 64, 96, 128) and ``--batch`` (default 1).
    A step is exactly the loop's step: zero_grad, forward (float16 autocast with ``--amp``,
    default on CUDA), loss in float32, backward (through ``GradScaler``), ``optimizer.step()``;
    CUDA is synchronised around it. ``--warmup`` untimed steps, then the median of ``--steps``
    timed ones (CPU defaults: 1 + 3, i.e. *few* steps: a 128^3 step takes tens of seconds on
    a laptop CPU). The networks (and losses) of one size run round-robin, one step each in
    turn, so that load from other processes affects them alike. Peak GPU memory is reported
    on CUDA.
    Ratios in the same run: ``attention_unet / segresnet`` time per step, and -- at the sizes in
    ``--peer-sizes``, first ``--batch`` -- the step with L1DFL against the same step with the loss it replaces
    (MONAI ``DiceFocalLoss(to_onehot_y=True, softmax=True)``, the public code's DFL).
``pipeline``
    Time the training loop waits for data against time it computes, with the real pipeline
    (``pcatools.data.transforms.train_transforms`` in a MONAI ``CacheDataset``, MONAI
    ``DataLoader`` with ``--workers`` processes, a new iterator each epoch as in ``train``) on
    ``--pipeline-cases`` synthetic cases of ``--case-shape`` voxels at 2 mm, for each network at
    the largest size. Reported: the first batch's wait (starts the workers, once per epoch), the
    mean wait per later step, the mean compute per step and the waiting fraction
    ``wait / (wait + compute)`` of the later steps (goal on GPU: < 10 %).
``inference``
    Whole-body sliding-window inference time (:func:`pcatools.inference.sliding_window_logits`,
    window ``--roi``, overlap 0.25, Gaussian blending, ``--sw-batch`` windows per pass) on a
    ``--wb-shape`` volume (default on CUDA 352 x 352 x 480 voxels = 70 x 70 x 96 cm at 2 mm),
    both networks; ratio ``attention_unet / segresnet``.

Run: ``python benchmarks/train_step.py`` (CPU, all three with small defaults), or e.g.
``python benchmarks/train_step.py --device cuda --sizes 128 --batch 2 4 8 --no-pipeline``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from pcatools.losses import build_loss  # noqa: E402
from pcatools.models import build_model, count_parameters  # noqa: E402

NETWORKS = ("segresnet", "attention_unet")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stepper:
    """One optimiser step of the training loop (``pcatools.training.epoch.train_epoch``)."""

    def __init__(self, net: nn.Module, loss: nn.Module, device: torch.device, amp: bool) -> None:
        self.net, self.loss, self.device, self.amp = net.to(device).train(), loss, device, amp
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=2e-4, weight_decay=1e-5)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.net(x)
        loss = self.loss(logits.float(), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return float(loss.item())


def time_steps(
    configs: list[tuple[str, str]],
    size: int,
    batch: int,
    device: torch.device,
    amp: bool,
    warmup: int,
    steps: int,
) -> list[dict[str, Any]]:
    """Median seconds per step (and peak GPU memory) of several (network, loss) pairs on one input.

    The pairs run round-robin (one step of each, ``steps`` times, after ``warmup`` rounds), so that
    load from other processes on a shared machine slows all of them alike and the ratios hold.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 2, size, size, size, generator=gen).to(device)
    y = (torch.rand(batch, 1, size, size, size, generator=gen) > 0.99).float().to(device)
    rows: list[dict[str, Any]] = []
    steppers: list[Stepper | None] = []
    for name, loss_name in configs:
        rows.append(
            {
                "network": name,
                "loss": loss_name,
                "size": size,
                "batch": batch,
                "amp": amp,
                "times": [],
                "peak_gib": 0.0,
            }
        )
        torch.manual_seed(0)
        steppers.append(Stepper(build_model(name), build_loss(loss_name), device, amp))
    for i in range(warmup + steps):
        for row, step in zip(rows, steppers, strict=True):
            if step is None:
                continue
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                t0 = time.perf_counter()
                step(x, y)
                _sync(device)
                dt = time.perf_counter() - t0
            except torch.OutOfMemoryError:
                row["note"] = "out of memory"
                steppers[steppers.index(step)] = None
                del step
                torch.cuda.empty_cache()
                continue
            if i >= warmup:
                row["times"].append(dt)
            if device.type == "cuda":
                row["peak_gib"] = max(row["peak_gib"], torch.cuda.max_memory_allocated(device) / 2**30)
    for row in rows:
        times = row.pop("times")
        row["s_per_step"] = statistics.median(times) if times and "note" not in row else float("nan")
        row["steps_per_s"] = 1.0 / row["s_per_step"]
        if device.type != "cuda":
            row.pop("peak_gib")
    del x, y, steppers
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def _synthetic_cases(root: Path, n: int, shape: tuple[int, int, int], seed: int = 0) -> list[dict[str, str]]:
    """``n`` cases at 2 mm: a body cylinder (CT 40 HU, SUV 1) in air, two bright spheres as lesions."""
    from pcatools.data.case import Case, write_case

    rng = np.random.default_rng(seed)
    xx, yy, zz = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    body = ((xx - shape[0] / 2) ** 2 + (yy - shape[1] / 2) ** 2) < (0.4 * min(shape[:2])) ** 2
    files = []
    for i in range(n):
        ct = np.full(shape, -1000.0, dtype=np.float32)
        ct[body] = 40.0
        pet = body.astype(np.float32)
        label = np.zeros(shape, np.uint8)
        for _ in range(2):
            c = rng.uniform(0.3, 0.7, 3) * np.asarray(shape)
            sphere = ((xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2) < 5.0**2
            label[sphere] = 1
            pet[sphere] = 12.0
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        paths = write_case(Case(f"b{i:03d}", pet, ct, label, affine), root)
        files.append({k: str(v) for k, v in paths.items()})
    return files


def _loop_loader(
    files: list[dict[str, str]], size: int, batch: int, workers: int, pin: bool
) -> tuple[Any, Any]:
    """The training loop's data path: its cache settings and :func:`pcatools.training.train_loader`."""
    from monai.data import CacheDataset

    from pcatools.data.transforms import train_transforms
    from pcatools.training import train_loader

    ds = CacheDataset(
        files,
        train_transforms(spacing=(2.0, 2.0, 2.0), patch_size=(size,) * 3),
        cache_rate=1.0,
        num_workers=max(1, workers),
        progress=False,
        copy_cache=False,
    )
    return train_loader(ds, 0, batch, workers, pin_memory=pin)


def _monai_default_transforms(size: int) -> Any:
    """The peer: the same preprocessing and augmentation written as MONAI's examples do -- the crop
    finds its centre candidates at every draw (``image_key`` / ``image_threshold``), each key is
    resampled on its own, and ``CacheDataset`` deep-copies the cached case before each draw."""
    from monai.transforms import Compose, RandAffined, RandCropByPosNegLabeld, SpatialPadd

    from pcatools.data.transforms import KEYS, PAPER_CT_RANGE, _concat, _preprocess

    keys = list(KEYS)
    return Compose(
        [
            *_preprocess((2.0, 2.0, 2.0), PAPER_CT_RANGE, "paper", False, allow_missing_label=False),
            SpatialPadd(keys, spatial_size=(size,) * 3, mode="constant"),
            RandCropByPosNegLabeld(
                keys,
                label_key="label",
                spatial_size=(size,) * 3,
                pos=0.8,
                neg=0.2,
                image_key="pet",
                image_threshold=0.0,
            ),
            RandAffined(
                keys,
                prob=1.0,
                translate_range=(10.0,) * 3,
                rotate_range=(math.pi / 15,) * 3,
                scale_range=(0.1,) * 3,
                mode=("bilinear", "bilinear", "nearest"),
                padding_mode="zeros",
            ),
            *_concat(),
        ]
    )


def time_sampling(files: list[dict[str, str]], size: int, draws: int) -> list[dict[str, Any]]:
    """Milliseconds per training sample drawn in this process with one thread: pcatools' pipeline
    against MONAI's default usage (the CPU cost a DataLoader worker pays per sample)."""
    from monai.data import CacheDataset

    from pcatools.data.transforms import train_transforms

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        variants = {
            "pcatools": (train_transforms(spacing=(2.0, 2.0, 2.0), patch_size=(size,) * 3), False),
            "monai-default": (_monai_default_transforms(size), True),
        }
        for name, (transform, copy) in variants.items():
            ds = CacheDataset(files[:2], transform, cache_rate=1.0, progress=False, copy_cache=copy)
            ds[0]  # warm-up
            times = []
            for i in range(draws):
                t0 = time.perf_counter()
                ds[i % len(ds)]
                times.append(time.perf_counter() - t0)
            rows.append({"pipeline": name, "size": size, "ms_per_sample": 1000 * statistics.median(times)})
            del ds
    finally:
        torch.set_num_threads(threads)
    for r in rows:
        r["x_pcatools"] = r["ms_per_sample"] / rows[0]["ms_per_sample"]
    return rows


def time_pipeline(
    name: str,
    size: int,
    batch: int,
    device: torch.device,
    amp: bool,
    workers: int,
    files: list[dict[str, str]],
    steps: int,
) -> dict[str, Any]:
    """Data wait vs compute with the training loop's own data path (see :func:`_loop_loader`)."""
    t0 = time.perf_counter()
    loader, sampler = _loop_loader(files, size, batch, workers, device.type == "cuda")
    cache_s = time.perf_counter() - t0
    step = Stepper(build_model(name), build_loss("l1dfl"), device, amp)
    start_waits: list[float] = []  # first batch of each epoch (epoch 1: the workers start)
    waits: list[float] = []
    computes: list[float] = []
    epoch = 0
    while len(computes) < steps:
        epoch += 1
        sampler.set_epoch(epoch)
        it = iter(loader)
        first = True
        while len(computes) < steps:
            t0 = time.perf_counter()
            try:
                batch_data = next(it)
            except StopIteration:
                break
            x = batch_data["image"].as_tensor().to(device, non_blocking=True)
            y = batch_data["label"].as_tensor().to(device, non_blocking=True)
            t1 = time.perf_counter()
            step(x, y)
            _sync(device)
            t2 = time.perf_counter()
            (start_waits if first else waits).append(t1 - t0)
            first = False
            computes.append(t2 - t1)
    del it, loader
    # the first compute includes warm-up (cuDNN autotuning, allocator): report the later ones
    compute = statistics.mean(computes[1:]) if len(computes) > 1 else computes[0]
    wait = statistics.mean(waits + start_waits[1:]) if (waits or start_waits[1:]) else float("nan")
    return {
        "network": name,
        "size": size,
        "batch": batch,
        "workers": workers,
        "cases": len(files),
        "cache_s": cache_s,
        "epochs": epoch,
        "worker_start_s": start_waits[0],
        "epoch_start_wait_s": statistics.mean(start_waits[1:]) if len(start_waits) > 1 else float("nan"),
        "wait_s_per_step": wait,
        "compute_s_per_step": compute,
        "wait_fraction": wait / (wait + compute) if wait == wait else float("nan"),
    }


def time_inference(
    name: str,
    shape: tuple[int, int, int],
    roi: int,
    sw_batch: int,
    device: torch.device,
    amp: bool,
    repeats: int,
) -> dict[str, Any]:
    """Seconds for one whole-body sliding-window prediction (median of ``repeats`` after one warm-up)."""
    from pcatools.inference import sliding_window_logits
    from pcatools.training import SlidingWindow

    window = SlidingWindow((roi,) * 3, overlap=0.25, mode="gaussian", sw_batch_size=sw_batch)
    torch.manual_seed(0)
    net = build_model(name).eval()
    image = torch.rand(1, 2, *shape)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        out = sliding_window_logits(net, image, window, device, amp)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
        del out
    return {
        "network": name,
        "shape": "x".join(map(str, shape)),
        "roi": roi,
        "sw_batch": sw_batch,
        "amp": amp,
        "seconds": statistics.median(times),
    }


def _print_table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--networks", nargs="+", default=list(NETWORKS))
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 96, 128])
    p.add_argument("--batch", nargs="+", type=int, default=None, help="default 1 on CPU, 2 on CUDA")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="default: on with CUDA")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 3 on CPU, 10 on CUDA)")
    p.add_argument(
        "--peer-sizes",
        nargs="*",
        type=int,
        default=None,
        help="sizes of the DFL comparison (default: smallest)",
    )
    p.add_argument("--steps-bench", action=argparse.BooleanOptionalAction, default=True, help="steps/s table")
    p.add_argument(
        "--pipeline", action=argparse.BooleanOptionalAction, default=True, help="data wait vs compute"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--sample-draws",
        type=int,
        default=6,
        help="samples timed per pipeline in the per-sample table (0: off)",
    )
    p.add_argument("--pipeline-cases", type=int, default=None, help="default 4 on CPU, 8 on CUDA")
    p.add_argument("--pipeline-steps", type=int, default=None, help="default 4 on CPU, 24 on CUDA")
    p.add_argument(
        "--pipeline-size",
        type=int,
        default=None,
        help="patch size (default: the largest of --sizes on CUDA, 64 on CPU)",
    )
    p.add_argument(
        "--case-shape", nargs=3, type=int, default=None, help="default 96 96 128 on CPU, 256 256 400 on CUDA"
    )
    p.add_argument(
        "--inference", action=argparse.BooleanOptionalAction, default=True, help="whole-body sliding window"
    )
    p.add_argument(
        "--wb-shape", nargs=3, type=int, default=None, help="default 96 96 160 on CPU, 352 352 480 on CUDA"
    )
    p.add_argument("--roi", type=int, default=None, help="window (default 64 on CPU, 128 on CUDA)")
    p.add_argument("--sw-batch", type=int, default=4)
    p.add_argument("--json", type=Path, default=None, help="also write all rows as JSON")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    amp = cuda if args.amp is None else args.amp
    if amp and not cuda:
        p.error("--amp needs CUDA")
    if cuda:
        torch.backends.cudnn.benchmark = True
    batches = args.batch or ([2] if cuda else [1])
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    steps = args.steps if args.steps is not None else (10 if cuda else 3)
    peer_sizes = args.peer_sizes if args.peer_sizes is not None else [min(args.sizes)]
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"# device: {name}; torch {torch.__version__}; AMP {'on' if amp else 'off'}")
    print("# parameters: " + ", ".join(f"{n} {count_parameters(build_model(n)):,}" for n in args.networks))
    out: dict[str, list[dict[str, Any]]] = {"steps": [], "pipeline": [], "inference": []}

    if args.steps_bench:
        print(
            f"\n## training steps ({warmup} warm-up + median of {steps} timed steps each, round-robin; random inputs)"
        )
        rows = out["steps"]
        for size in args.sizes:
            for batch in batches:
                configs = [(net, "l1dfl") for net in args.networks]
                if size in peer_sizes and batch == batches[0]:
                    configs += [(net, "dice_focal") for net in args.networks]
                rows.extend(time_steps(configs, size, batch, device, amp, warmup, steps))
                print(f"  done {size}^3 batch {batch}", file=sys.stderr, flush=True)
        by = {(r["network"], r["loss"], r["size"], r["batch"]): r for r in rows}
        for r in rows:
            seg = by.get(("segresnet", r["loss"], r["size"], r["batch"]))
            if seg is not None:
                r["vs_segresnet"] = r["s_per_step"] / seg["s_per_step"]
            if r["loss"] == "l1dfl":
                dfl = by.get((r["network"], "dice_focal", r["size"], r["batch"]))
                if dfl is not None:
                    r["l1dfl_vs_dfl"] = r["s_per_step"] / dfl["s_per_step"]
        cols = [
            "network",
            "loss",
            "size",
            "batch",
            "amp",
            "s_per_step",
            "steps_per_s",
            "vs_segresnet",
            "l1dfl_vs_dfl",
        ]
        _print_table(
            rows, cols + (["peak_gib"] if cuda else []) + (["note"] if any("note" in r for r in rows) else [])
        )

    if args.pipeline:
        size = args.pipeline_size or (max(args.sizes) if cuda else 64)
        shape = tuple(args.case_shape or ((256, 256, 400) if cuda else (96, 96, 128)))
        n_cases = args.pipeline_cases or (8 if cuda else 4)
        n_steps = args.pipeline_steps or (24 if cuda else 4)
        print(
            f"\n## data pipeline vs compute ({n_cases} cases of {shape} at 2 mm, {size}^3 patches, "
            f"batch {batches[0]}, {args.workers} workers, {n_steps} steps)"
        )
        with tempfile.TemporaryDirectory(prefix="pcatools-bench-") as tmp:
            t0 = time.perf_counter()
            files = _synthetic_cases(Path(tmp), n_cases, shape)  # type: ignore[arg-type]
            print(f"# wrote {n_cases} cases in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            if args.sample_draws:
                print(
                    f"\n## CPU cost of one training sample, one thread ({size}^3 from {shape}; median of {args.sample_draws})"
                )
                out["sampling"] = time_sampling(files, size, args.sample_draws)
                _print_table(out["sampling"], ["pipeline", "size", "ms_per_sample", "x_pcatools"])
                ms = out["sampling"][0]["ms_per_sample"]
                print(
                    f"# a worker makes {1000 / ms:.1f} samples/s: {args.workers} workers feed up to "
                    f"{args.workers * 1000 / ms / batches[0]:.1f} steps/s of batch {batches[0]}"
                )
            for net in args.networks:
                row = time_pipeline(net, size, batches[0], device, amp, args.workers, files, n_steps)
                out["pipeline"].append(row)
        _print_table(
            out["pipeline"],
            [
                "network",
                "size",
                "batch",
                "workers",
                "cache_s",
                "worker_start_s",
                "epoch_start_wait_s",
                "wait_s_per_step",
                "compute_s_per_step",
                "wait_fraction",
            ],
        )

    if args.inference:
        shape = tuple(args.wb_shape or ((352, 352, 480) if cuda else (96, 96, 160)))
        roi = args.roi or (128 if cuda else 64)
        print(
            f"\n## whole-body sliding-window inference ({shape} voxels, {roi}^3 windows, overlap 0.25, gaussian)"
        )
        repeats = 3 if cuda else 1
        for net in args.networks:
            out["inference"].append(time_inference(net, shape, roi, args.sw_batch, device, amp, repeats))  # type: ignore[arg-type]
        seg = next((r for r in out["inference"] if r["network"] == "segresnet"), None)
        for r in out["inference"]:
            if seg is not None:
                r["vs_segresnet"] = r["seconds"] / seg["seconds"]
        _print_table(
            out["inference"], ["network", "shape", "roi", "sw_batch", "amp", "seconds", "vs_segresnet"]
        )

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, **out}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
