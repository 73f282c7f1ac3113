"""Processes started by ``torchrun``: who am I, which device is mine, and the few collectives we need.

Under ``torchrun --nproc_per_node K`` every process runs the same command with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment. :meth:`DistContext.from_env` reads them, :meth:`DistContext.join` joins the
process group (NCCL for CUDA devices, each rank on ``cuda:LOCAL_RANK``; gloo on CPU). Without ``torchrun`` the
context is a single process and every method is a no-op. Used by inference (windows shared between ranks,
``app.reconstruct.pipeline``) and training (DistributedDataParallel, ``vggt_t_mv.train``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    joined_here: bool = False  # this context initialised the process group (and so destroys it)

    @classmethod
    def from_env(cls) -> DistContext:
        """The process layout ``torchrun`` put in the environment (a single process without it)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def device_name(self, requested: str) -> str:
        """This rank's device: ``auto`` (under torchrun) and ``cuda`` mean ``cuda:LOCAL_RANK`` when CUDA exists;
        anything else is returned as given (a single process keeps ``auto`` for the caller to resolve)."""
        wants_cuda = requested == "cuda" or (requested == "auto" and self.enabled)
        if wants_cuda and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def join(self, device: torch.device | str) -> None:
        """Join the process group for work on ``device``: NCCL for CUDA, gloo otherwise."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is not None:  # plain "cuda": the current device (torch < 2.13
            torch.cuda.set_device(device)  # refuses set_device without an index)
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.joined_here = True

    def shutdown(self) -> None:
        if self.joined_here and dist.is_initialized():
            dist.destroy_process_group()
            self.joined_here = False

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
