"""DPT head: dense per-pixel predictions (depth, world points) or features from aggregator layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_t_mv.config import ConfActivation, ValueActivation


def activate_values(x: Tensor, activation: ValueActivation) -> Tensor:
    """Activation of a dense head's value channels (channels last)."""
    if activation == "exp":
        return torch.exp(x)
    if activation == "inv_log":
        return torch.sign(x) * torch.expm1(torch.abs(x))
    if activation == "norm_exp":
        norm = x.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        return x / norm * torch.expm1(norm)
    if activation == "relu":
        return F.relu(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "linear":
        return x
    raise ValueError(f"unknown activation {activation!r}")


def activate_confidence(x: Tensor, activation: ConfActivation) -> Tensor:
    """Activation of a dense head's confidence channel."""
    if activation == "expp1":
        return 1 + torch.exp(x)
    if activation == "expp0":
        return torch.exp(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    raise ValueError(f"unknown confidence activation {activation!r}")


def uv_grid(width: int, height: int, aspect_ratio: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Centred uv coordinates of a ``height x width`` map, normalised by the image diagonal: ``[H, W, 2]``."""
    diagonal = (aspect_ratio**2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diagonal, 1.0 / diagonal
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    ys = torch.linspace(
        -span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype, device=device
    )
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def _sincos(positions: Tensor, dim: int, omega_0: float) -> Tensor:
    # float64 keeps large angles exact; MPS has no float64.
    wide = torch.float32 if positions.device.type == "mps" else torch.float64
    omega = 1.0 / omega_0 ** (torch.arange(dim // 2, dtype=wide, device=positions.device) / (dim / 2.0))
    angles = positions.reshape(-1).to(wide)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(positions.dtype)


def grid_position_embedding(grid: Tensor, dim: int, omega_0: float = 100.0) -> Tensor:
    """Sin/cos embedding of a uv grid ``[H, W, 2]`` -> ``[H, W, dim]`` (u half then v half)."""
    height, width, _ = grid.shape
    flat = grid.reshape(-1, 2)
    embedding = torch.cat([_sincos(flat[:, 0], dim // 2, omega_0), _sincos(flat[:, 1], dim // 2, omega_0)], -1)
    return embedding.view(height, width, dim)


class ResidualConvUnit(nn.Module):
    """ReLU -> 3x3 conv -> ReLU -> 3x3 conv, plus skip.

    Upstream applies an in-place ReLU to the input first, so the skip that is added is ReLU(x).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """RefineNet fusion: (+ residual unit on the skip) -> residual unit -> bilinear resize -> 1x1 conv."""

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTScratch(nn.Module):
    """The DPT head's fusion stage (upstream's ``scratch``, same state-dict names): a 3x3 conv per read layer to
    ``features`` channels, four RefineNet fusion blocks, and the output convolutions (``output_conv2``, which
    predicts the values and the confidence, only when the head is not ``feature_only``)."""

    def __init__(self, out_channels: Sequence[int], features: int, output_dim: int, feature_only: bool) -> None:
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"the DPT head reads four layers; got out_channels={tuple(out_channels)}")
        convs = [nn.Conv2d(channels, features, 3, padding=1, bias=False) for channels in out_channels]
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = convs
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features, has_residual=False)
        self.output_conv1 = nn.Conv2d(features, features if feature_only else features // 2, 3, padding=1)
        self.output_conv2: nn.Sequential | None = None
        if not feature_only:
            self.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, output_dim, 1)
            )

    def fuse(self, maps: Sequence[Tensor]) -> Tensor:
        """Four resized layer maps ``[B*F, C_i, h_i, w_i]`` (finest first) -> fused features ``[B*F, C, h_1, w_1]``
        after ``output_conv1``."""
        rn1, rn2, rn3, rn4 = (
            self.layer1_rn(maps[0]),
            self.layer2_rn(maps[1]),
            self.layer3_rn(maps[2]),
            self.layer4_rn(maps[3]),
        )
        x = self.refinenet4(rn4, size=rn3.shape[2:])
        x = self.refinenet3(x, rn3, size=rn2.shape[2:])
        x = self.refinenet2(x, rn2, size=rn1.shape[2:])
        x = self.refinenet1(x, rn1)
        return self.output_conv1(x)


