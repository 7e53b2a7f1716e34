"""``damage``: a deliberately broken variant — a sensitivity control for the utility columns, not a debiasing method.

It projects every token's final hidden state onto a random subspace that keeps ``1 − remove`` of the
dimensions: with :math:`Q \\in \\mathbb{R}^{H \\times r}` orthonormal, :math:`r = \\mathrm{round}(\\text{remove}
\\cdot H)`, drawn from the run's seed (QR decomposition of a standard-normal matrix, sign-fixed so that it is
Haar-distributed; Mezzadri 2007), the hook is

.. math:: h' = (I - Q Q^\\top)\\, h ,

an :class:`~harness.hooks.AffineHook` like INLP's, so every benchmark sees it where it sees INLP (the LM
head, SEAT's and the GLUE probe's pooled features, fine-tuning's forward pass) and the GLUE probe applies it
to the cached features. INLP's own ``iterations``/``stop_at_majority`` options can also remove most of a
small model's dimensions, but its records would be named ``inlp`` and the fraction removed is not a dial.

Use it to check that a utility column *can* see damage: ``variants: [base, damage]`` (``remove: 0.95`` by
default, 6 of bert-tiny's 128 dimensions kept) must drop LMS, lm-quality and GLUE well outside their intervals
(docs/utility.md; tests/test_utility_sensitivity.py). Never put it in a leaderboard of debiasing methods.
"""

from __future__ import annotations

import torch

from harness.api import PostProcessingMethod, RunContext
from harness.hooks import AffineHook
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_method


def random_subspace_removal(dim: int, remove: float, seed: int) -> tuple[AffineHook, int]:
    """(the hook :math:`I - QQ^\\top`, the number r of removed dimensions) for a seeded random orthonormal Q."""
    removed = min(dim, max(0, round(remove * dim)))
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed columns (sign convention of QR fixed)
    basis = q[:, :removed]
    return AffineHook(torch.eye(dim, dtype=torch.float64) - basis @ basis.T), removed


@register_method("damage")
class Damage(PostProcessingMethod):
    """Sensitivity control: remove a random ``remove`` fraction of the hidden dimensions (seeded projection)."""

    version = 1
    acts_on = "representations"
    options_spec = {"remove": Option(float, 0.95, above=0, maximum=1)}

    def fit(self, lm: LanguageModel, ctx: RunContext) -> AffineHook:
        hook, removed = random_subspace_removal(lm.hidden_size, float(self.options["remove"]), ctx.seed)
        self.notes = {"purpose": "sensitivity control, not a debiasing method", "hidden_size": lm.hidden_size,
                      "removed_dimensions": removed, "kept_dimensions": lm.hidden_size - removed, "seed": ctx.seed}
        return hook
