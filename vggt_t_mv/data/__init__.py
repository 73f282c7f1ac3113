"""Data utilities: procedural multi-camera rigs with ground truth (:mod:`vggt_t_mv.data.synthetic`).

Importing this package loads neither open3d nor OpenCV; the functions that need them import them lazily.
"""

from vggt_t_mv.data.synthetic import (
    SyntheticRig,
    SyntheticRigConfig,
    demo_rig_config,
    load_ground_truth,
    make_synthetic_rig,
    write_capture,
)

__all__ = [
    "SyntheticRig",
    "SyntheticRigConfig",
    "demo_rig_config",
    "load_ground_truth",
    "make_synthetic_rig",
    "write_capture",
]