class DPTHead(nn.Module):
    """Dense Prediction Transformer head over four aggregator layers (VGGT's state-dict layout).

    With ``feature_only`` it returns a feature map; otherwise values and a confidence per pixel.
    """

    def __init__(
        self,
        *,
        dim_in: int,
        patch_size: int,
        features: int,
        out_channels: Sequence[int],
        intermediate_layers: Sequence[int],
        output_dim: int = 4,
        activation: ValueActivation = "inv_log",
        conf_activation: ConfActivation = "expp1",
        pos_embed: bool = True,
        feature_only: bool = False,
        down_ratio: int = 1,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.intermediate_layers = tuple(intermediate_layers)
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, channels, 1) for channels in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = DPTScratch(out_channels, features, output_dim, feature_only)

    def forward(
        self,
        layers: Sequence[Tensor | None],
        image_hw: tuple[int, int],
        patch_start_idx: int,
        frames_chunk_size: int | None = 8,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """
        Args:
            layers: aggregator outputs indexed by layer number, each ``[B, S, P, dim_in]`` (entries the
                head does not read may be None).
            image_hw: input image size (H, W), multiples of the patch size.
            patch_start_idx: index of the first patch token in P.
            frames_chunk_size: frames per chunk (bounds memory); None = all at once.
        Returns:
            ``feature_only``: features ``[B, S, features, H/down, W/down]``; otherwise values
            ``[B, S, H, W, output_dim-1]`` and confidence ``[B, S, H, W]``.
        """
        first = layers[self.intermediate_layers[0]]
        if first is None:
            raise ValueError(f"aggregator layer {self.intermediate_layers[0]} was not kept but the DPT head reads it")
        num_frames = first.shape[1]
        step = frames_chunk_size if frames_chunk_size and frames_chunk_size < num_frames else num_frames
        spans = [(start, min(start + step, num_frames)) for start in range(0, num_frames, step)]
        if self.feature_only:
            features = [self._features(layers, image_hw, patch_start_idx, start, end) for start, end in spans]
            return features[0] if len(features) == 1 else torch.cat(features, dim=1)
        predicted = [
            self._predict(self._features(layers, image_hw, patch_start_idx, start, end)) for start, end in spans
        ]
        if len(predicted) == 1:
            return predicted[0]
        return torch.cat([values for values, _ in predicted], dim=1), torch.cat([c for _, c in predicted], dim=1)

    def _features(
        self, layers: Sequence[Tensor | None], image_hw: tuple[int, int], patch_start_idx: int, start: int, end: int
    ) -> Tensor:
        """Fused features ``[B, end-start, C, H/down, W/down]`` of frames ``start:end``."""
        height, width = image_hw
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        maps = []
        for slot, layer_index in enumerate(self.intermediate_layers):
            tokens = layers[layer_index]
            if tokens is None:
                raise ValueError(f"aggregator layer {layer_index} was not kept but the DPT head reads it")
            tokens = tokens[:, start:end, patch_start_idx:]
            batch, frames = tokens.shape[:2]
            x = self.norm(tokens.reshape(batch * frames, -1, tokens.shape[-1]))
            x = x.permute(0, 2, 1).reshape(batch * frames, -1, grid_h, grid_w)
            x = self.projects[slot](x)
            if self.pos_embed:
                x = self._add_pos_embed(x, width / height)
            maps.append(self.resize_layers[slot](x))
        x = self.scratch.fuse(maps)
        out_hw = (int(grid_h * self.patch_size / self.down_ratio), int(grid_w * self.patch_size / self.down_ratio))
        x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=True)
        if self.pos_embed:
            x = self._add_pos_embed(x, width / height)
        return x.view(batch, frames, *x.shape[1:])

    def _predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``[B, F, C, H, W]`` -> activated values ``[B, F, H, W, output_dim-1]`` and confidence
        ``[B, F, H, W]``."""
        if self.scratch.output_conv2 is None:
            raise ValueError("a feature_only DPT head predicts no values")
        batch, frames = features.shape[:2]
        x = self.scratch.output_conv2(features.flatten(0, 1)).permute(0, 2, 3, 1)
        values = activate_values(x[..., :-1], self.activation)
        conf = activate_confidence(x[..., -1], self.conf_activation)
        return values.view(batch, frames, *values.shape[1:]), conf.view(batch, frames, *conf.shape[1:])

    @staticmethod
    def _add_pos_embed(x: Tensor, aspect_ratio: float, scale: float = 0.1) -> Tensor:
        grid = uv_grid(x.shape[-1], x.shape[-2], aspect_ratio, x.dtype, x.device)
        embedding = grid_position_embedding(grid, x.shape[1]).permute(2, 0, 1)
        return x + scale * embedding[None]
