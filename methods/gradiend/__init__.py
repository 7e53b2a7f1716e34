"""GRADIEND (Drechsel & Herbold, ICLR 2026): learn a bias feature neuron from gradients and rewrite the model.

Modules: :mod:`.data` (templates, names, neutral text), :mod:`.gradients` (batched factual/counterfactual
gradients, per-example JVP encodings), :mod:`.model` (encoder-decoder + hand-written AdamW step),
:mod:`.training`, :mod:`.evaluation` (encoder metrics, decoder grid, selection), :mod:`.rewrite`,
:mod:`.comparison` (top-k overlap), :mod:`.workflow` (the cached end-to-end run), :mod:`.cli` and
:mod:`.adapter` (the registered methods ``gradiend``, ``gradiend-fpi``, ``gradiend-mpi``).
"""

from methods.gradiend import adapter  # noqa: F401  (registers the adapters)
