"""Procedural multi-camera rigs with exact ground truth, rendered on the CPU.

The scene is a square room (textured ground and walls) with static boxes and moving objects (boxes
and spheres that travel along closed paths and spin). ``N`` cameras sit on an arc of a circle around
the room's centre, all looking at one target point; together they form a rigid rig that orbits the
centre, bobs and dollies (or stands still with ``rig_motion=False``).

Conventions (as everywhere in ``vggt_t_mv``):

* **World frame**: right-handed, ``z`` up, the ground is the plane ``z = 0``, units are metres.
* **Cameras**: OpenCV axes (x right, y down, z forward); extrinsics ``[R | t]`` are
  camera-from-world (a world point ``X`` maps to camera coordinates ``R X + t``).
* **Pixels**: ``(u, v)`` is the integer column / row index with no +0.5 offset (as VGGT); the
  principal point is the image centre ``(W / 2, H / 2)`` and pixels are square (``fx = fy``), so the
  intrinsics match :func:`vggt_t_mv.geometry.pose_encoding_to_extri_intri`.
* **Depth** is z-depth along the optical axis; the world point of pixel ``(u, v)`` is exactly
  ``R^T (depth * K^-1 [u, v, 1] - t)`` (computed in float64 from the stored float32 depth and
  cameras, then rounded to float32).

Rendering casts one ray per pixel through the pixel index (no anti-aliasing) with the numpy ray caster of
:mod:`vggt_t_mv.data.raycast` (every object is a convex mesh; no system library needed, and the same images and
depth as open3d's ``RaycastingScene``, which rendered the bundled demo rig); textures are procedural functions of
the hit point in the hit object's own frame, so they move with the objects. OpenCV is imported lazily, inside the
functions that need it, so that ``import vggt_t_mv`` stays free of it.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from vggt_t_mv.data.raycast import cast_rays
from vggt_t_mv.data.recorded import GROUND_TRUTH_FILE, FrameGrid, read_recorded_capture
from vggt_t_mv.npgeometry import camera_centers

README_FILE = "README.txt"
CaptureWriteFormat = Literal["video", "images"]  # one mp4 per camera, or one folder of PNGs per camera
DepthDtype = Literal["float32", "uint16"]  # ground-truth depth: metres, or whole millimetres
_FORMAT_VERSION = 1
DEPTH_UINT16_SCALE = 1e-3  # metres per unit of depth stored as uint16 (depth_dtype="uint16")
_CAPTURE_ENTRY = re.compile(r"^cam\d+(\.mp4)?$")
_LIGHT_DIRECTION = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
_AMBIENT = 0.5


# ----------------------------------------------------------------------------------------------------------------------
# Public data types
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticRigConfig:
    """Every knob of the procedural rig. Lengths in metres, angles in degrees, times in seconds.

    Motion is a function of time ``t / fps``, so ``fps`` changes how finely the same motion is sampled.
    """

    num_timesteps: int = 24
    num_cameras: int = 4
    height: int = 160
    width: int = 224
    seed: int = 0
    fps: float = 10.0
    fov_deg: float = 60.0  # horizontal field of view; square pixels
    # The rig: cameras on an arc of radius ``rig_radius`` around the room centre, all looking at
    # ``(0, 0, target_height)``, ``camera_spacing_deg`` apart in azimuth.
    rig_motion: bool = True  # False: every camera is static
    rig_radius: float = 5.5
    camera_height: float = 1.6
    target_height: float = 0.5
    camera_spacing_deg: float = 18.0
    rig_yaw_speed_deg: float = 12.0  # orbit of the whole rig around the vertical axis through the centre, deg/s
    rig_bob_amplitude: float = 0.1  # vertical sway
    rig_dolly_amplitude: float = 0.4  # sway towards / away from the centre
    rig_sway_period: float = 2.4  # period of bob and dolly, seconds
    # The scene.
    room_half_extent: float = 7.0  # the room spans [-e, e] x [-e, e]
    wall_height: float = 3.0
    num_static_objects: int = 6  # boxes in an annulus around the centre
    num_moving_objects: int = 2  # alternately boxes and spheres on closed paths near the centre

    def __post_init__(self) -> None:
        positive = ("num_timesteps", "num_cameras", "height", "width", "fps", "rig_radius", "room_half_extent")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"SyntheticRigConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("num_static_objects", "num_moving_objects"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticRigConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"SyntheticRigConfig.fov_deg must be in (0, 180), got {self.fov_deg}")
        if self.rig_radius + self.rig_dolly_amplitude >= self.room_half_extent:
            raise ValueError(
                "the cameras must stay inside the room: rig_radius + rig_dolly_amplitude < room_half_extent"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SyntheticRigConfig:
        return cls(**values)


def demo_rig_config() -> SyntheticRigConfig:
    """The settings of the bundled ``assets/demo_rig`` (made by ``scripts/make_demo_rig.py``)."""
    return SyntheticRigConfig(num_timesteps=24, num_cameras=4, height=160, width=224, seed=0)


@dataclass(eq=False)
class SyntheticRig(FrameGrid):
    """A rendered rig: ``T`` timesteps x ``N`` cameras of ``H x W`` images with exact ground truth.

    Conventions: see the module docstring (world z up, OpenCV camera-from-world extrinsics, pixel
    ``(u, v)`` = integer column / row, principal point at ``(W / 2, H / 2)``).
    """

    images: np.ndarray  # uint8 [T, N, H, W, 3] RGB
    depth: np.ndarray  # float32 [T, N, H, W] z-depth along the optical axis, 0 where no hit
    valid: np.ndarray  # bool [T, N, H, W] the pixel's ray hit the scene (not sky)
    world_points: np.ndarray  # float32 [T, N, H, W, 3] world coordinates of the hit, 0 where invalid
    extrinsics: np.ndarray  # float32 [T, N, 3, 4] camera-from-world [R | t]
    intrinsics: np.ndarray  # float32 [T, N, 3, 3] pixel intrinsics
    dynamic_masks: np.ndarray  # bool [T, N, H, W] the pixel sees a moving object
    camera_names: list[str]  # ["cam0", "cam1", ...]
    fps: float
    seed: int
    config: SyntheticRigConfig | None = None  # what made it, when known

    def camera_centers(self) -> np.ndarray:
        """World positions of the cameras ``[T, N, 3]`` (``-R^T t``)."""
        return camera_centers(self.extrinsics.astype(np.float64))

    def scene_scale(self) -> float:
        """Diagonal length of the axis-aligned bounding box of all camera centres and all valid world points."""
        points = np.concatenate(
            [self.camera_centers().reshape(-1, 3), self.world_points[self.valid].astype(np.float64)]
        )
        return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


# ----------------------------------------------------------------------------------------------------------------------
# Rigid-transform helpers (4x4 world-from-X matrices, float64)
# ----------------------------------------------------------------------------------------------------------------------


def _rotation_z(angle: float) -> np.ndarray:
    """Rotation ``[3, 3]`` by ``angle`` radians about the world z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation ``[3, 3]`` by ``angle`` radians about the unit vector ``axis`` (Rodrigues)."""
    x, y, z = axis / np.linalg.norm(axis)
    skew = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def _pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 rigid transform from a rotation ``[3, 3]`` and a translation ``[3]``."""
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 world-from-camera pose of an OpenCV camera at ``eye`` looking at ``target`` (x right, y down, z forward),
    level with the world's z-up horizon."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return _pose(np.stack([right, down, forward], axis=1), eye)


