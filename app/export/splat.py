"""Gaussian splats from point maps: one 3D Gaussian per pixel, and the 3DGS binary PLY that holds them.

This is a **per-pixel lift, not an optimised splat scene**: nothing is trained or fitted. Every kept pixel of a
point map already has a position, a colour, a confidence and a footprint (the size of a pixel at its depth); each
becomes one Gaussian in the parameterisation of the reference 3D Gaussian Splatting code (Kerbl et al. 2023),
which gsplat, nerfstudio's splatfacto, SuperSplat and viser read as well:

* **position** ``x y z``: the pixel's point, unchanged (world frame of the reconstruction, OpenCV axes).
* **colour** ``f_dc_0..2``: the degree-0 spherical-harmonics coefficient of the pixel's RGB ``c`` in ``[0, 1]``,
  ``f_dc = (c - 0.5) / SH_C0`` with ``SH_C0 = 0.28209479177387814`` (``1 / (2 sqrt(pi))``); a renderer gets
  ``c = 0.5 + SH_C0 * f_dc`` back. Higher bands (``f_rest_*``) are zero when written at all
  (:attr:`SplatOptions.sh_degree`).
* **scale** ``scale_0..2`` (natural logs of standard deviations, as 3DGS stores them) from the pixel footprint:
  a pixel at depth ``z`` along its camera's optical axis covers ``z / fx`` by ``z / fy`` of the plane parallel to
  the image, so ``sigma_x = sigma_pixels * z / fx`` and ``sigma_y = sigma_pixels * z / fy`` (times a
  ``density`` factor, see :func:`lift_pixels`); along the optical axis the Gaussian is flat,
  ``sigma_z = thickness * min(sigma_x, sigma_y)``. ``z`` is the point's depth in its own camera
  (``(R X + t)_z``); a point behind its camera (the point head can place outliers there) uses ``|z|`` so the
  file stays finite.
* **rotation** ``rot_0..3``: a unit quaternion ``w x y z`` (scalar first, as 3DGS stores it), the rotation
  world-from-Gaussian = world-from-camera ``R^T`` of the pixel's camera (OpenCV camera-from-world ``[R | t]``):
  the Gaussian's axes 0, 1, 2 are the camera's x (right), y (down) and z (optical axis), so the flat side faces
  the camera, exactly as the pixel's footprint does.
* **opacity** ``opacity``: a logit, ``log(a / (1 - a))``, of an opacity ``a`` taken from the stream's
  confidence (geo stream: ``world_points_conf``; pose stream: ``depth_conf``), by :data:`OpacityMode`:

  - ``"rank"`` (default): ``a = opacity_min + (opacity_max - opacity_min) * q`` where ``q`` in ``(0, 1)`` is the
    mid-rank of the pixel's confidence among the splats of its timestep (ties share a rank). It does not depend
    on how the model's confidences are calibrated (an untrained model's are all near 1); like the confidence
    percentile filter it is relative to the selection of one timestep.
  - ``"confidence"``: ``a = 1 - 1 / conf``, the sigmoid of the confidence head's raw output ``x`` for VGGT's
    ``expp1`` activation (``conf = 1 + exp(x)``), so a well-calibrated model decides; clamped like ``"rank"``.

  Either way ``a`` is clamped to ``[opacity_min, opacity_max]`` = ``[0.05, 0.99]`` by default, so every logit is
  finite (within ``+-4.6``).

PLY layout (:func:`splat_properties`), ``binary_little_endian 1.0``, one ``vertex`` element, every property
``float`` (float32), in the reference code's order: ``x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 [f_rest_0 ..
f_rest_{K-1}] opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3``. The normals ``nx ny nz`` are zero (the
reference writes them, unused, and some readers expect them). ``sh_degree = d`` adds ``K = 3 ((d + 1)^2 - 1)``
zero ``f_rest`` coefficients. The default ``d = 0`` (17 floats, 68 bytes per splat) is read by gsplat,
SuperSplat, splatfacto and the reference code run with ``--sh_degree 0``; ``d = 3`` (45 coefficients, 248 bytes
per splat) suits tools with a fixed degree-3 layout, like the reference code's default and its SIBR viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Literal, get_args

import numpy as np

from vggt_t_mv.npgeometry import matrix_to_quaternion_xyzw, quaternion_xyzw_to_matrix

SH_C0 = 0.28209479177387814  # degree-0 real spherical harmonic, 1 / (2 sqrt(pi))
OpacityMode = Literal["rank", "confidence"]
OPACITY_MODES: tuple[OpacityMode, ...] = get_args(OpacityMode)


@dataclass(frozen=True)
class SplatOptions:
    """How pixels become Gaussians (see the module docstring for the mapping).

    ``sigma_pixels``: standard deviation across the ray in pixel footprints (0.5: neighbouring splats meet at one
    sigma); ``thickness``: standard deviation along the optical axis as a fraction of the smaller one across;
    ``opacity``: the :data:`OpacityMode`; ``opacity_min`` / ``opacity_max``: the clamp of the opacity;
    ``sh_degree``: 0..3, how many (zero) higher spherical-harmonics bands the PLY carries.
    """

    sigma_pixels: float = 0.5
    thickness: float = 0.1
    opacity: OpacityMode = "rank"
    opacity_min: float = 0.05
    opacity_max: float = 0.99
    sh_degree: int = 0

    def __post_init__(self) -> None:
        if not self.sigma_pixels > 0:
            raise ValueError(f"sigma_pixels must be > 0, got {self.sigma_pixels}")
        if not 0 < self.thickness <= 1:
            raise ValueError(f"thickness must be in (0, 1], got {self.thickness}")
        if self.opacity not in OPACITY_MODES:
            raise ValueError(f"opacity must be one of {OPACITY_MODES}, got {self.opacity!r}")
        if not 0 < self.opacity_min <= self.opacity_max < 1:
            raise ValueError(f"need 0 < opacity_min <= opacity_max < 1, got {self.opacity_min} and {self.opacity_max}")
        if self.sh_degree not in (0, 1, 2, 3):
            raise ValueError(f"sh_degree must be 0, 1, 2 or 3, got {self.sh_degree}")


@dataclass
class Gaussians:
    """``M`` Gaussians in the stored 3DGS parameterisation, world frame of the reconstruction (OpenCV axes).

    ``means`` float32 ``[M, 3]``; ``f_dc`` float32 ``[M, 3]`` degree-0 SH colour; ``opacity`` float32 ``[M]``
    logit; ``log_scales`` float32 ``[M, 3]`` natural log of the standard deviations along the Gaussian's axes;
    ``quaternions`` float32 ``[M, 4]`` unit ``w x y z``, rotation world-from-Gaussian.
    """

    means: np.ndarray
    f_dc: np.ndarray
    opacity: np.ndarray
    log_scales: np.ndarray
    quaternions: np.ndarray

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @staticmethod
    def empty() -> Gaussians:
        """No Gaussian (every array with a leading dimension of 0)."""
        zeros = np.zeros((0, 3), np.float32)
        return Gaussians(zeros, zeros.copy(), np.zeros(0, np.float32), zeros.copy(), np.zeros((0, 4), np.float32))

    def subset(self, index: np.ndarray | slice) -> Gaussians:
        """The Gaussians at ``index`` (boolean mask, integer indices or a slice)."""
        return Gaussians(
            self.means[index], self.f_dc[index], self.opacity[index], self.log_scales[index], self.quaternions[index]
        )

    def colors(self) -> np.ndarray:
        """RGB in ``[0, 1]``, float32 ``[M, 3]`` (what a degree-0 renderer shows)."""
        return np.clip(0.5 + SH_C0 * self.f_dc, 0.0, 1.0).astype(np.float32)

    def opacities(self) -> np.ndarray:
        """Opacity in ``(0, 1)``, float32 ``[M]`` (the sigmoid of the logit)."""
        return (1.0 / (1.0 + np.exp(-self.opacity.astype(np.float64)))).astype(np.float32)

    def rotations(self) -> np.ndarray:
        """World-from-Gaussian rotation matrices, float64 ``[M, 3, 3]``, from the ``w x y z`` quaternions."""
        wxyz = self.quaternions.astype(np.float64)
        return quaternion_xyzw_to_matrix(np.concatenate([wxyz[:, 1:], wxyz[:, :1]], axis=1))

    def covariances(self) -> np.ndarray:
        """World-frame covariances ``R diag(sigma^2) R^T``, float32 ``[M, 3, 3]`` (viser's splat input)."""
        rotation = self.rotations()
        variance = np.exp(2.0 * self.log_scales.astype(np.float64))
        return np.einsum("mij,mj,mkj->mik", rotation, variance, rotation).astype(np.float32)


def camera_quaternions(extrinsics: np.ndarray) -> np.ndarray:
    """World-from-camera rotations ``R^T`` of OpenCV camera-from-world extrinsics ``[F, 3, 4]`` as unit quaternions
    ``w x y z`` (``w >= 0``), float64 ``[F, 4]``."""
    world_from_camera = np.swapaxes(np.asarray(extrinsics, np.float64)[:, :, :3], 1, 2)
    xyzw = matrix_to_quaternion_xyzw(world_from_camera)
    return np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)


