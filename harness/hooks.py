"""Hooks that post-processing methods put on a model.

Two kinds, matching what a method changes:

* **hidden hooks** ``h -> h'`` on every token's final hidden state (INLP, SentDebias, LEACE, RLACE).
  The linear ones are :class:`AffineHook` :math:`h' = A h + c`; because an affine map commutes with
  the attention-masked mean, :math:`\\overline{A h + c} = A \\bar h + c`, a benchmark that caches
  pooled features of the plain model can apply the hook to the cache exactly instead of re-encoding;
* **prediction hooks** that rewrite token log-probabilities (SelfDebias). They only affect scores
  computed from token predictions; representation benchmarks (SEAT, GLUE probes) are then "not applicable".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from harness.atomic import atomic_directory
from harness.errors import HarnessError


@dataclass
class AffineHook:
    """:math:`h' = A h + c` applied to the last dimension; ``A`` is [H, H], ``c`` is [H] (float32)."""

    matrix: torch.Tensor
    bias: torch.Tensor | None = None

    def __post_init__(self):
        self.matrix = self.matrix.detach().to(torch.float32).cpu()
        if self.matrix.ndim != 2 or self.matrix.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"AffineHook needs a square matrix, got {tuple(self.matrix.shape)}")
        if self.bias is not None:
            self.bias = self.bias.detach().to(torch.float32).cpu().reshape(-1)
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    def _on(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            bias = None if self.bias is None else self.bias.to(like.device, like.dtype)
            self._cache[key] = (self.matrix.to(like.device, like.dtype), bias)
        return self._cache[key]

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        matrix, bias = self._on(hidden)
        out = hidden @ matrix.T
        return out if bias is None else out + bias

    def apply_to_features(self, features: torch.Tensor) -> torch.Tensor:
        """The hook applied to pooled features (exact for mean pooling, see the module docstring)."""
        return self(features.to(torch.float32))

    def then(self, other: "AffineHook") -> "AffineHook":
        """The composition ``other(self(h))`` as one affine map."""
        matrix = other.matrix @ self.matrix
        bias = None
        if self.bias is not None or other.bias is not None:
            own = self.bias if self.bias is not None else torch.zeros(self.dim)
            bias = other.matrix @ own + (other.bias if other.bias is not None else 0.0)
        return AffineHook(matrix, bias)

    # -- persistence (method artefact caches) --------------------------------------------------------
    def write(self, folder: str | Path) -> None:
        """Write ``hook.safetensors`` into ``folder`` (a scratch folder that the caller seals)."""
        from safetensors.torch import save_file

        tensors = {"matrix": self.matrix.contiguous()}
        if self.bias is not None:
            tensors["bias"] = self.bias.contiguous()
        save_file(tensors, str(Path(folder) / "hook.safetensors"))

    def save(self, directory: str | Path) -> None:
        """Replace ``directory`` with this hook and its checksum manifest (atomically)."""
        from harness.cache_entry import seal

        with atomic_directory(Path(directory)) as tmp:
            self.write(tmp)
            seal(tmp)

    @classmethod
    def read(cls, folder: str | Path) -> "AffineHook":
        """The hook in ``folder`` without checking its manifest (the caller already verified the folder)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(folder) / "hook.safetensors"
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise HarnessError(f"cannot read hook file {path} ({exc})", f"delete {Path(folder)} to refit") from None
        return cls(tensors["matrix"], tensors.get("bias"))

    @classmethod
    def load(cls, directory: str | Path) -> "AffineHook":
        """The hook saved in ``directory``, after checking every byte against its manifest."""
        from harness.cache_entry import problem

        found = problem(directory) if (Path(directory) / "hook.safetensors").is_file() else None
        if found:
            raise HarnessError(found, f"delete {Path(directory)} to refit")
        return cls.read(directory)


def linear_hooks(hooks: list) -> AffineHook | None:
    """All ``hooks`` folded into one :class:`AffineHook`, or None when one of them is not affine."""
    combined = None
    for hook in hooks:
        if not isinstance(hook, AffineHook):
            return None
        combined = hook if combined is None else combined.then(hook)
    return combined


class PredictionHook(Protocol):
    """Rewrites log-probabilities ``[N, V]`` of the rows at ``positions`` of a batch.

    It may run ``lm.logits`` itself (which never applies prediction hooks, so there is no recursion).
    """

    def __call__(self, lm, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 positions: tuple[torch.Tensor, torch.Tensor], log_probs: torch.Tensor) -> torch.Tensor: ...
