"""Rewrite a model with a decoder output: W̃ = W + α·dec(h*) on a copy (the input model is untouched).

``delta`` lives on the GRADIEND's kept positions (``ParamMap.index``, or every selected weight); the
selected weights are flattened in map order with ``parameters_to_vector``, shifted with one
``index_add_`` and written back, so only the mapped weights change. The update and the index are moved to the
model's device (a GRADIEND loaded from its checkpoint is on the CPU).
"""

from __future__ import annotations

import torch
from torch.nn.utils import parameters_to_vector

from harness.errors import HarnessError
from harness.models.interface import LanguageModel
from methods.gradiend.gradients import ParamMap


def rewrite(lm: LanguageModel, param_map: ParamMap, delta: torch.Tensor, alpha: float = 1.0) -> LanguageModel:
    """A clone of ``lm`` with ``alpha·delta`` added to the mapped weights."""
    if delta.numel() != param_map.dim:
        raise HarnessError(f"decoder output has {delta.numel()} entries but the parameter map {param_map.dim}",
                           "the GRADIEND was trained for another parameter selection; retrain it")
    out = lm.clone()
    named = dict(out.model.named_parameters())
    try:
        params = [named[n] for n in param_map.names]
    except KeyError as exc:
        raise HarnessError(f"parameter {exc} of the GRADIEND is not in {lm.spec}",
                           "use the model it was trained on") from None
    if [tuple(p.shape) for p in params] != [tuple(s) for s in param_map.shapes]:
        raise HarnessError(f"parameter shapes of {lm.spec} differ from the GRADIEND's",
                           "use the model it was trained on")
    if alpha == 0:
        return out
    with torch.no_grad():
        flat = parameters_to_vector(params)
        update = (alpha * delta).to(flat.device, flat.dtype)
        if param_map.index is None:
            flat.add_(update)
        else:
            flat.index_add_(0, param_map.index_on(flat.device), update)
        # copy back (not vector_to_parameters, which would leave every weight a view of one buffer)
        torch._foreach_copy_(params, [c.view_as(p) for c, p in zip(flat.split(param_map.numels), params)])
    out.origin = {**out.origin, "rewritten": True}
    return out
