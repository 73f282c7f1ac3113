"""The model library stands alone: importing it pulls in no viewer or app code, and the benchmarks run."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.shared import REPO_ROOT


def test_model_library_imports_no_app_or_viewer_code() -> None:
    code = (
        "import sys, vggt_t_mv, vggt_t_mv.geometry; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'app', 'viser', 'open3d', 'trimesh', 'cv2'}); "
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == ""


def benchmark_rows(script: str, prefix: str = "| tiny") -> list[str]:
    """The table rows that ``benchmarks/<script> --quick`` prints."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--quick"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=300,
    )
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


def test_attention_cost_benchmark_runs_quick() -> None:
    rows = benchmark_rows("attention_cost.py")
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "4x2"
    assert all(float(c) > 0 for c in cells[2:])


def test_stream_cost_benchmark_runs_quick() -> None:
    rows = benchmark_rows("stream_cost.py")
    assert [row.split("|")[2].strip() for row in rows] == [
        "single stream",
        "two streams, shared, bias off",
        "two streams, shared",
        "two streams, branched",
    ]


def test_page4d_bias_benchmark_runs_quick() -> None:
    rows = benchmark_rows("page4d_bias.py")
    assert [row.split("|")[3].strip() for row in rows] == [
        "no bias",
        "PAGE-4D bias (ours)",
        "appended dimension",
        "dense L x L mask",
        "no bias",
        "PAGE-4D bias",
    ]


def test_gpu_benchmark_smoke_runs_without_the_app_dependencies() -> None:
    # Self-contained: PYTHONPATH=. and only vggt_t_mv / torch / numpy / safetensors imported.
    code = (
        "import runpy, sys; sys.argv = ['gpu.py', '--smoke']; "
        "runpy.run_path('benchmarks/gpu.py', run_name='__main__'); "
        "app_modules = {'app', 'viser', 'open3d', 'trimesh', 'cv2', 'click'}; "
        "print('IMPORTED:' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in app_modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True, timeout=300
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| vggt")]
    assert len(rows) == 6
    assert result.stdout.strip().endswith("IMPORTED:")
