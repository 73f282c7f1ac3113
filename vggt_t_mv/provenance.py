"""Where a model came from: :class:`Provenance`, what :func:`vggt_t_mv.load_model` returns with the model and what a
reconstruction records. Light on purpose (no model, no torch network modules), so records can be read without
them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from vggt_t_mv.config import ModelConfig

RANDOM_WEIGHTS_SEED = 0  # torch.manual_seed before a model is built: the tensors no source fills are reproducible
WeightsKind = Literal["file", "folder"]  # a checkpoint file, or a save_pretrained folder
SOURCE_LABELS = ("checkpoint", "pi3")  # the weight sources a model is loaded from, in priority order


@dataclass
class WeightSource:
    """One source of weights: its absolute ``path``, ``kind``, the ``layout`` detected in it (None when not loaded:
    ``random_weights``) and ``sha256`` (None when checksums were off)."""

    path: str
    kind: WeightsKind
    layout: str | None = None
    sha256: str | None = None


@dataclass
class Provenance:
    """Where a model came from: its ``config`` and where that came from (``config_origin``), the weight ``sources``
    by label (``checkpoint``, ``pi3``), ``random_weights`` (+ the ``seed`` construction used) and the one-line
    ``load_report`` (:meth:`LoadReport.summary`, None with random weights).

    :meth:`to_dict` is the form a reconstruction's ``meta.json`` stores as ``model`` (``config``, ``architecture``,
    ``random_weights``, ``seed`` when random, ``load_report``, ``config_origin`` and per source ``<label>``,
    ``<label>_sha256``, ``<label>_kind``, ``<label>_layout``); :meth:`from_dict` reads it back."""

    config: ModelConfig
    config_origin: str
    random_weights: bool
    seed: int = RANDOM_WEIGHTS_SEED
    sources: dict[str, WeightSource] = field(default_factory=dict)
    load_report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "config": self.config.to_dict(),
            "architecture": self.config.describe(),
            "random_weights": self.random_weights,
        }
        if self.random_weights:
            info["seed"] = self.seed
        if self.load_report is not None:
            info["load_report"] = self.load_report
        info["config_origin"] = self.config_origin
        for label, source in self.sources.items():
            info[label] = source.path
            if source.sha256:
                info[f"{label}_sha256"] = source.sha256
            info[f"{label}_kind"] = source.kind
            if source.layout:
                info[f"{label}_layout"] = source.layout
        return info

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict` (``architecture`` is derived from the config, not read). Raises ``ValueError``
        (or ``TypeError``) when ``config`` is not a :class:`ModelConfig` this version knows."""
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise ValueError("the model record has no config")
        sources = {}
        for label in SOURCE_LABELS:
            path = data.get(label)
            if isinstance(path, str):
                kind = data.get(f"{label}_kind")
                sources[label] = WeightSource(
                    path,
                    "folder" if kind == "folder" else "file",
                    data.get(f"{label}_layout"),
                    data.get(f"{label}_sha256"),
                )
        return cls(
            ModelConfig.from_dict(data["config"]),
            str(data.get("config_origin", "")),
            bool(data.get("random_weights", False)),
            int(data.get("seed", RANDOM_WEIGHTS_SEED)),
            sources,
            data.get("load_report"),
        )

    def same_weights(self, other: Provenance) -> bool:
        """``other`` describes the same model: the same config and the same weights (each source's path, kind,
        layout and digest; the seed when random). Where the config came from does not matter."""
        seed = (self.seed,) if self.random_weights else ()
        other_seed = (other.seed,) if other.random_weights else ()
        return (
            json.dumps(self.config.to_dict(), sort_keys=True) == json.dumps(other.config.to_dict(), sort_keys=True)
            and self.random_weights == other.random_weights
            and seed == other_seed
            and self.sources == other.sources
        )
