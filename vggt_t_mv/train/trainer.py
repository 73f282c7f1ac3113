"""The training loop: single process or ``torchrun`` (DistributedDataParallel), resumable.

Output folder ``run.out``::

    config.json                 the TrainConfig of the run
    metrics.jsonl               one JSON record per logged step (``"split": "train"``: loss terms averaged over
                                processes, lr, speed) and per validation (``"split": "val"``: every evaluation
                                metric, :mod:`vggt_t_mv.train.validation`)
    loss_curve.png              total and per-term losses, and the validation metrics (needs matplotlib)
    best/                       the weights with the best validation metric so far (save_pretrained + best.json)
    checkpoints/step_000200/    model.safetensors + config.json (save_pretrained) + training_state.pt
                                (optimizer, schedule, step, RNG states, the TrainConfig)
    final/                      the last weights (save_pretrained) + train_config.json + metrics.json
    summary.json                steps, final loss, wall time, per-process weight checksums

Data order is a function of the step alone (a :class:`~torch.utils.data.DistributedSampler` per epoch, the step's
slice of it), so ``--resume`` continues exactly where the checkpoint left off; ``data.num_workers`` loader processes
cut the windows of the coming steps ahead of the model (the same windows in the same order).

The data is the config's (synthetic rigs or recorded samples) or the sequences a caller passes as
:class:`TrainingData`: the app reads dataset roots with its capture readers and hands them over that way, so the
library never reads an app layout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from vggt_t_mv.distributed import DistContext
from vggt_t_mv.loading import ModelLoadError, load_model
from vggt_t_mv.model import VGGTTMV
from vggt_t_mv.train.config import DEFAULT_PRESET, AmpMode, ModelSection, OptimConfig, TrainConfig
from vggt_t_mv.train.dataset import (
    Sample,
    SequenceSource,
    WindowDataset,
    build_sequences,
    collate,
    noisy_masks,
    resolve_window_size,
)
from vggt_t_mv.train.freeze import FreezeSummary, apply_freeze_policy
from vggt_t_mv.train.losses import TERM_NAMES, compute_loss
from vggt_t_mv.train.state import read_training_state, restore_rng_states, rng_states, write_training_state
from vggt_t_mv.train.validation import (
    BestCheckpoint,
    format_validation,
    split_holdout,
    validate,
    validation_windows,
)
from vggt_t_mv.weights import CheckpointError, load_pretrained, read_saved_input_hw, save_pretrained

STATE_FILE = "training_state.pt"
CHECKPOINTS = "checkpoints"


# ------------------------------------------------------------------------------------------------------ processes
def setup_distributed(device_name: str) -> tuple[DistContext, torch.device]:
    """Read torchrun's environment and join the process group (``nccl`` on CUDA, ``gloo`` on CPU); returns the
    process context and its device (``auto``: this rank's GPU when there is one, else the CPU)."""
    ctx = DistContext.from_env()
    name = ctx.device_name(device_name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    ctx.join(device)
    return ctx, device


# ---------------------------------------------------------------------------------------------------------- model
def model_request(section: ModelSection) -> dict[str, Any]:
    """The :func:`~vggt_t_mv.load_model` arguments of a model section (rule in :class:`ModelSection`)."""
    has_weights = bool(section.pretrained or section.checkpoint or section.pi3)
    config = None if section.pretrained else (section.config_file or section.preset)
    if config is None and not has_weights:
        config = DEFAULT_PRESET
    return {
        "config": config,
        "checkpoint": section.pretrained or section.checkpoint,
        "pi3": section.pi3,
        "random_weights": True,
        "overrides": dict(section.overrides),
    }


def trained_width(section: ModelSection) -> int | None:
    """The input width a ``save_pretrained`` folder among the section's weights was trained at, if it says."""
    for source in (section.pretrained, section.checkpoint):
        if source and Path(source).is_dir():
            try:
                hw = read_saved_input_hw(source)
            except CheckpointError:
                return None
            if hw is not None:
                return hw[1]
    return None


def build_model(section: ModelSection, seed: int = 0) -> tuple[VGGTTMV, list[str] | None, str]:
    """The model of ``section`` with its weights loaded; returns it, the names with no pretrained source (None when
    nothing was loaded) and a one-line description of where the weights came from."""
    try:
        loaded = load_model(**model_request(section), seed=seed, checksums=False)
    except ModelLoadError as error:
        raise ValueError(f"model section: {error}") from error
    if loaded.report is None:
        return loaded.model, None, "random initialisation"
    return loaded.model, loaded.report.new, loaded.report.summary()


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices, none on biases, norms, tokens and scalars (1-D or 0-D tensors)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Multiplier of ``cfg.lr`` at ``step``: linear warmup over ``warmup_steps``, then cosine to ``min_lr_ratio``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def weights_checksum(model: nn.Module) -> str:
    """SHA-256 over every state-dict tensor's name and bytes (identical weights <=> identical checksum)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------------------ data
class StepBatches:
    """The batch of every step: epoch ``e = step // steps_per_epoch`` shuffles with ``DistributedSampler.set_epoch(e)``
    and step ``step % steps_per_epoch`` takes its ``batch_size`` consecutive indices of this process's share."""

    def __init__(self, dataset: WindowDataset, batch_size: int, info: DistContext, seed: int) -> None:
        self.dataset, self.batch_size = dataset, batch_size
        self.sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.steps_per_epoch = len(self.sampler) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(dataset)} windows are too few for batch size {batch_size} on {info.world_size} processes"
            )
        self._epoch = -1
        self._order: list[int] = []

    def indices(self, step: int) -> list[int]:
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(iter(self.sampler))
        return self._order[position * self.batch_size : (position + 1) * self.batch_size]

    def batch(self, step: int) -> Sample:
        return collate([self.dataset[i] for i in self.indices(step)])

    def loader(self, first: int, last: int, workers: int) -> Any:
        """The batches of steps ``first .. last - 1`` in order; with ``workers`` > 0 cut ahead by that many loader
        processes (at most one per CPU core, each with one torch thread), else here."""
        workers = min(workers, os.cpu_count() or 1)
        if workers <= 0:
            return (self.batch(step) for step in range(first, last))
        steps = [self.indices(step) for step in range(first, last)]
        return iter(
            DataLoader(
                self.dataset,
                batch_sampler=steps,
                num_workers=workers,
                collate_fn=collate,
                worker_init_fn=_one_thread,
                prefetch_factor=2,
            )
        )


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------------- checkpoints
def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith("step_") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def trained_input_hw(cfg: TrainConfig) -> tuple[int, int]:
    """``(height, width)`` of the training windows' images (recorded in every saved weights folder)."""
    height, width = cfg.data.window.height, cfg.data.window.width
    if height is None or width is None:
        raise ValueError("the training window size is set before training starts (resolve_window_size)")
    return height, width