# ----------------------------------------------------------------------------------------------------------------------
# Scene description (pure numpy)
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Material:
    """Procedural texture: a 2D checker of ``color_a`` / ``color_b`` with cells ``checker_size``, modulated by
    per-cell random brightness at ``detail_size``. Evaluated on the object's local coordinates, projected
    along the dominant axis of the local normal."""

    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    checker_size: float
    detail_size: float
    salt: int


@dataclass(frozen=True)
class _SceneObject:
    """A triangle mesh in its own frame (``vertices [V, 3]`` float64, ``triangles [F, 3]`` int), its
    material, and its world-from-object pose as a function of time in seconds."""

    vertices: np.ndarray
    triangles: np.ndarray
    material: _Material
    pose_at: Callable[[float], np.ndarray]
    moving: bool


def _box_mesh(half_extents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centred on the origin: vertices ``[8, 3]``, outward-facing triangles ``[12, 3]``."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    triangles = np.array([tri for a, b, c, d in faces for tri in ((a, b, c), (a, c, d))], dtype=np.int64)
    return corners * half_extents, triangles


def _sphere_mesh(radius: float, rings: int = 12, segments: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """UV sphere centred on the origin: vertices ``[2 + (rings - 1) * segments, 3]``, triangles ``[F, 3]``."""
    polar = np.linspace(0, np.pi, rings + 1)[1:-1]
    azimuth = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    ring_vertices = np.stack([np.sin(p) * np.cos(a), np.sin(p) * np.sin(a), np.cos(p)], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([[[0.0, 0.0, 1.0]], ring_vertices, [[0.0, 0.0, -1.0]]]) * radius
    south = len(vertices) - 1
    triangles = []
    for s in range(segments):
        s_next = (s + 1) % segments
        triangles.append((0, 1 + s, 1 + s_next))
        last = 1 + (rings - 2) * segments
        triangles.append((south, last + s_next, last + s))
        for r in range(rings - 2):
            a0, a1 = 1 + r * segments + s, 1 + r * segments + s_next
            b0, b1 = a0 + segments, a1 + segments
            triangles.extend([(a0, b0, b1), (a0, b1, a1)])
    return vertices, np.array(triangles, dtype=np.int64)


def _random_color(rng: np.random.Generator, saturation: tuple[float, float]) -> tuple[float, float, float]:
    """An RGB colour in [0, 1] with a uniform random hue, the given saturation range and a bright value."""
    hue, sat, value = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(0.65, 0.95)
    return colorsys.hsv_to_rgb(float(hue), float(sat), float(value))


def _random_material(
    rng: np.random.Generator, checker_size: float, detail_size: float, saturation: tuple[float, float] = (0.2, 0.6)
) -> _Material:
    color_a = _random_color(rng, saturation)
    red, green, blue = (float(c) for c in np.clip(np.array(color_a) * rng.uniform(0.35, 0.6), 0, 1))
    color_b = (red, green, blue)
    return _Material(color_a, color_b, checker_size, detail_size, int(rng.integers(1, 2**31)))


def _static_pose(pose: np.ndarray) -> Callable[[float], np.ndarray]:
    return lambda _time: pose


def _room_objects(config: SyntheticRigConfig, rng: np.random.Generator) -> list[_SceneObject]:
    """Ground slab (top face at ``z = 0``) and four walls."""
    extent, thickness, height = config.room_half_extent, 0.2, config.wall_height
    ground = _box_mesh(np.array([extent + thickness, extent + thickness, thickness / 2]))
    objects = [
        _SceneObject(
            *ground,
            _random_material(rng, 1.0, 0.25),
            _static_pose(_pose(np.eye(3), np.array([0, 0, -thickness / 2]))),
            False,
        )
    ]
    for side in range(4):
        angle = side * np.pi / 2
        centre = _rotation_z(angle) @ np.array([extent + thickness / 2, 0.0, height / 2])
        wall = _box_mesh(np.array([thickness / 2, extent + thickness, height / 2]))
        pose = _pose(_rotation_z(angle), centre)
        objects.append(_SceneObject(*wall, _random_material(rng, 0.75, 0.15), _static_pose(pose), False))
    return objects


def _static_boxes(config: SyntheticRigConfig, rng: np.random.Generator) -> list[_SceneObject]:
    """Boxes standing on the ground in the annulus between the moving objects' paths and the cameras."""
    objects = []
    for index in range(config.num_static_objects):
        azimuth = 2 * np.pi * (index + rng.uniform(0.1, 0.9)) / max(config.num_static_objects, 1)
        radius = rng.uniform(1.9, 3.2)
        half = np.array([rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.7)])
        centre = np.array([radius * np.cos(azimuth), radius * np.sin(azimuth), half[2]])
        pose = _pose(_rotation_z(rng.uniform(0, np.pi)), centre)
        material = _random_material(rng, float(rng.uniform(0.15, 0.3)), float(rng.uniform(0.04, 0.08)))
        objects.append(_SceneObject(*_box_mesh(half), material, _static_pose(pose), False))
    return objects


def _orbit_pose(
    path_radius: float, angular_speed: float, phase: float, base_height: float, hop: float, spin: float
) -> Callable[[float], np.ndarray]:
    """World-from-object pose of an object circling the centre, hopping ``|sin|``-style and spinning.

    The spin is about a tilted axis, so spheres show their texture rolling and boxes turn."""
    spin_axis = np.array([np.cos(phase), np.sin(phase), 2.0])

    def pose_at(time: float) -> np.ndarray:
        angle = phase + angular_speed * time
        centre = np.array([path_radius * np.cos(angle), path_radius * np.sin(angle), base_height])
        centre[2] += hop * abs(np.sin(2.0 * angular_speed * time + phase))
        return _pose(_rotation_axis_angle(spin_axis, spin * time), centre)

    return pose_at


def _moving_objects(config: SyntheticRigConfig, rng: np.random.Generator) -> list[_SceneObject]:
    """Boxes (even index) and spheres (odd index) on circular paths of distinct radii around the centre."""
    objects = []
    count = config.num_moving_objects
    for index in range(count):
        path_radius = 0.4 + 1.1 * (index + 0.5) / count
        speed = rng.uniform(0.6, 1.1) * rng.choice([-1.0, 1.0])
        phase = rng.uniform(0, 2 * np.pi)
        spin = rng.uniform(1.0, 2.5) * rng.choice([-1.0, 1.0])
        if index % 2 == 0:
            half = rng.uniform(0.3, 0.45, size=3)
            mesh, lift = _box_mesh(half), float(np.linalg.norm(half))
        else:
            radius = float(rng.uniform(0.35, 0.5))
            mesh, lift = _sphere_mesh(radius), radius
        material = _random_material(rng, float(rng.uniform(0.1, 0.18)), 0.04, saturation=(0.6, 0.95))
        pose_at = _orbit_pose(path_radius, speed, phase, lift, float(rng.uniform(0.1, 0.4)), spin)
        objects.append(_SceneObject(*mesh, material, pose_at, True))
    return objects


def _build_scene(config: SyntheticRigConfig, rng: np.random.Generator) -> list[_SceneObject]:
    return _room_objects(config, rng) + _static_boxes(config, rng) + _moving_objects(config, rng)


@dataclass(frozen=True)
class SceneMotion:
    """The scene of a rig configuration as rigid bodies: ``meshes`` (``vertices [V, 3]`` in the object's frame,
    ``triangles [F, 3]``) and ``moving [K]``; :meth:`poses` gives their world-from-object poses."""

    meshes: list[tuple[np.ndarray, np.ndarray]]
    moving: np.ndarray
    pose_functions: list[Callable[[float], np.ndarray]]
    fps: float

    def poses(self, timestep: int) -> np.ndarray:
        """World-from-object poses ``[K, 4, 4]`` (float64) at ``timestep``."""
        return np.stack([pose_at(timestep / self.fps) for pose_at in self.pose_functions])

    def world_meshes(self, timestep: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The meshes placed in the world at ``timestep`` (float64 vertices)."""
        return [
            (vertices @ pose[:3, :3].T + pose[:3, 3], triangles)
            for (vertices, triangles), pose in zip(self.meshes, self.poses(timestep), strict=True)
        ]


def scene_motion(config: SyntheticRigConfig) -> SceneMotion:
    """The rigid bodies :func:`make_synthetic_rig` renders for ``config`` (same seed, same scene)."""
    objects = _build_scene(config, np.random.default_rng(config.seed))
    return SceneMotion(
        [(obj.vertices, obj.triangles) for obj in objects],
        np.array([obj.moving for obj in objects]),
        [obj.pose_at for obj in objects],
        float(config.fps),
    )


# ----------------------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------------------


def _intrinsics(config: SyntheticRigConfig) -> np.ndarray:
    """Pixel intrinsics ``[3, 3]``: square pixels, horizontal FoV ``fov_deg``, principal point ``(W / 2, H / 2)``."""
    focal = (config.width / 2) / np.tan(np.deg2rad(config.fov_deg) / 2)
    return np.array([[focal, 0.0, config.width / 2], [0.0, focal, config.height / 2], [0.0, 0.0, 1.0]])


def _rig_from_cameras(config: SyntheticRigConfig) -> np.ndarray:
    """Constant rig-from-camera poses ``[N, 4, 4]``: cameras on an arc about the rig's +x axis, facing the centre."""
    offsets = (np.arange(config.num_cameras) - (config.num_cameras - 1) / 2) * np.deg2rad(config.camera_spacing_deg)
    target = np.array([0.0, 0.0, config.target_height])
    poses = []
    for azimuth in offsets:
        eye = np.array([config.rig_radius * np.cos(azimuth), config.rig_radius * np.sin(azimuth), config.camera_height])
        poses.append(_look_at(eye, target))
    return np.stack(poses)


def _world_from_rig(config: SyntheticRigConfig, initial_yaw: float, time: float) -> np.ndarray:
    """World-from-rig pose ``[4, 4]`` at ``time`` seconds: orbit about the vertical axis, plus a bob and a dolly."""
    if not config.rig_motion:
        time = 0.0
    yaw = initial_yaw + np.deg2rad(config.rig_yaw_speed_deg) * time
    sway = 2 * np.pi * time / config.rig_sway_period
    dolly = config.rig_dolly_amplitude * np.sin(sway)
    bob = config.rig_bob_amplitude * np.sin(2 * sway)
    rotation = _rotation_z(yaw)
    return _pose(rotation, rotation @ np.array([-dolly, 0.0, bob]))


def _camera_extrinsics(config: SyntheticRigConfig, initial_yaw: float) -> np.ndarray:
    """Camera-from-world extrinsics ``[T, N, 3, 4]`` (float64): world-from-rig(t) @ rig-from-camera(n), inverted."""
    rig_from_cameras = _rig_from_cameras(config)
    extrinsics = np.empty((config.num_timesteps, config.num_cameras, 3, 4))
    for t in range(config.num_timesteps):
        world_from_rig = _world_from_rig(config, initial_yaw, t / config.fps)
        for n, rig_from_camera in enumerate(rig_from_cameras):
            extrinsics[t, n] = np.linalg.inv(world_from_rig @ rig_from_camera)[:3]
    return extrinsics


# ----------------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------------


def _pixel_rays_camera(height: int, width: int, intrinsics: np.ndarray) -> np.ndarray:
    """``K^-1 [u, v, 1]`` for every pixel, ``[N, H, W, 3]`` float64 (z component exactly 1)."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    pixels = np.stack([u, v, np.ones_like(u)], axis=-1)
    inverse = np.linalg.inv(intrinsics)  # [N, 3, 3]
    return (pixels.reshape(1, -1, 3) @ inverse.transpose(0, 2, 1)).reshape(len(intrinsics), height, width, 3)


def _world_rays(extrinsics: np.ndarray, rays_camera: np.ndarray) -> np.ndarray:
    """Rays ``[N, H, W, 6]`` float32 (origin, direction) in the world for camera-from-world ``extrinsics [N, 3, 4]``.

    The direction is ``R^T K^-1 [u, v, 1]``, so the hit distance along it equals the z-depth."""
    rotation = extrinsics[:, :, :3]
    origins = camera_centers(extrinsics)
    directions = (rays_camera.reshape(len(rotation), -1, 3) @ rotation).reshape(rays_camera.shape)
    origins = np.broadcast_to(origins[:, None, None, :], directions.shape)
    return np.concatenate([origins, directions], axis=-1).astype(np.float32)


def _unproject(depth: np.ndarray, extrinsics: np.ndarray, rays_camera: np.ndarray) -> np.ndarray:
    """World points ``[N, H, W, 3]`` float64 = ``R^T (depth * K^-1 [u, v, 1] - t)`` for ``depth [N, H, W]``."""
    rotation, translation = extrinsics[:, :, :3], extrinsics[:, :, 3]
    camera_points = depth[..., None].astype(np.float64) * rays_camera - translation[:, None, None, :]
    return (camera_points.reshape(len(rotation), -1, 3) @ rotation).reshape(camera_points.shape)


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer cell ``(ix, iy)`` and ``salt`` (splitmix64 mix)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= salt.astype(np.uint64)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _texture(local_points: np.ndarray, local_normals: np.ndarray, material: _Material) -> np.ndarray:
    """Albedo ``[M, 3]`` in [0, 1] of hit points ``[M, 3]`` with normals ``[M, 3]``, both in the object's frame."""
    axis = np.abs(local_normals).argmax(axis=-1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]  # the two in-plane coordinates of each face
    planar = np.take_along_axis(local_points, keep, axis=-1)
    salt = np.uint64(material.salt) + axis.astype(np.uint64)
    cells = np.floor(planar / material.checker_size).astype(np.int64)
    checker = ((cells[:, 0] + cells[:, 1]) % 2).astype(np.float64)[:, None]
    details = np.floor(planar / material.detail_size).astype(np.int64)
    brightness = 0.6 + 0.4 * _hash01(details[:, 0], details[:, 1], salt)[:, None]
    tint = 0.85 + 0.3 * _hash01(cells[:, 0], cells[:, 1], salt + np.uint64(7))[:, None]
    color = (1 - checker) * np.array(material.color_a) + checker * np.array(material.color_b)
    return np.clip(color * brightness * tint, 0.0, 1.0)


def _sky(directions: np.ndarray) -> np.ndarray:
    """Sky colour ``[M, 3]`` for world ray directions ``[M, 3]``: a gradient from horizon to zenith."""
    elevation = np.clip(directions[:, 2] / np.linalg.norm(directions, axis=-1), 0.0, 1.0)[:, None]
    return (1 - elevation) * np.array([0.82, 0.88, 0.95]) + elevation * np.array([0.35, 0.55, 0.88])


def _shade(
    geometry_ids: np.ndarray,
    world_points: np.ndarray,
    normals: np.ndarray,
    directions: np.ndarray,
    objects: list[_SceneObject],
    poses: list[np.ndarray],
) -> np.ndarray:
    """Colours ``[M, 3]`` in [0, 1] of rays ``[M]`` (``geometry_ids`` = object index, -1 for sky).

    ``world_points``, ``normals`` and ``directions`` are ``[M, 3]`` float64; Lambert shading with one
    directional light plus ambient; textures are looked up in each object's frame."""
    colors = np.empty((len(geometry_ids), 3))
    sky = geometry_ids < 0
    colors[sky] = _sky(directions[sky])
    facing = np.where((normals * directions).sum(-1, keepdims=True) > 0, -normals, normals)
    light = _AMBIENT + (1 - _AMBIENT) * np.clip(facing @ _LIGHT_DIRECTION, 0.0, 1.0)
    for index, (obj, pose) in enumerate(zip(objects, poses, strict=True)):
        hit = geometry_ids == index
        if not hit.any():
            continue
        rotation, translation = pose[:3, :3], pose[:3, 3]
        local_points = (world_points[hit] - translation) @ rotation
        local_normals = facing[hit] @ rotation
        colors[hit] = _texture(local_points, local_normals, obj.material) * light[hit, None]
    return colors


@dataclass
class _Frame:
    """Rendering of one timestep for all cameras; leading dims ``[N, H, W]``."""

    image: np.ndarray  # uint8 [N, H, W, 3]
    depth: np.ndarray  # float32 [N, H, W]
    world_points: np.ndarray  # float32 [N, H, W, 3]
    dynamic: np.ndarray  # bool [N, H, W]


def _render_timestep(
    objects: list[_SceneObject], time: float, extrinsics: np.ndarray, rays_camera: np.ndarray
) -> _Frame:
    """Ray-cast every camera (``extrinsics [N, 3, 4]``, ``rays_camera [N, H, W, 3]``) at ``time`` seconds."""
    poses = [obj.pose_at(time) for obj in objects]
    meshes = [
        ((obj.vertices @ pose[:3, :3].T + pose[:3, 3]).astype(np.float32), obj.triangles)
        for obj, pose in zip(objects, poses, strict=True)
    ]
    rays = _world_rays(extrinsics, rays_camera)
    hits = cast_rays(meshes, rays)
    valid = np.isfinite(hits.t_hit)
    depth = np.where(valid, hits.t_hit, 0.0).astype(np.float32)
    world_points = np.where(valid[..., None], _unproject(depth, extrinsics, rays_camera), 0.0)
    object_ids = hits.mesh_ids

    colors = _shade(
        object_ids.reshape(-1),
        world_points.reshape(-1, 3),
        hits.normals.reshape(-1, 3),
        rays[..., 3:].reshape(-1, 3).astype(np.float64),
        objects,
        poses,
    )
    image = np.round(colors.reshape(rays.shape[:-1] + (3,)) * 255).astype(np.uint8)
    moving = np.array([obj.moving for obj in objects] + [False])  # index -1 (sky) -> False
    return _Frame(image, depth, world_points.astype(np.float32), moving[object_ids])


def make_synthetic_rig(config: SyntheticRigConfig | None = None, **overrides) -> SyntheticRig:
    """Render a procedural rig. ``overrides`` replace fields of ``config`` (default :class:`SyntheticRigConfig`).

    Deterministic: the same configuration (seed included) gives identical arrays.
    """
    config = dataclasses.replace(config or SyntheticRigConfig(), **overrides)
    rng = np.random.default_rng(config.seed)
    objects = _build_scene(config, rng)
    initial_yaw = float(rng.uniform(0, 2 * np.pi))
    extrinsics = _camera_extrinsics(config, initial_yaw).astype(np.float32)
    intrinsics = np.broadcast_to(_intrinsics(config).astype(np.float32), extrinsics.shape[:2] + (3, 3)).copy()
    # Rays and unprojection use the float32-rounded cameras, so the stored arrays are consistent with each other.
    rays_camera = _pixel_rays_camera(config.height, config.width, intrinsics[0].astype(np.float64))
    frames = [
        _render_timestep(objects, t / config.fps, extrinsics[t].astype(np.float64), rays_camera)
        for t in range(config.num_timesteps)
    ]
    depth = np.stack([frame.depth for frame in frames])
    return SyntheticRig(
        images=np.stack([frame.image for frame in frames]),
        depth=depth,
        valid=depth > 0,
        world_points=np.stack([frame.world_points for frame in frames]),
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        dynamic_masks=np.stack([frame.dynamic for frame in frames]),
        camera_names=[f"cam{n}" for n in range(config.num_cameras)],
        fps=float(config.fps),
        seed=int(config.seed),
        config=config,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Capture folders
# ----------------------------------------------------------------------------------------------------------------------


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    """Create ``folder``; refuse a non-empty one unless ``overwrite``, which removes earlier capture entries."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder} is not empty; pass overwrite=True to replace its capture")
        for entry in folder.iterdir():
            if _CAPTURE_ENTRY.match(entry.name) or entry.name in (GROUND_TRUTH_FILE, README_FILE):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write RGB frames ``[T, H, W, 3]`` uint8 as an MPEG-4 Part 2 (``mp4v``) video."""
    import cv2

    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open a mp4v video writer for {path}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()


def _write_images(folder: Path, frames: np.ndarray) -> None:
    """Write RGB frames ``[T, H, W, 3]`` uint8 as ``folder/000000.png`` ..."""
    import cv2

    folder.mkdir()
    for index, frame in enumerate(frames):
        if not cv2.imwrite(str(folder / f"{index:06d}.png"), np.ascontiguousarray(frame[..., ::-1])):
            raise RuntimeError(f"OpenCV could not write {folder / f'{index:06d}.png'}")


def _readme_text(rig: SyntheticRig, fmt: CaptureWriteFormat, depth_dtype: DepthDtype) -> str:
    height, width = rig.image_hw
    layout = "cam0.mp4, cam1.mp4, ... (mp4v)" if fmt == "video" else "cam0/000000.png, ... (lossless PNG)"
    depth = "float32 metres" if depth_dtype == "float32" else "uint16 millimetres (metres = depth * depth_scale)"
    return (
        "Synthetic multi-camera capture made by vggt_t_mv.data.synthetic.\n"
        f"{rig.num_cameras} cameras x {rig.num_timesteps} synchronized frames of {width}x{height} at {rig.fps:g} fps,"
        f" seed {rig.seed}.\n"
        f"Frames: {layout}; frame i of every camera is the same instant.\n"
        f"{GROUND_TRUTH_FILE}: depth [T, N, H, W] {depth}, z-depth along the optical axis, 0 = no hit;\n"
        "dynamic_masks [T, N, H, W] bool (pixel sees a moving object);\n"
        "extrinsics [T, N, 3, 4] float32 camera-from-world (OpenCV axes: x right, y down, z forward),\n"
        "intrinsics [T, N, 3, 3] float32 (pixel (u, v) = integer column/row, no +0.5), camera_names, fps, seed,\n"
        "config_json. World z is up. valid = depth > 0 and world_points = R^T (depth * K^-1 [u, v, 1] - t) are\n"
        "derived on load: vggt_t_mv.data.load_ground_truth(folder).\n"
    )


def _encode_depth(depth: np.ndarray, depth_dtype: DepthDtype) -> tuple[np.ndarray, float]:
    """Depth ``[T, N, H, W]`` float32 -> (stored array, metres per stored unit)."""
    if depth_dtype == "float32":
        return depth.astype(np.float32), 1.0
    units = np.round(depth.astype(np.float64) / DEPTH_UINT16_SCALE)
    if units.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"depth up to {depth.max():.1f} m does not fit uint16 at {DEPTH_UINT16_SCALE} m per unit")
    return units.astype(np.uint16), DEPTH_UINT16_SCALE


def _write_ground_truth(rig: SyntheticRig, path: Path, depth_dtype: DepthDtype) -> None:
    """Write the ground truth (everything but the images, ``valid`` and ``world_points``, which are derived)."""
    config_json = json.dumps(rig.config.to_dict()) if rig.config is not None else ""
    depth, depth_scale = _encode_depth(rig.depth, depth_dtype)
    np.savez_compressed(
        path,
        format_version=np.int64(_FORMAT_VERSION),
        depth=depth,
        depth_scale=np.float64(depth_scale),
        dynamic_masks=rig.dynamic_masks.astype(bool),
        extrinsics=rig.extrinsics.astype(np.float32),
        intrinsics=rig.intrinsics.astype(np.float32),
        camera_names=np.array(rig.camera_names),
        fps=np.float64(rig.fps),
        seed=np.int64(rig.seed),
        config_json=np.array(config_json),
    )


def write_capture(
    rig: SyntheticRig,
    folder: str | Path,
    *,
    fmt: CaptureWriteFormat = "video",
    overwrite: bool = False,
    depth_dtype: DepthDtype = "float32",
) -> Path:
    """Write ``rig`` as a capture folder and return its path.

    ``fmt="video"``: one ``<camera>.mp4`` per camera (OpenCV ``mp4v``, lossy); ``fmt="images"``: one folder of
    lossless PNGs per camera (``cam0/000000.png`` ...). Either way, ``ground_truth.npz`` and ``README.txt`` are
    written alongside. ``depth_dtype="float32"`` stores the depth exactly; ``"uint16"`` stores whole millimetres
    (about 3x smaller; the depth read back is then within 0.5 mm). A non-empty ``folder`` is refused unless
    ``overwrite``; then earlier ``cam*`` entries, the ground truth and the README are removed first (other files
    are left alone).
    """
    if fmt not in get_args(CaptureWriteFormat):
        raise ValueError(f"fmt must be 'video' or 'images', got {fmt!r}")
    if depth_dtype not in get_args(DepthDtype):
        raise ValueError(f"depth_dtype must be 'float32' or 'uint16', got {depth_dtype!r}")
    folder = Path(folder)
    _prepare_folder(folder, overwrite)
    for n, name in enumerate(rig.camera_names):
        if fmt == "video":
            _write_video(folder / f"{name}.mp4", rig.images[:, n], rig.fps)
        else:
            _write_images(folder / name, rig.images[:, n])
    _write_ground_truth(rig, folder / GROUND_TRUTH_FILE, depth_dtype)
    (folder / README_FILE).write_text(_readme_text(rig, fmt, depth_dtype))
    return folder


def load_ground_truth(folder: str | Path) -> SyntheticRig:
    """Read a folder written by :func:`write_capture` back into a :class:`SyntheticRig`.

    Masks and cameras are exact, and so is the depth when it was written as float32 (uint16: within 0.5 mm);
    ``valid`` (``depth > 0``) and ``world_points`` are recomputed from it with the renderer's float64 formula, so
    they are exactly consistent with the depth and cameras. Images are read back from the capture: exact for
    ``fmt="images"``, lossy for ``fmt="video"`` (mp4v compression: a few grey levels of mean error).
    """
    recorded = read_recorded_capture(folder)
    arrays, seq = recorded.arrays, recorded.sequence
    for key in ("depth", "dynamic_masks", "fps", "seed"):
        if key not in arrays:
            raise ValueError(f"{Path(folder) / GROUND_TRUTH_FILE} has no {key!r}: not written by write_capture")
    depth, extrinsics, intrinsics = seq.depth, seq.extrinsics, seq.intrinsics
    world_points = np.stack([_unproject_timestep(depth[t], extrinsics[t], intrinsics[t]) for t in range(len(depth))])
    config_json = str(arrays.get("config_json", ""))
    return SyntheticRig(
        images=seq.images,
        depth=depth,
        valid=seq.valid,
        world_points=world_points,
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        dynamic_masks=seq.dynamic_masks,
        camera_names=recorded.camera_names,
        fps=float(arrays["fps"]),
        seed=int(arrays["seed"]),
        config=SyntheticRigConfig.from_dict(json.loads(config_json)) if config_json else None,
    )


def _unproject_timestep(depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """World points ``[N, H, W, 3]`` float32 of one timestep (0 where ``depth == 0``), as the renderer computes them."""
    rays_camera = _pixel_rays_camera(depth.shape[1], depth.shape[2], intrinsics.astype(np.float64))
    points = _unproject(depth, extrinsics.astype(np.float64), rays_camera)
    return np.where(depth[..., None] > 0, points, 0.0).astype(np.float32)


def write_dataset_root(rig: SyntheticRig, root: Path) -> Path:
    """``rig`` as a dataset root (the layout ``vggt-mv run`` and ``eval`` read): ``images/time_TT/<camera>.png`` and,
    named like them, ``intrs/`` ``[3, 3]``, ``extrs/`` ``[3, 4]`` and ``depths/`` ``[H, W]`` ``.npy`` per frame."""
    import cv2

    root = Path(root)
    for t in range(rig.num_timesteps):
        for n, name in enumerate(rig.camera_names):
            frame = f"time_{t:02d}"
            for kind in ("images", "intrs", "extrs", "depths"):
                (root / kind / frame).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "images" / frame / f"{name}.png"), np.ascontiguousarray(rig.images[t, n, ..., ::-1]))
            np.save(root / "intrs" / frame / f"{name}.npy", rig.intrinsics[t, n])
            np.save(root / "extrs" / frame / f"{name}.npy", rig.extrinsics[t, n])
            np.save(root / "depths" / frame / f"{name}.npy", rig.depth[t, n])
    return root
