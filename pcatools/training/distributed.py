"""Multi-process training helpers for ``torchrun --nproc_per_node=N`` (DDP).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and ``MASTER_ADDR`` /
``MASTER_PORT``) in each process. :func:`setup_distributed` reads them, initialises the default
process group (``nccl`` on CUDA, ``gloo`` on CPU) and returns a :class:`DistContext`; without
those variables (or with ``WORLD_SIZE=1``) it returns a single-process context and touches
nothing. Only rank 0 writes files; metrics are summed over ranks with :func:`all_reduce_sum`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "all_reduce_sum", "barrier", "cleanup_distributed", "dist_env", "setup_distributed"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def dist_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from torchrun's variables, or None outside torchrun.

    Examples
    --------
    >>> import os
    >>> dist_env() if "WORLD_SIZE" not in os.environ else None  # a plain ``python`` process

    """
    if "WORLD_SIZE" not in os.environ:
        return None
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        raw = os.environ.get(name, "0" if name == "LOCAL_RANK" else None)
        if raw is None:
            raise RuntimeError(
                f"WORLD_SIZE is set but {name} is not: start multi-process training with torchrun"
            )
        try:
            values[name] = int(raw)
        except ValueError as err:
            raise RuntimeError(f"environment variable {name} must be an integer, found {raw!r}") from err
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world:
        raise RuntimeError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def setup_distributed(device: str | torch.device | None = None) -> DistContext:
    """Detect torchrun, initialise the process group and pick this process's device.

    Parameters
    ----------
    device
        ``None``: CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU. ``"cpu"``
        forces CPU (and the ``gloo`` backend).
    """
    wanted = torch.device(device) if device is not None else None
    use_cuda = torch.cuda.is_available() if wanted is None else wanted.type == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    env = dist_env()
    if env is None or env[1] == 1:
        if not use_cuda:
            dev = torch.device("cpu")
        else:
            dev = wanted if wanted is not None and wanted.index is not None else torch.device("cuda", 0)
        return DistContext(device=dev)
    rank, world, local = env
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA devices are visible; "
                f"use --nproc_per_node <= {torch.cuda.device_count()}"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    here = False
    if not dist.is_initialized():
        if use_cuda:
            dist.init_process_group(backend=backend, init_method="env://", device_id=dev)
        else:
            dist.init_process_group(backend=backend, init_method="env://")
        here = True
    return DistContext(
        rank=rank, world_size=world, local_rank=local, device=dev, backend=backend, initialized_here=here
    )


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Sum ``values`` element-wise over all ranks (float64); identity in a single process."""
    if not ctx.distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu().tolist()]


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index or 0])
        else:
            dist.barrier()


def cleanup_distributed(ctx: DistContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
