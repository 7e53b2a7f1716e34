"""The GRADIEND encoder-decoder with one scalar feature, for several seeds at once.

For seed s and a flat gradient x ∈ ℝⁿ (the kept weights):

    h_s = tanh(W_e[s]·x + b_e[s])            (encoder, a scalar)
    dec_s(h) = h·W_d[s] + b_d[s] ∈ ℝⁿ        (decoder)

Training minimises the MSE  L_s = (1/n)·‖dec_s(h_s(x)) − t‖²  towards the target gradient t (∇±W) with
AdamW. Seeds are stacked as rows, so one gradient from the language model trains every seed and each
seed's parameters only ever see their own loss (AdamW is element-wise). The gradient of L_s is written
out by hand — with r = dec_s(h_s) − t:

    ∂L/∂W_d = (2/n)·h·r,  ∂L/∂b_d = (2/n)·r,  ∂L/∂h = (2/n)·W_d·r,
    ∂L/∂W_e = ∂L/∂h·(1 − h²)·x,  ∂L/∂b_e = ∂L/∂h·(1 − h²)

and applied chunk by chunk with the exact torch AdamW update, so no autograd graph and no full-size
gradient buffers exist (the encoder-decoder of a 135M-parameter model fits next to the model).

Initialisation follows the reference: the encoder as ``nn.Linear(n, 1)`` (uniform ±1/√n), the decoder
weight and bias uniform in ±max W_e.

Device: the encoder-decoder lives on the language model's device (the gradients it is trained on are there);
it is initialised on the CPU, so a seed gives the same initial weights on any device, and saved from the CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from harness.atomic import write_bytes_atomic, write_json_atomic
from harness.errors import HarnessError

CHUNK = 1 << 22


@dataclass
class AdamW:
    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def update_(self, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int) -> None:
        """torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments), in place, on
        contiguous tensors: torch's fused kernel (one pass) where available, else the same math op by op.
        The kernel reads the step count from a tensor on the parameters' device (as torch.optim.AdamW keeps it)."""
        b1, b2 = self.betas
        if _FUSED is not None:
            step_count = torch.tensor(float(step), device=p.device)
            _FUSED([p], [g], [m], [v], [], [step_count], lr=self.lr, beta1=b1, beta2=b2,
                   weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)
            return
        p.mul_(1 - self.lr * self.weight_decay)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / math.sqrt(1 - b2 ** step)).add_(self.eps)
        p.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** step))


_FUSED = getattr(torch, "_fused_adamw_", None)


