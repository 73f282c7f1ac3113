"""The pipeline's ceiling: `vggt-mv run` at 518 px on a 4-camera 1080p H.264 capture with a zero-cost model.

On a GPU the model is fast, so everything around it (decoding, resizing, copies, stitching, writing) sets the
speed. This script measures that ceiling on the machine it runs on:

1. it writes a synthetic 4-camera capture (1920x1080, H.264, about 12 Mbit/s like a phone video; x264 from
   ``ffmpeg`` on PATH or the ``imageio-ffmpeg`` package's binary; without either, or with ``--encoder opencv``,
   OpenCV's own ``VideoWriter``, see :func:`make_capture`) into a temporary folder, or uses ``--capture``;
2. it times plain decoding of exactly the frames the pipeline reads, with the same reader
   (:meth:`app.capture.sources.RigCapture.iter_timesteps`), in the same process;
3. it runs the real pipeline (:func:`app.reconstruct.run.prepare_reconstruction` then ``PreparedRun.run``, the
   code path of ``vggt-mv run``: capture -> windows -> stitching -> Reconstruction on disk) with
   :class:`ZeroCostModel`, a stand-in that returns precomputed outputs of the real shapes and dtypes at once.
   Its outputs are deterministic and realistic enough for stitching to do real work: a static rig with
   textured depth, a moving blob, point-map noise, and every other window in a frame moved by a fixed Sim(3);
4. it prints the seconds per stage (decode, preprocess, host<->device copies, model, unprojection, stitching,
   write; see :mod:`app.common.timing`), and last
   ``RESULT decode_fps=<A> pipeline_fps=<B> ratio=<B/A> mb_per_image=<bytes on disk / camera images / 1e6>``.
   fps count camera images (timesteps x cameras).

    python benchmarks/pipeline_ceiling.py --quick      # 48 timesteps, < 1 min on 2 cores
    python benchmarks/pipeline_ceiling.py              # 120 timesteps, 2 rounds
    python benchmarks/pipeline_ceiling.py --device cuda --timesteps 240

Stage seconds are summed per thread (decoding runs in the capture's thread, writing in the writer thread), so
they may add up to more than the wall time; their sum minus the wall time is the overlap. With more threads than
cores a stage's wall seconds include waiting for a core: its CPU column (the thread's own CPU time) is its cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.capture.preprocess import PreprocessConfig  # noqa: E402
from app.capture.rig import RigCapture  # noqa: E402
from app.common.allocator import keep_freed_memory  # noqa: E402
from app.common.timing import STAGES  # noqa: E402
from app.reconstruct.pipeline import PipelineConfig, plan_run  # noqa: E402
from app.reconstruct.run import prepare_reconstruction  # noqa: E402
from vggt_t_mv import ModelConfig  # noqa: E402
from vggt_t_mv.geometry import depth_to_world_points, extri_intri_to_pose_encoding  # noqa: E402
from vggt_t_mv.loading import LoadedModel, Provenance  # noqa: E402
from vggt_t_mv.model import Predictions  # noqa: E402

# --------------------------------------------------------------------------------------------- capture
ENCODERS = ("auto", "ffmpeg", "opencv")


def ffmpeg_executable() -> str | None:
    """``ffmpeg`` on PATH, else the ``imageio-ffmpeg`` package's binary, else None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_capture(
    folder: Path, num_timesteps: int, num_cameras: int, size: tuple[int, int] = (1920, 1080), encoder: str = "auto"
) -> tuple[Path, str]:
    """``folder/cam{n}.mp4`` with ``num_timesteps`` frames per camera and a line naming how it was encoded.

    ``ffmpeg`` (``encoder`` ffmpeg, or auto when one is found): ffmpeg's ``testsrc2`` pattern (hue rotated per
    camera), H.264 (x264 veryfast, 12 Mbit/s, yuv420p, 30 fps). ``opencv`` (auto without ffmpeg): a generated moving
    pattern written by OpenCV's ``VideoWriter`` (H.264 where the OpenCV build has an encoder for it, else MPEG-4 part
    2, which decodes faster than H.264: the ratio is then not comparable with an H.264 capture's). Reused when already
    there with the frame count."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    executable = ffmpeg_executable() if encoder in ("auto", "ffmpeg") else None
    if encoder == "ffmpeg" and executable is None:
        raise SystemExit(
            "--encoder ffmpeg: no ffmpeg found; install it (apt-get install ffmpeg, or `pip install imageio-ffmpeg`), "
            "or use --encoder opencv"
        )
    kind = "ffmpeg" if executable is not None else "opencv"
    stamp = folder / f".made-{kind}-{num_timesteps}x{num_cameras}-{width}x{height}"
    if stamp.exists():
        return folder, stamp.read_text()
    if executable is not None:
        for n in range(num_cameras):
            source = f"testsrc2=size={width}x{height}:rate=30,hue=h={n * 90}"
            command = [executable, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source]
            command += ["-frames:v", str(num_timesteps), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "12M"]
            command += ["-pix_fmt", "yuv420p", str(folder / f"cam{n}.mp4")]
            subprocess.run(command, check=True)
        how = "H.264 by ffmpeg (x264 veryfast, 12 Mbit/s, testsrc2)"
    else:
        how = write_opencv_capture(folder, num_timesteps, num_cameras, size)
    stamp.write_text(how)
    return folder, how


def can_write(codec: str, size: tuple[int, int]) -> bool:
    """OpenCV's ``VideoWriter`` opens an ``.mp4`` with this FourCC here (pip builds often lack an H.264 encoder)."""
    import cv2

    with tempfile.TemporaryDirectory() as folder:
        writer = cv2.VideoWriter(str(Path(folder) / "probe.mp4"), cv2.VideoWriter_fourcc(*codec), 30.0, size)
        opened = writer.isOpened()
        writer.release()
    return opened


