"""Multi-process inference on PyTorch's own distributed engine (``torchrun``).

Under ``torchrun --nproc_per_node K`` every process runs the same command; :func:`init_from_env` joins
them into one process group (NCCL on GPUs, each rank on ``cuda:LOCAL_RANK``; gloo on CPU). The pipeline
then gives window ``w`` to rank ``w % K`` and gathers each round of K windows on rank 0, which aligns
and writes them in window order, exactly as a single process does. Without ``torchrun`` nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def device_name(self, requested: str) -> str:
        """The device of this rank: ``cuda:LOCAL_RANK`` when CUDA is asked for (or auto and present)."""
        if self.enabled and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def gather(self, payload: Any) -> list[Any] | None:
        """Every rank's ``payload`` in rank order on rank 0 (None elsewhere)."""
        if not self.enabled:
            return [payload]
        received = [None] * self.world_size if self.is_main else None
        dist.gather_object(payload, received, dst=0)
        return received

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_from_env() -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (a no-op without it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and dist.is_nccl_available()
        if use_nccl:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return DistContext(rank, world_size, local_rank)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