def mid_ranks(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group, the mid-rank of each value in ``(0, 1)``: ``(#smaller + #smaller-or-equal) / (2 n)``; float64
    ``[M]`` for ``values`` and integer ``groups`` ``[M]`` (equal values share a rank)."""
    out = np.empty(len(values), np.float64)
    for group in np.unique(groups):
        index = np.flatnonzero(groups == group)
        ordered = np.sort(values[index])
        below = np.searchsorted(ordered, values[index], side="left")
        up_to = np.searchsorted(ordered, values[index], side="right")
        out[index] = (below + up_to) / (2.0 * len(index))
    return out


def opacity_logits(conf: np.ndarray, groups: np.ndarray, options: SplatOptions) -> np.ndarray:
    """Opacity logits float32 ``[M]`` from confidences ``[M]`` by ``options.opacity`` (module docstring)."""
    conf = np.asarray(conf, np.float64)
    if options.opacity == "rank":
        span = options.opacity_max - options.opacity_min
        alpha = options.opacity_min + span * mid_ranks(conf, np.asarray(groups))
    else:
        alpha = 1.0 - 1.0 / np.maximum(conf, 1.0)
    alpha = np.clip(alpha, options.opacity_min, options.opacity_max)
    return np.log(alpha / (1.0 - alpha)).astype(np.float32)


def lift_pixels(
    xyz: np.ndarray,
    rgb: np.ndarray,
    conf: np.ndarray,
    frame: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    options: SplatOptions | None = None,
    groups: np.ndarray | None = None,
    density: float = 1.0,
) -> Gaussians:
    """One Gaussian per pixel (module docstring for the mapping).

    ``xyz`` ``[M, 3]`` world points; ``rgb`` uint8 ``[M, 3]``; ``conf`` ``[M]`` the stream's confidence;
    ``frame`` int ``[M]`` each pixel's camera as an index into ``extrinsics`` ``[F, 3, 4]`` (OpenCV
    camera-from-world) and ``intrinsics`` ``[F, 3, 3]`` (pixels); ``groups`` int ``[M]`` the population of the
    ``"rank"`` opacity (the timestep; ``None``: one group); ``density``: a factor on both footprint sigmas, for a
    random subset of a fraction ``f`` of the pixels pass ``1 / sqrt(f)`` so the splats still cover the surface.
    """
    options = options or SplatOptions()
    xyz = np.asarray(xyz, np.float32)
    if len(xyz) == 0:
        raise ValueError("no pixel to lift to a Gaussian (the selection is empty)")
    frame = np.asarray(frame, np.int64)
    extrinsics = np.asarray(extrinsics, np.float64)
    intrinsics = np.asarray(intrinsics, np.float64)
    depth_row = extrinsics[frame, 2, :]  # [M, 4]: z of camera coordinates = r_3 . X + t_z
    depth = np.abs(np.einsum("mi,mi->m", depth_row[:, :3], xyz.astype(np.float64)) + depth_row[:, 3])
    depth = np.maximum(depth, np.finfo(np.float32).tiny)
    sigma = options.sigma_pixels * density * depth
    sigma_x = sigma / np.abs(intrinsics[frame, 0, 0])
    sigma_y = sigma / np.abs(intrinsics[frame, 1, 1])
    sigma_z = options.thickness * np.minimum(sigma_x, sigma_y)
    groups = np.zeros(len(xyz), np.int64) if groups is None else np.asarray(groups)
    return Gaussians(
        means=xyz.copy(),
        f_dc=((np.asarray(rgb, np.float32) / 255.0 - 0.5) / SH_C0).astype(np.float32),
        opacity=opacity_logits(conf, groups, options),
        log_scales=np.log(np.stack([sigma_x, sigma_y, sigma_z], axis=-1)).astype(np.float32),
        quaternions=camera_quaternions(extrinsics)[frame].astype(np.float32),
    )


def splat_properties(sh_degree: int = 0) -> list[str]:
    """The vertex properties of a splat PLY in file order (all float32), for spherical-harmonics degree
    ``sh_degree`` (``3 ((d + 1)^2 - 1)`` zero ``f_rest`` coefficients)."""
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def splat_ply_header(num_splats: int, sh_degree: int = 0) -> bytes:
    """The ASCII header of a splat PLY of ``num_splats`` vertices, ending with ``end_header\\n``."""
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {num_splats}"]
    lines += [f"property float {name}" for name in splat_properties(sh_degree)]
    return ("\n".join(lines + ["end_header"]) + "\n").encode("ascii")


def write_splat_ply(gaussians: Gaussians, handle: BinaryIO, sh_degree: int = 0) -> None:
    """Write ``gaussians`` to the binary file ``handle`` in the layout of :func:`splat_properties`."""
    names = splat_properties(sh_degree)
    record = np.zeros(len(gaussians), dtype=np.dtype([(name, "<f4") for name in names]))
    for axis, name in enumerate("xyz"):
        record[name] = gaussians.means[:, axis]
    for i in range(3):
        record[f"f_dc_{i}"] = gaussians.f_dc[:, i]
        record[f"scale_{i}"] = gaussians.log_scales[:, i]
    for i in range(4):
        record[f"rot_{i}"] = gaussians.quaternions[:, i]
    record["opacity"] = gaussians.opacity
    handle.write(splat_ply_header(len(gaussians), sh_degree))
    handle.write(record.tobytes())
