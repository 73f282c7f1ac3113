"""Camera head: iterative refinement of a 9-number pose encoding per frame from its camera token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_t_mv.config import PoseActivation
from vggt_t_mv.layers.block import Block, Mlp


def _activate(x: Tensor, activation: PoseActivation) -> Tensor:
    if activation == "linear":
        return x
    if activation == "relu":
        return F.relu(x)
    if activation == "exp":
        return x.exp()
    raise ValueError(f"unknown pose activation {activation!r}")


def activate_pose(raw: Tensor, trans_act: PoseActivation, quat_act: PoseActivation, fl_act: PoseActivation) -> Tensor:
    """Activate a raw ``absT_quaR_FoV`` encoding ``[..., 9]``: translation, quaternion (xyzw), FoV (h, w)."""
    translation, quaternion, fov = raw[..., :3], raw[..., 3:7], raw[..., 7:]
    parts = [_activate(translation, trans_act), _activate(quaternion, quat_act), _activate(fov, fl_act)]
    return torch.cat(parts, dim=-1)


class CameraHead(nn.Module):
    """VGGT's camera head (state-dict layout of upstream ``CameraHead``).

    The normalised camera token of every frame is modulated (adaLN) by an embedding of the current
    pose estimate, passed through a trunk of blocks that attend across frames, and mapped to a
    delta that is added to the raw estimate. Each iteration emits the activated encoding.
    """

    target_dim = 9

    def __init__(
        self,
        *,
        dim_in: int,
        trunk_depth: int,
        num_heads: int,
        mlp_ratio: float,
        init_values: float,
        trans_act: PoseActivation = "linear",
        quat_act: PoseActivation = "linear",
        fl_act: PoseActivation = "relu",
    ) -> None:
        super().__init__()
        self.acts = (trans_act, quat_act, fl_act)
        self.trunk = nn.Sequential(
            *(Block(dim_in, num_heads, mlp_ratio, init_values=init_values) for _ in range(trunk_depth))
        )
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, self.target_dim))
        self.embed_pose = nn.Linear(self.target_dim, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, dim_in // 2, self.target_dim)

    def forward(self, camera_tokens: Tensor, num_iterations: int = 4) -> list[Tensor]:
        """
        Args:
            camera_tokens: the last aggregator layer's camera token per frame, ``[B, S, dim_in]``.
            num_iterations: refinement iterations.
        Returns:
            ``num_iterations`` activated pose encodings, each ``[B, S, 9]``.
        """
        tokens = self.token_norm(camera_tokens)
        batch, frames, _ = tokens.shape
        raw: Tensor | None = None
        encodings = []
        for _ in range(num_iterations):
            if raw is None:
                pose_input = self.empty_pose_tokens.expand(batch, frames, -1)
            else:
                pose_input = raw.detach()
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(pose_input)).chunk(3, dim=-1)
            x = gate * (self.adaln_norm(tokens) * (1 + scale) + shift) + tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(x)))
            raw = delta if raw is None else raw + delta
            encodings.append(activate_pose(raw, *self.acts))
        return encodings
