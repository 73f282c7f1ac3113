"""Reconstruction -> files for other tools, without click: ``export_reconstruction`` (:mod:`.api`), the pixel
filter and voxel downsampler shared with the viewer (:mod:`.selection`), point/camera formats (:mod:`.formats`),
meshes (:mod:`.mesh`), COLMAP models (:mod:`.colmap`) and Gaussian splats (:mod:`.splat`). Import from the modules."""
