"""When has a GRADIEND seed converged? The two published rules, on the best checkpoint's validation numbers.

At an evaluation, a seed's per-example encodings h on the validation examples give Pearson r with the labels
(first class +1, second −1) and the two class means m₁, m₂. The best checkpoint is the evaluation with the
largest |r|.

``reference`` (default) — the ``gradiend`` package, aieng-lab/gradiend ``gradiend/trainer/core/training.py``
(convergence check after training) with ``gradiend/trainer/core/arguments.py`` (``TrainingArguments``):

    converged ⇔ best step > 0  ∧  |r| ≥ 0.6  ∧  min(|m₁|, |m₂|) ≥ 0.5  ∧  m₁·m₂ < 0

``convergent_score_threshold`` is documented there as 0.6 while ``__post_init__`` fills 0.5 when it is unset;
we use 0.6, the stricter reading, so a seed converged here is converged under both. The mean threshold is 0.5 in
both places. A high |r| alone is not enough: encodings of ±0.04 correlate perfectly with the labels yet
decode to nothing like the trained feature.

``iclr`` — the ICLR code, aieng-lab/gradiend-bias ``gradiend/training/gradiend_training.py``: every seed is
trained and the one with the best validation correlation is kept; the code has no convergence test, so this
rule labels a seed converged when |r| ≥ 0.5 and the class means have opposite signs (the harness's earlier
reading, kept for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

RULES = ("reference", "iclr")


@dataclass(frozen=True)
class ConvergenceRule:
    name: str = "reference"
    score_threshold: float = 0.6
    mean_threshold: float | None = 0.5

    @classmethod
    def named(cls, name: str) -> "ConvergenceRule":
        if name == "reference":
            return cls("reference", 0.6, 0.5)
        if name == "iclr":
            return cls("iclr", 0.5, None)
        raise ValueError(f"unknown convergence rule {name!r}; use one of {RULES}")

    def check(self, correlation: float, mean_first: float, mean_second: float, best_step: int) -> dict:
        """Each condition and the verdict, so a record can say *why* a seed did not converge."""
        finite = correlation == correlation and mean_first == mean_first and mean_second == mean_second
        parts = {
            "improved": best_step > 0 if self.name == "reference" else True,
            "score": finite and abs(correlation) >= self.score_threshold,
            "opposite_signs": finite and mean_first * mean_second < 0,
            "class_means": (self.mean_threshold is None
                            or (finite and min(abs(mean_first), abs(mean_second)) >= self.mean_threshold)),
        }
        return {"converged": all(parts.values()), **parts}

    def describe(self) -> str:
        text = f"|r| ≥ {self.score_threshold:g}"
        if self.mean_threshold is not None:
            text += f", min |class mean| ≥ {self.mean_threshold:g}"
        text += ", opposite-sign class means"
        if self.name == "reference":
            text += ", best step > 0"
        return f"{self.name}: {text}"
