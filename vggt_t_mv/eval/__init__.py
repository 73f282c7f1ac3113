"""Evaluation: metrics (:mod:`vggt_t_mv.eval.metrics`, pure numpy), runners over ground-truth windows
(:mod:`vggt_t_mv.eval.runner`) and loaders of the public ground-truth sets (:mod:`vggt_t_mv.eval.realdata`)."""