@dataclass
class Gradiend:
    """Stacked encoder-decoders: ``w_e``/``w_d``/``b_d`` are [S, n], ``b_e`` is [S]."""

    w_e: torch.Tensor
    b_e: torch.Tensor
    w_d: torch.Tensor
    b_d: torch.Tensor
    seeds: list[int]
    meta: dict = field(default_factory=dict)

    @classmethod
    def init(cls, dim: int, seeds: list[int], dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> "Gradiend":
        """Each row from its own seeded generator, written in place (no float64 or stacked temporaries,
        which would double the peak memory for a 135M-weight map); drawn on the CPU (the same values on
        every device), then moved to ``device``."""
        w_e, w_d, b_d = (torch.empty(len(seeds), dim, dtype=dtype) for _ in range(3))
        b_e = torch.empty(len(seeds), dtype=dtype)
        bound = 1 / math.sqrt(dim)  # nn.Linear's default (kaiming-uniform with a=√5) for one output
        for row, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(seed)
            w_e[row].uniform_(-bound, bound, generator=gen)
            b_e[row:row + 1].uniform_(-bound, bound, generator=gen)
            scale = float(w_e[row].max())
            w_d[row].uniform_(-scale, scale, generator=gen)
            b_d[row].uniform_(-scale, scale, generator=gen)
        return cls(w_e, b_e, w_d, b_d, list(seeds)).to(device)

    @property
    def device(self) -> torch.device:
        return self.w_e.device

    def to(self, device: torch.device | str) -> "Gradiend":
        """This encoder-decoder on ``device``: itself when it is there already, else a copy."""
        parts = [getattr(self, p) for p in ("w_e", "b_e", "w_d", "b_d")]
        moved = [t.to(device) for t in parts]
        if all(m is t for m, t in zip(moved, parts)):
            return self
        return Gradiend(*moved, list(self.seeds), dict(self.meta))

    @property
    def dim(self) -> int:
        return int(self.w_e.shape[1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """h for a batch of gradients x [B, n] → [B, S] (or [S] for one vector)."""
        return torch.tanh(x.to(self.w_e.dtype) @ self.w_e.T + self.b_e)

    def decode(self, h: float, seed_row: int = 0) -> torch.Tensor:
        return h * self.w_d[seed_row] + self.b_d[seed_row]

    def row(self, index: int) -> "Gradiend":
        """One seed as its own (single-row) Gradiend."""
        return Gradiend(self.w_e[index:index + 1].clone(), self.b_e[index:index + 1].clone(),
                        self.w_d[index:index + 1].clone(), self.b_d[index:index + 1].clone(),
                        [self.seeds[index]], dict(self.meta))

    def flip_(self, rows: torch.Tensor) -> None:
        """h → −h for the given seed rows, keeping dec(enc(x)) unchanged (tanh is odd)."""
        sign = torch.where(rows, -1.0, 1.0).to(self.w_e.device, self.w_e.dtype)
        self.w_e.mul_(sign[:, None])
        self.b_e.mul_(sign)
        self.w_d.mul_(sign[:, None])

    def prune_(self, keep: torch.Tensor) -> None:
        """Keep only input/output positions ``keep`` (post-pruning)."""
        keep = keep.to(self.w_e.device)
        self.w_e, self.w_d, self.b_d = self.w_e[:, keep], self.w_d[:, keep], self.b_d[:, keep]

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: Path, extra: dict | None = None) -> None:
        """safetensors + a JSON sidecar with the checksum, both written atomically; the tensors are written from
        the CPU, so a checkpoint loads (:meth:`load`: on the CPU) wherever it was trained."""
        tensors = {"w_e": self.w_e, "b_e": self.b_e, "w_d": self.w_d, "b_d": self.b_d, **(extra or {})}
        blob = st_save({name: t.detach().cpu().contiguous() for name, t in tensors.items()})
        write_bytes_atomic(Path(path), blob)
        write_json_atomic(Path(path).with_suffix(".json"), {"sha256": hashlib.sha256(blob).hexdigest(),
                                                           "seeds": self.seeds, "meta": self.meta})

    @classmethod
    def load(cls, path: Path) -> tuple["Gradiend", dict[str, torch.Tensor]]:
        path = Path(path)
        fix = f"delete {path.parent} (the cached GRADIEND) and run again to retrain it"
        try:
            sidecar = json.loads(path.with_suffix(".json").read_text())
            blob = path.read_bytes()
        except (OSError, json.JSONDecodeError) as exc:
            raise HarnessError(f"GRADIEND checkpoint {path} is missing or unreadable ({type(exc).__name__})",
                               fix) from None
        if hashlib.sha256(blob).hexdigest() != sidecar.get("sha256"):
            raise HarnessError(f"GRADIEND checkpoint {path} is corrupt (checksum mismatch)", fix)
        tensors = st_load(blob)
        model = cls(tensors.pop("w_e"), tensors.pop("b_e"), tensors.pop("w_d"), tensors.pop("b_d"),
                    list(sidecar["seeds"]), sidecar.get("meta", {}))
        return model, tensors


class Optimiser:
    """AdamW state for a :class:`Gradiend` and the hand-derived training step (see module docstring)."""

    def __init__(self, model: Gradiend, adamw: AdamW):
        self.model, self.adamw, self.step_count = model, adamw, 0
        self.state = {name: (torch.zeros_like(t), torch.zeros_like(t)) for name, t in
                      (("w_e", model.w_e), ("b_e", model.b_e), ("w_d", model.w_d), ("b_d", model.b_d))}

    def step(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One AdamW step on every seed for source ``x`` [n] and target [n]; returns the losses [S] (on the
        model's device)."""
        mdl, opt = self.model, self.adamw
        n = mdl.dim
        x = x.to(mdl.device, mdl.w_e.dtype)
        target = target.to(mdl.device, mdl.w_e.dtype)
        self.step_count += 1
        t = self.step_count
        h = torch.tanh(mdl.w_e @ x + mdl.b_e)  # [S]
        loss = torch.zeros_like(h)
        grad_h = torch.zeros_like(h)
        (m_wd, v_wd), (m_bd, v_bd) = self.state["w_d"], self.state["b_d"]
        (m_we, v_we), (m_be, v_be) = self.state["w_e"], self.state["b_e"]
        for s in range(len(mdl.seeds)):  # rows and chunks are contiguous, as the fused kernel needs
            for lo in range(0, n, CHUNK):
                hi = min(n, lo + CHUNK)
                w_d = mdl.w_d[s, lo:hi]
                r = torch.addcmul(mdl.b_d[s, lo:hi], w_d, h[s]).sub_(target[lo:hi])
                loss[s] += r.dot(r)
                grad_h[s] += w_d.dot(r)  # before W_d changes
                r.mul_(2.0 / n)
                opt.update_(mdl.b_d[s, lo:hi], r, m_bd[s, lo:hi], v_bd[s, lo:hi], t)
                opt.update_(w_d, r.mul_(h[s]), m_wd[s, lo:hi], v_wd[s, lo:hi], t)
        loss /= n
        if not torch.isfinite(loss).all():
            raise HarnessError(f"GRADIEND training diverged at step {t} (loss {loss.tolist()})",
                               "lower the learning rate (option lr) or check the gradients for NaN/inf")
        grad_z = grad_h.mul_(2.0 / n).mul_(1 - h * h)  # [S]
        for s in range(len(mdl.seeds)):
            for lo in range(0, n, CHUNK):
                hi = min(n, lo + CHUNK)
                opt.update_(mdl.w_e[s, lo:hi], x[lo:hi] * grad_z[s], m_we[s, lo:hi], v_we[s, lo:hi], t)
            opt.update_(mdl.b_e[s:s + 1], grad_z[s:s + 1].clone(), m_be[s:s + 1], v_be[s:s + 1], t)
        return loss
