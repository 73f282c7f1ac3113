"""TorchFunctionMode checks the model tests share: what a forward pass must never allocate."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves


class NoSequenceSquares(TorchFunctionMode):
    """Fails on any tensor whose two trailing dims both equal one of ``lengths`` (an L x L attention matrix)."""

    def __init__(self, lengths: set[int]) -> None:
        super().__init__()
        self.lengths = lengths
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls += 1
        for value in tree_leaves(out):
            if isinstance(value, torch.Tensor) and value.dim() >= 2:
                if value.shape[-1] == value.shape[-2] and value.shape[-1] in self.lengths:
                    raise AssertionError(f"{func} allocated a {tuple(value.shape)} tensor")
        return out