def save_checkpoint(out: Path, step: int, model: nn.Module, optimizer, scheduler, cfg: TrainConfig) -> Path:
    """Write ``checkpoints/step_<step>/`` atomically (a temporary folder renamed when complete)."""
    final = out / CHECKPOINTS / f"step_{step:06d}"
    temporary = final.with_name(final.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    save_pretrained(model, temporary, trained_input_hw(cfg))
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "config": cfg.to_dict(),
        "rng": rng_states(),
    }
    write_training_state(temporary / STATE_FILE, state)
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    for old in checkpoint_dirs(out)[: -max(cfg.run.keep_last, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, model: nn.Module, optimizer, scheduler) -> int:
    """Restore weights, optimizer, schedule and RNG states from a checkpoint folder; returns its step. The state
    file is read with ``weights_only=True`` (:func:`~vggt_t_mv.train.state.read_training_state`) before anything
    is changed; a file that needs unpickling is refused with a :class:`TrainingStateError`."""
    state = read_training_state(folder / STATE_FILE)
    load_pretrained(model, folder, strict=True, checkpoint_layout="ours")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng_states(state["rng"])
    return int(state["step"])


# ------------------------------------------------------------------------------------------------------- the loop
@dataclass
class TrainingData:
    """Sequences handed to :func:`train` instead of the config's ``data`` (the app's dataset roots): ``train`` and,
    optionally, held-out ``val`` sequences (None: held out from ``train`` as ``val`` of the config says)."""

    train: Sequence[SequenceSource]
    val: Sequence[SequenceSource] | None = None
    description: str = ""


@dataclass
class TrainResult:
    out: Path
    steps: int
    final_loss: float | None
    seconds: float
    checksums: list[str] = field(default_factory=list)  # per process, at the end
    freeze: FreezeSummary | None = None
    best: BestCheckpoint | None = None


def _external_masks(batch: Sample, cfg: TrainConfig, step: int, rank: int) -> Any:
    """Noisy ground-truth masks as external input in a ``data.external_mask_prob`` share of steps, else None. The
    choice depends on the step only (all processes agree); the noise differs per process."""
    if cfg.data.external_mask_prob <= 0:
        return None
    choice = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + step)
    if torch.rand((), generator=choice).item() >= cfg.data.external_mask_prob:
        return None
    noise = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + step * 7919 + 104_729 * (rank + 1))
    return noisy_masks(batch.dynamic_masks, cfg.data.external_mask_noise, noise)


