"""Evaluation: metrics (:mod:`vggt_t_mv.eval.metrics`, pure numpy), runners over ground-truth windows
(:mod:`vggt_t_mv.eval.runner`). The loaders of the public ground-truth sets are :mod:`vggt_t_mv.data.realdata`."""
