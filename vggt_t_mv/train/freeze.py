"""Freeze policies: which parameters a run trains.

* ``new``: only the parameters with no pretrained source (``LoadReport.new``: lambda_pose / lambda_geo, the
  SpatialMaskHead, the fusion gate, and stream copies no source filled; PAGE-4D's mask head only when the
  checkpoint had none: the one in ``checkpoint_150.pt`` is trained and stays frozen under ``new``/``streams``);
* ``streams``: ``new`` plus everything from layer pair ``L_mid`` (``cfg.stream_split``) on: both streams' blocks
  (``aggregator.{pose,geo}_{time,view}_blocks.*``, or the trunk's own blocks at those layers in ``shared`` mode)
  and the heads that read them (camera, depth, point);
* ``all``: every parameter;
* ``auto`` (the default): ``new`` when the weights left parameters without a source (train those first), else
  ``streams`` for a two-stream model (its own trained weights: fine-tune the layers from ``L_mid`` on and the
  heads), else ``all``. :func:`resolve_policy` decides; :meth:`FreezeSummary.line` says what is trained in one line.

The track head is always frozen: no loss trains it here. A printed summary counts trainable parameters per module.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from vggt_t_mv.weights import module_group

FreezePolicy = Literal["auto", "new", "streams", "all"]
POLICIES: tuple[FreezePolicy, ...] = ("auto", "new", "streams", "all")
_BLOCK = re.compile(r"^aggregator\.(?:pose_|geo_)?(?:time|view)_blocks\.(\d+)\.")
_STREAM_HEADS = ("camera_head.", "depth_head.", "point_head.")
ALWAYS_FROZEN = ("track_head.",)


@dataclass
class FreezeSummary:
    """What :func:`apply_freeze_policy` left trainable."""

    policy: FreezePolicy
    reason: str = ""  # why ``auto`` chose ``policy``
    trainable: list[str] = field(default_factory=list, repr=False)  # parameter names
    frozen: list[str] = field(default_factory=list, repr=False)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # module -> (trainable numel, total numel)

    @property
    def num_trainable(self) -> int:
        return sum(t for t, _ in self.counts.values())

    @property
    def num_total(self) -> int:
        return sum(n for _, n in self.counts.values())

    def line(self) -> str:
        """What is trained, in one line: the policy (and why), the trained modules, the parameter share."""
        modules = sorted(m for m, (trained, _) in self.counts.items() if trained)
        shown = ", ".join(modules[:6]) + (f" and {len(modules) - 6} more" if len(modules) > 6 else "")
        share = 100 * self.num_trainable / max(self.num_total, 1)
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"training {self.num_trainable:,} of {self.num_total:,} parameters ({share:.1f} %), freeze "
            f"{self.policy!r}{why}: {shown or 'nothing'}"
        )

    def table(self) -> str:
        """Per module: trainable / total parameters; then the totals."""
        lines = [f"freeze policy {self.policy!r}", f"{'module':<42} {'trainable':>12} {'total':>12}"]
        for module in sorted(self.counts):
            trainable, total = self.counts[module]
            lines.append(f"{module:<42} {trainable:>12,} {total:>12,}")
        share = 100 * self.num_trainable / max(self.num_total, 1)
        lines.append(f"{'total':<42} {self.num_trainable:>12,} {self.num_total:>12,}  ({share:.1f} % trainable)")
        return "\n".join(lines)


def resolve_policy(
    model: nn.Module, policy: FreezePolicy, new: set[str] | list[str] | None
) -> tuple[FreezePolicy, str]:
    """The concrete policy for ``policy`` (``auto`` decided as the module docstring says) and why, in words."""
    if policy not in POLICIES:
        raise ValueError(f"freeze policy (model.freeze) must be one of {', '.join(POLICIES)}, got {policy!r}")
    if policy != "auto":
        return policy, ""
    if new is None:
        return "all", "auto: nothing was loaded, every parameter is new"
    trainable_new = [n for n in new if not n.startswith(ALWAYS_FROZEN)]
    if trainable_new:
        return "new", f"auto: {len(trainable_new)} tensors have no pretrained source"
    if getattr(model.cfg, "stream_split", None) is not None:
        return "streams", "auto: the weights fill every tensor, so the two streams and the heads are fine-tuned"
    return "all", "auto: the weights fill every tensor of a single-stream model"


def trainable_names(model: nn.Module, policy: FreezePolicy, new: set[str] | list[str] | None = None) -> set[str]:
    """Parameter names ``policy`` trains. ``new``: the names with no pretrained source (``LoadReport.new``);
    None means nothing was loaded, so every parameter is new."""
    policy, _ = resolve_policy(model, policy, new)
    names = [name for name, _ in model.named_parameters()]
    new_set = set(names) if new is None else set(new)
    if policy == "all":
        chosen = set(names)
    elif policy == "new":
        chosen = {n for n in names if n in new_set}
    else:
        cfg: Any = model.cfg  # a VGGTTMV's ModelConfig
        split = getattr(cfg, "stream_split", None)
        first = split if split is not None else cfg.depth
        chosen = set()
        for name in names:
            match = _BLOCK.match(name)
            late_block = match is not None and int(match.group(1)) >= first
            if name in new_set or late_block or name.startswith(_STREAM_HEADS):
                chosen.add(name)
    return {n for n in chosen if not n.startswith(ALWAYS_FROZEN)}


def apply_freeze_policy(
    model: nn.Module, policy: FreezePolicy, new: set[str] | list[str] | None = None
) -> FreezeSummary:
    """Set ``requires_grad`` of every parameter of ``model`` as ``policy`` says; returns the summary."""
    policy, reason = resolve_policy(model, policy, new)
    chosen = trainable_names(model, policy, new)
    summary = FreezeSummary(policy, reason)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, parameter in model.named_parameters():
        train = name in chosen
        parameter.requires_grad_(train)
        (summary.trainable if train else summary.frozen).append(name)
        counts[module_group(name)][1] += parameter.numel()
        if train:
            counts[module_group(name)][0] += parameter.numel()
    summary.counts = {k: (v[0], v[1]) for k, v in counts.items()}
    return summary