def write_opencv_capture(folder: Path, num_timesteps: int, num_cameras: int, size: tuple[int, int]) -> str:
    """Write the capture with OpenCV's ``VideoWriter`` (no ffmpeg needed): per camera a textured pattern with a
    moving disc and a frame counter, its colours rotated per camera. Returns what it encoded with."""
    import cv2

    width, height = size
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(u / 23.0), np.cos(v / 17.0), np.sin((u + v) / 41.0)]
    base = np.stack([127 + 120 * c for c in channels], -1)
    codecs = [(codec, name) for codec, name in (("avc1", "H.264"), ("mp4v", "MPEG-4 part 2")) if can_write(codec, size)]
    if not codecs:
        raise SystemExit("OpenCV's VideoWriter can write neither H.264 nor MPEG-4 here; install ffmpeg")
    codec, name = codecs[0]
    for n in range(num_cameras):
        writer = cv2.VideoWriter(str(folder / f"cam{n}.mp4"), cv2.VideoWriter_fourcc(*codec), 30.0, (width, height))
        pattern = np.roll(base, n, axis=-1).astype(np.uint8)
        for t in range(num_timesteps):
            frame = np.roll(pattern, 8 * t, axis=1)
            centre = (int(width * (0.2 + 0.6 * t / max(num_timesteps - 1, 1))), height // 2)
            cv2.circle(frame, centre, height // 6, (255 - 60 * n, 40 * n, 200), -1)
            cv2.putText(frame, f"cam{n} {t:05d}", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
            writer.write(frame)
        writer.release()
    return f"{name} by OpenCV's VideoWriter ({codec}; no ffmpeg used)"


# --------------------------------------------------------------------------------------------- model
class ZeroCostModel(torch.nn.Module):
    """Returns precomputed :class:`~vggt_t_mv.model.Predictions` for ``[1, T, N, 3, H, W]`` input, instantly.

    Outputs (float32, the real model's keys and shapes): ``pose_enc [1, T, N, 9]``, ``depth [1, T, N, H, W, 1]``,
    ``depth_conf``, ``world_points [.., 3]``, ``world_points_conf``, ``dynamic_mask [1, T, N, H, W]``. A static rig
    of ``N`` cameras 15 deg apart looks at a textured surface 2.5-3.5 units away, with a blob that moves over
    time; the point map is the depth unprojected plus fixed noise. Calls alternate between two variants, the
    second moved by a fixed Sim(3) (scale 1.1, 5 deg, translation), so consecutive windows need a real fit.
    The precomputed tensors are shared between calls: the pipeline must not write into model outputs
    (:meth:`fingerprint` checks it).
    """

    def __init__(self, window: int, num_cameras: int, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.shape = (window, num_cameras, *image_hw)
        self.variants = [self._outputs(window, num_cameras, image_hw, moved) for moved in (False, True)]
        self.calls = 0

    @staticmethod
    def _outputs(window: int, num_cameras: int, image_hw: tuple[int, int], moved: bool) -> dict[str, torch.Tensor]:
        height, width = image_hw
        generator = torch.Generator().manual_seed(0)
        angles = torch.deg2rad(torch.arange(num_cameras, dtype=torch.float64) * 15.0)
        rotation = torch.zeros(num_cameras, 3, 3, dtype=torch.float64)
        rotation[:, 0, 0], rotation[:, 0, 2] = torch.cos(angles), -torch.sin(angles)
        rotation[:, 2, 0], rotation[:, 2, 2] = torch.sin(angles), torch.cos(angles)
        rotation[:, 1, 1] = 1.0
        centres = torch.stack([torch.sin(angles) * 0.8, torch.zeros_like(angles), 1 - torch.cos(angles)], -1)
        translation = -(rotation @ centres[..., None])[..., 0]
        extrinsics = torch.cat([rotation, translation[..., None]], -1)  # camera-from-world, camera 0 = identity
        focal = 0.9 * width
        intrinsics = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=torch.float64)
        intrinsics = intrinsics.expand(num_cameras, 3, 3)
        v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64))
        texture = 3.0 + 0.3 * torch.sin(u / 37.0) * torch.cos(v / 23.0)
        t = torch.arange(window, dtype=torch.float64)[:, None, None, None]
        blob_u = width * (0.3 + 0.4 * t / max(window - 1, 1))
        blob = torch.exp(-((u - blob_u) ** 2 + (v - height / 2) ** 2) / (2 * (height / 8) ** 2))  # [T, 1, H, W]
        depth = (texture - 0.5 * blob).expand(window, num_cameras, height, width)
        ext = extrinsics.expand(window, num_cameras, 3, 4)
        k = intrinsics.expand(window, num_cameras, 3, 3)
        points = depth_to_world_points(depth, ext, k)
        points = points + 0.01 * torch.randn(points.shape, generator=generator, dtype=torch.float64)
        if moved:  # y = s R x + t for the points; cameras x_cam' = s (R_c R^T) y + ... (depth scales by s)
            scale, theta = 1.1, np.radians(5.0)
            sim_r = torch.tensor(
                [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]], dtype=torch.float64
            )
            sim_t = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
            points = scale * points @ sim_r.T + sim_t
            new_rot = ext[..., :3] @ sim_r.T
            new_trans = scale * ext[..., 3] - (new_rot @ sim_t[:, None])[..., 0]
            ext = torch.cat([new_rot, new_trans[..., None]], -1)
            depth = depth * scale
        pose_enc = extri_intri_to_pose_encoding(ext, k, image_hw)
        conf = 1.0 + 4.0 * torch.rand(window, num_cameras, height, width, generator=generator, dtype=torch.float64)
        outputs = {
            "pose_enc": pose_enc,
            "depth": depth[..., None],
            "depth_conf": conf,
            "world_points": points,
            "world_points_conf": conf.flip(-1),
            "dynamic_mask": blob.expand(window, num_cameras, height, width),
        }
        return {name: value.float().contiguous()[None] for name, value in outputs.items()}

    def forward(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Predictions:
        """``images [1, T, N, 3, H, W]`` (T <= window) -> the precomputed predictions of ``T`` timesteps."""
        steps = images.shape[1]
        if tuple(images.shape[2:3]) + tuple(images.shape[-2:]) != (self.shape[1], *self.shape[2:]) or (
            steps > self.shape[0]
        ):
            raise ValueError(f"ZeroCostModel made for [1, <={self.shape[0]}, {self.shape[1:]}], got {images.shape}")
        variant = self.variants[self.calls % 2]
        self.calls += 1
        outputs = {name: value[:, :steps] for name, value in variant.items()}
        return Predictions(pose_enc_list=[outputs["pose_enc"]], images=images, **outputs)

    def fingerprint(self) -> float:
        return float(sum(v.double().sum() for variant in self.variants for v in variant.values()))


def stand_in(window: int, num_cameras: int, image_hw: tuple[int, int]) -> LoadedModel:
    """The stand-in wrapped like :func:`vggt_t_mv.load_model`'s result (meta.json says what it is)."""
    config = ModelConfig.tiny()
    provenance = Provenance(config, "benchmarks/pipeline_ceiling.py ZeroCostModel", random_weights=True)
    return LoadedModel(ZeroCostModel(window, num_cameras, image_hw), config, None, provenance)


# --------------------------------------------------------------------------------------------- timing
def time_decode(capture: RigCapture, prefetch: int) -> tuple[float, float, int]:
    """Wall and process CPU seconds to decode every frame of every timestep through the pipeline's own reader, and
    the frame count."""
    tic, cpu = time.perf_counter(), time.process_time()
    count = 0
    for _, frames in capture.iter_timesteps(range(capture.num_timesteps), prefetch=prefetch):
        count += len(frames)
    return time.perf_counter() - tic, time.process_time() - cpu, count


def run_once(capture_path: Path, out: Path, args: argparse.Namespace) -> dict:
    preprocess = PreprocessConfig(size=args.size, mode="crop")
    config = PipelineConfig(window=args.window, stride=args.stride, device=args.device, preprocess=preprocess)
    capture = RigCapture.open(capture_path)
    image_hw = plan_run(capture, config).image_hw
    loaded = stand_in(args.window, capture.num_cameras, image_hw)
    before = loaded.model.fingerprint()
    tic, cpu = time.perf_counter(), time.process_time()
    prepared = prepare_reconstruction(capture, out, loaded, config, overwrite=True)
    result = prepared.run()
    seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
    if loaded.model.fingerprint() != before:
        raise SystemExit("the pipeline wrote into the model's output tensors (it must copy what it changes)")
    files = [p for p in out.rglob("*") if p.is_file()]
    disk = sum(p.stat().st_size for p in files)
    by_name: dict[str, int] = {}
    for path in files:
        name = path.name if path.parent.parent.name == "windows" else "other"
        by_name[name] = by_name.get(name, 0) + path.stat().st_size
    frames = capture.num_timesteps * capture.num_cameras
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "frames": frames,
        "windows": len(prepared.plan.spans),
        "image_hw": prepared.plan.image_hw,
        "stages": result.stage_seconds,
        "stage_cpu": result.stage_cpu_seconds,
        "disk_bytes": disk,
        "disk_by_name": by_name,
    }


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"{model}, nproc {os.cpu_count()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="48 timesteps, one round (< 1 min on 2 cores)")
    parser.add_argument("--timesteps", type=int, default=None, help="timesteps of the generated capture (120)")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--capture", type=Path, default=None, help="use this capture folder instead of generating")
    parser.add_argument("--size", type=int, default=518, help="model input width")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--stride", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=None, help="decode + pipeline rounds, best kept (2)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the capture here (default: a temp folder)")
    parser.add_argument(
        "--encoder", choices=ENCODERS, default="auto", help="who writes the capture: ffmpeg (H.264), opencv, auto"
    )
    args = parser.parse_args()
    timesteps = args.timesteps or (48 if args.quick else 120)
    rounds = args.rounds or (1 if args.quick else 2)
    warnings.simplefilter("ignore")
    allocator = "glibc malloc keeps freed blocks" if keep_freed_memory() else "default allocator"  # as the pipeline
    work = Path(tempfile.mkdtemp(prefix="pipeline-ceiling-")) if args.workdir is None else args.workdir
    try:
        tic = time.perf_counter()
        if args.capture is not None:
            capture_path, how = args.capture, "given"
        else:
            capture_path, how = make_capture(work / "capture", timesteps, args.cameras, encoder=args.encoder)
        made = time.perf_counter() - tic
        capture = RigCapture.open(capture_path)
        source = capture.sources[0]
        print(f"machine: {machine()}; {allocator} (for plain decoding too)")
        print(
            f"capture: {capture_path} ({capture.num_cameras} cameras, {capture.num_timesteps} timesteps, "
            f"{source.width}x{source.height}, {how}; ready in {made:.1f} s)"
        )
        decode_runs, pipeline_runs = [], []
        for _ in range(rounds):
            decode_runs.append(time_decode(capture, PipelineConfig().prefetch))
            out = work / "recon"
            pipeline_runs.append(run_once(capture_path, out, args))
            shutil.rmtree(out, ignore_errors=True)
        decode_seconds, decode_cpu, decoded = min(decode_runs)
        best = min(pipeline_runs, key=lambda r: r["seconds"])
        frames, seconds = best["frames"], best["seconds"]
        if decoded != frames:
            raise SystemExit(f"decoded {decoded} frames but the pipeline read {frames}")
        height, width = best["image_hw"]
        print(
            f"pipeline: model input {height}x{width}, window {args.window}, stride {args.stride}, "
            f"{best['windows']} windows, device {args.device}, {rounds} round(s), best kept"
        )
        disk = best["disk_bytes"]
        print(f"on disk: {disk / 1e6:.1f} MB ({disk / frames / 1e6:.2f} MB per camera image)")
        parts = sorted(best["disk_by_name"].items(), key=lambda item: -item[1])
        shares = ", ".join(f"{name} {size / frames / 1e6:.3f}" for name, size in parts)
        print(f"per file, MB per camera image: {shares}")
        print()
        print("| stage | seconds | ms per camera image | share of wall | CPU ms per camera image |")
        print("|---|---:|---:|---:|---:|")
        for stage in STAGES:
            value, cpu = best["stages"].get(stage, 0.0), best["stage_cpu"].get(stage, 0.0)
            share = f"{100 * value / seconds:.0f} %"
            print(f"| {stage} | {value:.2f} | {1000 * value / frames:.2f} | {share} | {1000 * cpu / frames:.2f} |")
        summed, summed_cpu = sum(best["stages"].values()), sum(best["stage_cpu"].values())
        share = f"{100 * summed / seconds:.0f} % | {1000 * summed_cpu / frames:.2f}"
        print(f"| sum of stages | {summed:.2f} | {1000 * summed / frames:.2f} | {share} |")
        print(f"| pipeline wall | {seconds:.2f} | {1000 * seconds / frames:.2f} | 100 % | |")
        plain = f"{decode_seconds:.2f} | {1000 * decode_seconds / frames:.2f}"
        print(f"| plain decode (same frames, same reader) | {plain} | | {1000 * decode_cpu / frames:.2f} |")
        print()
        print(
            f"process CPU: pipeline {best['cpu_seconds']:.2f} s ({1000 * best['cpu_seconds'] / frames:.2f} ms per "
            f"camera image), plain decode {decode_cpu:.2f} s ({1000 * decode_cpu / frames:.2f} ms per camera image)"
        )
        decode_fps, pipeline_fps = decoded / decode_seconds, frames / seconds
        ratio = pipeline_fps / decode_fps
        print(
            f"RESULT decode_fps={decode_fps:.1f} pipeline_fps={pipeline_fps:.1f} ratio={ratio:.3f} "
            f"mb_per_image={disk / frames / 1e6:.2f}"
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
