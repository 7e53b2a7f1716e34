"""The shared template of the representation-erasure methods (INLP, LEACE, RLACE, SentDebias).

Each such method is two parts:

* an **eraser**, a scikit-learn style estimator on arrays: ``fit(X, y)`` learns an affine map
  :math:`h' = A h + c` and returns the eraser, with the fitted attributes ``projection_`` (:math:`A`,
  [H, H]) and ``bias_`` (:math:`c`, [H], or None); ``transform(X)`` maps the rows of ``X`` and ``hook()``
  returns the map as the :class:`~harness.hooks.AffineHook` a model applies. It needs no language model;
* the **adapter** around it, the same for every eraser (:class:`AttributeErasureMethod`,
  :class:`CounterfactualErasureMethod`): load the attribute data (:mod:`harness.attribute_data`), encode
  it with the model, split it, fit the eraser, probe the attribute before and after, write the notes, and
  keep the hook with its notes in the step's cache folder (:func:`~harness.attribute_data.cached_hook`).
  The Instruct model's sentences are encoded in bias-bench's chat prompt (:mod:`harness.models.chat`), and
  the notes then say ``chat_template: {used, reason}``.

A method file then holds only its mathematics (an eraser) and its options; see ``docs/adding-a-method.md``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from harness.api import PostProcessingMethod, RunContext
from harness.attribute_data import (
    attribute_sentences,
    bias_bench_split,
    cached_hook,
    counterfactual_sets,
    encode,
    majority_rate,
    probe_accuracy,
)
from harness.hooks import AffineHook
from harness.models.chat import bias_bench_chat
from harness.models.interface import LanguageModel


class AffineEraser:
    """Base of the erasers: a subclass implements ``fit(X, y) -> self`` setting ``projection_`` (and ``bias_``).

    ``uses_eval_set``: ``fit`` takes ``eval_set=(X_dev, y_dev)`` (INLP's dev accuracies and stop rule); the
    adapter then fits on the train split and passes the dev split, instead of fitting on both.
    """

    uses_eval_set: ClassVar[bool] = False
    bias_: np.ndarray | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AffineEraser":
        raise NotImplementedError

    def _projection(self) -> np.ndarray:
        projection = getattr(self, "projection_", None)
        if projection is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(X, y) first")
        return projection

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The rows of ``X`` [N, H] mapped by the fitted map, :math:`X A^\\top + c` (float64)."""
        erased = np.asarray(X, dtype=np.float64) @ self._projection().T
        return erased if self.bias_ is None else erased + self.bias_

    def fit_transform(self, X: np.ndarray, y: np.ndarray, **fit_params: Any) -> np.ndarray:
        return self.fit(X, y, **fit_params).transform(X)

    def hook(self) -> AffineHook:
        """The fitted map as the float32 hook a model applies to every token's final hidden state."""
        bias = None if self.bias_ is None else torch.from_numpy(np.asarray(self.bias_))
        return AffineHook(torch.from_numpy(np.asarray(self._projection())), bias)


class OrthogonalProjection(AffineEraser):
    """An eraser whose map is an orthogonal projection :math:`P = P^\\top = P^2` (no bias) that removes
    ``rank_removed_`` directions (INLP, RLACE, SentDebias)."""

    def transform(self, X: np.ndarray) -> np.ndarray:
        # X P rather than X Pᵀ (equal, P is symmetric): the order INLP's and RLACE's probe notes were computed in
        return np.asarray(X, dtype=np.float64) @ self._projection()

    @property
    def rank_removed_(self) -> int:
        projection = self._projection()
        return int(round(projection.shape[1] - np.trace(projection)))


class ErasureMethod(PostProcessingMethod):
    """An adapter that fits an :class:`AffineEraser` on the model's representations and returns its hook.

    A subclass sets ``options_spec`` and ``version`` and implements :meth:`eraser`; it may override
    :meth:`settings` (what is fitted, recorded in the notes) and :meth:`fit_notes` (what the fit reports).
    """

    acts_on = "representations"
    protocol_settings: ClassVar[dict[str, dict[str, Any]]] = {}  # the default of each None option, by protocol

    def settings(self, lm: LanguageModel, ctx: RunContext) -> dict[str, Any]:
        """The protocol and every option, a None option replaced by the protocol's value (``protocol_settings``)."""
        protocol = ctx.method_protocol
        base = self.protocol_settings.get(protocol, {})
        return {"protocol": protocol, **{k: (base[k] if v is None and k in base else v)
                                         for k, v in self.options.items()}}

    def eraser(self, settings: dict[str, Any], ctx: RunContext) -> AffineEraser:
        """A fresh, unfitted eraser for these settings (``ctx.seed`` for its randomness)."""
        raise NotImplementedError

    def fit_notes(self, eraser: AffineEraser) -> dict[str, Any]:
        """What the fitted eraser reports in the run record's notes."""
        return {}

    def fit(self, lm: LanguageModel, ctx: RunContext) -> AffineHook:
        settings = self.settings(lm, ctx)
        hook, self.notes = cached_hook(ctx.step_cache, lambda: self._timed_fit(lm, ctx, settings))
        return hook

    def _timed_fit(self, lm: LanguageModel, ctx: RunContext, settings: dict[str, Any]) -> tuple[AffineHook, dict]:
        started = time.perf_counter()
        hook, notes = self.fit_on_data(lm, ctx, settings)
        chat = bias_bench_chat(lm)  # encode wrapped the Instruct model's sentences; noted only then
        return hook, {**notes, "fit_seconds": round(time.perf_counter() - started, 2),
                      **({"chat_template": chat.note()} if chat.used else {})}

    def fit_on_data(self, lm: LanguageModel, ctx: RunContext, settings: dict[str, Any]) -> tuple[AffineHook, dict]:
        raise NotImplementedError


class AttributeErasureMethod(ErasureMethod):
    """Fitted on bias-bench's attribute sentences (:func:`~harness.attribute_data.attribute_sentences`,
    ``settings["n_per_class"]`` per class), mean-pooled, with bias-bench's 49/21/30 % split: the eraser is
    fitted on train + dev, and a fresh probe trained there is scored on test before and after erasure.

    ``binary_concept``: gender is fitted as male vs female (neutral sentences dropped), as RLACE's game.
    """

    binary_concept: ClassVar[bool] = False

    def erased_rows(self, eraser: AffineEraser, x: np.ndarray, *rows: np.ndarray) -> list[np.ndarray]:
        """The erased features of each index array in ``rows`` (what the probe after erasure sees)."""
        return [eraser.transform(x[r]) for r in rows]

    def fit_on_data(self, lm: LanguageModel, ctx: RunContext, settings: dict[str, Any]) -> tuple[AffineHook, dict]:
        data = attribute_sentences(ctx.bias_type, int(settings["n_per_class"]), ctx.seed)
        x = encode(lm, data.texts, ctx).double().numpy()  # the full set: its encoding is shared across methods
        y = np.asarray(data.labels)
        if self.binary_concept and "neutral" in data.class_names and len(data.class_names) > 2:
            keep = y != data.class_names.index("neutral")
            data, x, y = data.without("neutral"), x[keep], y[keep]
        train, dev, test = bias_bench_split(len(y), ctx.seed)
        fit_on = np.concatenate([train, dev])
        eraser = self.eraser(settings, ctx)
        if eraser.uses_eval_set:
            eraser.fit(x[train], y[train], eval_set=(x[dev], y[dev]))
        else:
            eraser.fit(x[fit_on], y[fit_on])
        erased_fit_on, erased_test = self.erased_rows(eraser, x, fit_on, test)
        notes = {**settings, "classes": data.counts(), "n_sentences": len(y), **self.fit_notes(eraser),
                 "majority_rate_test": majority_rate(y[test]),
                 "probe_accuracy_before": probe_accuracy(x[fit_on], y[fit_on], x[test], y[test], ctx.seed),
                 "probe_accuracy_after": probe_accuracy(erased_fit_on, y[fit_on], erased_test, y[test], ctx.seed)}
        return eraser.hook(), notes


class CounterfactualErasureMethod(ErasureMethod):
    """Fitted on counterfactual tuples (:func:`~harness.attribute_data.counterfactual_sets`,
    ``settings["n_examples"]`` sentences, None = all): each class's versions are encoded (truncated at
    ``max_length`` tokens) and stacked class by class, so row ``c·N + i`` of ``X`` is tuple i's version c
    and ``y`` its class. No split and no probe: the versions of one tuple differ only in the attribute.
    """

    max_length: ClassVar[int | None] = None

    def fit_on_data(self, lm: LanguageModel, ctx: RunContext, settings: dict[str, Any]) -> tuple[AffineHook, dict]:
        data = counterfactual_sets(ctx.bias_type, settings["n_examples"], ctx.seed)
        versions = [encode(lm, [t[c] for t in data.tuples], ctx, max_length=self.max_length).double().numpy()
                    for c in range(len(data.class_names))]
        labels = np.repeat(np.arange(len(versions)), len(data.tuples))
        eraser = self.eraser(settings, ctx).fit(np.concatenate(versions), labels)
        notes = {**settings, "n_tuples": len(data.tuples), "classes": list(data.class_names),
                 **self.fit_notes(eraser)}
        return eraser.hook(), notes