def _autocast(device: torch.device, amp: AmpMode):
    if amp not in ("auto", "bf16", "off"):
        raise ValueError(f"run.amp must be 'auto', 'bf16' or 'off', got {amp!r}")
    enabled = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train(
    cfg: TrainConfig,
    resume: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
    data: TrainingData | None = None,
) -> TrainResult:
    """Train as ``cfg`` says. ``resume``: continue from the newest checkpoint in ``cfg.run.out``. ``stop_after``:
    stop (and checkpoint) after this many steps in total, without changing the schedule (for tests and time limits).
    ``data``: the sequences to train on (else the config's synthetic rigs or recorded samples). Under ``torchrun``
    every process calls this; only rank 0 writes files and validates."""
    start_time = time.time()
    info, device = setup_distributed(cfg.run.device)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    out = Path(cfg.run.out)
    say = log if info.is_main else (lambda _text: None)
    try:
        torch.manual_seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        random.seed(cfg.run.seed)
        model, new_names, source = build_model(cfg.model, seed=cfg.run.seed)
        say(f"weights: {source}")
        summary = apply_freeze_policy(model, cfg.model.freeze, new_names)
        say(summary.table())
        say(summary.line())
        if summary.num_trainable == 0:
            raise ValueError(
                f"freeze policy {summary.policy!r} leaves nothing to train (the weights fill every tensor); set "
                "model.freeze to streams or all (or auto)"
            )
        model.aggregator.gradient_checkpointing = cfg.model.gradient_checkpointing
        model.to(device).train()
        sequences = list(data.train) if data is not None else build_sequences(cfg.data)
        if not sequences:
            raise ValueError("no training sequence: give data (data.roots / --data ROOT, data.folder or synthetic)")
        window = resolve_window_size(cfg.data.window, sequences[0].image_hw, trained_width(cfg.model))
        cfg.data.window = window
        holdout = None
        if cfg.val.every > 0:
            holdout = split_holdout(sequences, data.val if data is not None else None, cfg.val.fraction, window)
            sequences = holdout.train
        dataset = WindowDataset(sequences, window)
        batches = StepBatches(dataset, cfg.data.batch_size, info, cfg.run.seed)
        if data is not None and data.description:
            say(f"data: {data.description}")
        say(
            f"data: {len(dataset)} windows of {window.timesteps} timesteps x {window.cameras} cameras at "
            f"{window.height}x{window.width} px, {batches.steps_per_epoch} steps per epoch and process, "
            f"{min(cfg.data.num_workers, os.cpu_count() or 1)} loader process(es)"
        )
        val_windows, best = None, None
        if holdout is not None:
            val_windows = validation_windows(holdout.val, window, cfg.val.max_windows)
            best = BestCheckpoint(out, cfg.val.metric)
            say(
                f"validation: {holdout.description}, {len(val_windows)} window(s), every {cfg.val.every} steps; best "
                f"{cfg.val.metric} kept in {out / best.folder.name}"
            )
        betas = (float(cfg.optim.betas[0]), float(cfg.optim.betas[1]))
        optimizer = torch.optim.AdamW(parameter_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr, betas=betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg.optim))
        step = 0
        if resume:
            found = checkpoint_dirs(out)
            if not found:
                raise FileNotFoundError(f"--resume: no checkpoint in {out / CHECKPOINTS}")
            step = load_checkpoint(found[-1], model, optimizer, scheduler)
            say(f"resumed from {found[-1]} at step {step}")
            if best is not None:
                best.restore()
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            _truncate_metrics(out / "metrics.jsonl", step)
        runner: nn.Module = model
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            runner = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
        last = cfg.optim.max_steps if stop_after is None else min(stop_after, cfg.optim.max_steps)
        final_loss, tick, window_losses = None, time.time(), []
        loader = batches.loader(step, last, cfg.data.num_workers)
        while step < last:
            batch = next(loader).to(device)
            masks = _external_masks(batch, cfg, step, info.rank)
            with _autocast(device, cfg.run.amp):
                preds = runner(batch.images, masks=masks)
            loss = compute_loss(preds, batch, cfg.loss, external_masks=masks is not None)
            if not torch.isfinite(loss.total):
                raise FloatingPointError(f"loss is {loss.total.item()} at step {step}: {loss.terms}")
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], cfg.optim.grad_clip
            )
            optimizer.step()
            scheduler.step()
            step += 1
            window_losses.append(loss.total.item())
            if step % cfg.run.log_every == 0 or step == last:
                record = _log_record(loss, grad_norm, step, scheduler, info, tick, len(window_losses), window_losses)
                final_loss, tick, window_losses = record["loss"], time.time(), []
                if info.is_main:
                    with open(out / "metrics.jsonl", "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    say(_format_record(record))
            if val_windows is not None and best is not None and (step % cfg.val.every == 0 or step == last):
                if info.is_main:
                    record = validate(model, val_windows, step)
                    with open(out / "metrics.jsonl", "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    kept = best.offer(record, model, trained_input_hw(cfg))
                    say(format_validation(record) + (f"; best {cfg.val.metric} so far, saved" if kept else ""))
                if info.enabled:
                    dist.barrier()
            if step % cfg.run.save_every == 0 or step == last:
                if info.is_main:
                    save_checkpoint(out, step, model, optimizer, scheduler, cfg)
                    plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
                if info.enabled:
                    dist.barrier()
        checksums = [weights_checksum(model)]
        if info.enabled:
            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, checksums[0])
            checksums = list(gathered)
        seconds = time.time() - start_time
        if info.is_main and step >= cfg.optim.max_steps:
            save_pretrained(model, out / "final", trained_input_hw(cfg))
            (out / "final" / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        if info.is_main:
            summary_data = {
                "steps": step,
                "final_loss": final_loss,
                "seconds": seconds,
                "world_size": info.world_size,
                "checksums": checksums,
                "trainable_parameters": summary.num_trainable,
                "total_parameters": summary.num_total,
                "freeze": summary.line(),
                "best": None
                if best is None or best.step is None
                else {"metric": best.metric, "value": best.value, "step": best.step},
            }
            (out / "summary.json").write_text(json.dumps(summary_data, indent=2) + "\n")
        return TrainResult(out, step, final_loss, seconds, checksums, summary, best)
    finally:
        info.shutdown()


def _log_record(loss, grad_norm, step, scheduler, info: DistContext, tick, steps, window_losses) -> dict[str, Any]:
    """Loss terms of this step averaged over the processes that have them, plus the mean total since the last
    record (every process sends the same fixed-size vector: a value and a presence flag per possible term)."""
    names = TERM_NAMES
    values = torch.zeros(2 * len(names) + 1, dtype=torch.float64)
    for i, name in enumerate(names):
        if name in loss.terms:
            values[2 * i], values[2 * i + 1] = loss.terms[name].item(), 1.0
    values[-1] = float(np.mean(window_losses))
    if info.enabled:
        dist.all_reduce(values)
    record: dict[str, Any] = {"step": step, "split": "train", "loss": float(values[-1]) / info.world_size}
    for i, name in enumerate(names):
        if values[2 * i + 1] > 0:
            record[name] = float(values[2 * i] / values[2 * i + 1])
    record.update(lr=scheduler.get_last_lr()[0], grad_norm=float(grad_norm), s_per_step=(time.time() - tick) / steps)
    return record


def _format_record(record: dict[str, Any]) -> str:
    skip = ("step", "split", "loss", "lr", "s_per_step")
    terms = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k not in skip)
    head = f"step {record['step']:>6} loss {record['loss']:.4f} lr {record['lr']:.2e}"
    return f"{head} {record['s_per_step']:.2f}s/it {terms}"


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss_curve(metrics: Path, png: Path) -> Path | None:
    """Plot the total loss and every term of ``metrics.jsonl`` against the step (log scale); None without
    matplotlib or records."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed: no loss-curve PNG", stacklevel=2)
        return None
    from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER

    everything = read_metrics(metrics) if metrics.is_file() else []
    records = [r for r in everything if r.get("split", "train") == "train"]
    validations = [r for r in everything if r.get("split") == "val"]
    if not records:
        return None
    skip = {"step", "split", "lr", "grad_norm", "s_per_step"}
    names = [k for k in records[-1] if k not in skip]
    steps = [r["step"] for r in records]
    columns = 3 if validations else 2
    figure, axes = plt.subplots(1, columns, figsize=(6 * columns, 4.5))
    ax_total, ax_terms = axes[0], axes[1]
    ax_total.plot(steps, [r["loss"] for r in records], color="black")
    ax_total.set(title="total loss", xlabel="step", yscale="symlog")
    for name in names:
        if name != "loss":
            ax_terms.plot(steps, [abs(r.get(name, float("nan"))) for r in records], label=name)
    ax_terms.set(title="loss terms (|value|)", xlabel="step", yscale="log")
    ax_terms.legend(fontsize=7, ncol=2)
    if validations:
        ax_val = axes[2]
        val_steps = [r["step"] for r in validations]
        for name in HIGHER_IS_BETTER:
            values = [r.get(name) for r in validations]
            if any(v is not None for v in values):
                arrow = "↑" if HIGHER_IS_BETTER[name] else "↓"
                points = [float("nan") if v is None else v for v in values]
                ax_val.plot(val_steps, points, marker="o", markersize=3, label=f"{name} {arrow}")
        ax_val.set(title="validation (held-out windows)", xlabel="step", yscale="symlog")
        ax_val.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(png, dpi=90)
    plt.close(figure)
    return png
