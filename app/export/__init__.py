"""Reconstruction -> files for other tools, without click: :func:`export_reconstruction` (:mod:`.api`), the pixel
selection shared with the viewer (:mod:`.selection`), point/camera formats (:mod:`.formats`), meshes (:mod:`.mesh`)
and COLMAP models (:mod:`.colmap`)."""

from app.export.api import ExportOptions, export_reconstruction
from app.export.selection import ExportError, Selection

__all__ = ["ExportError", "ExportOptions", "Selection", "export_reconstruction"]
