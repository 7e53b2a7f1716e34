"""StereoSet scorer speed: our batched scoring vs a batch-size-1 implementation of the same scoring.

The batch-size-1 path is the way the reference code (bias-bench) scores: one forward pass per masked
variant (masked LM) or per sentence (causal LM), softmax over the vocabulary at every position.
Checks that both give the same per-sentence scores (to 1e-5) and prints both times and the ratio.

    python perf/stereoset_speed.py --model zoo:bert-tiny
    python perf/stereoset_speed.py --model zoo:smollm2-135m --clusters 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def reference_masked(lm, clusters) -> dict[str, float]:
    from benchmarks.stereoset import template_word

    tok, model = lm.tokenizer, lm.model
    scores = {}
    for cluster in clusters:
        for sentence_id, sentence in cluster.sentences.values():
            pieces = tok.encode(template_word(cluster.context, sentence), add_special_tokens=False)
            probs = []
            for i, piece in enumerate(pieces):
                text = cluster.context.replace("BLANK", tok.decode(pieces[:i]) + tok.mask_token)
                ids = torch.tensor([tok.encode(text)])
                with torch.no_grad():
                    out = model(input_ids=ids).logits.softmax(-1)
                probs.append(out[ids == tok.mask_token_id][0, piece].item())
            scores[sentence_id] = float(np.mean(probs))
    return scores


def reference_causal(lm, clusters) -> dict[str, float]:
    tok, model = lm.tokenizer, lm.model
    with torch.no_grad():
        initial = model(torch.tensor([[lm.start_token_id]])).logits.softmax(-1)[0, 0]
    scores = {}
    for cluster in clusters:
        for sentence_id, sentence in cluster.sentences.values():
            tokens = tok.encode(sentence, add_special_tokens=False)
            with torch.no_grad():
                out = model(torch.tensor([tokens])).logits.softmax(-1)[0]
            probs = [initial[tokens[0]].item()] + [out[t - 1, tokens[t]].item() for t in range(1, len(tokens))]
            scores[sentence_id] = float(2 ** np.mean(np.log2(probs)))
    return scores


def main() -> None:
    from benchmarks.stereoset import causal_sentence_scores, load_clusters, masked_sentence_scores
    from harness.data import resolve
    from harness.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:bert-tiny")
    parser.add_argument("--clusters", type=int, default=0, help="first N clusters of the dev split (0 = all 2106)")
    parser.add_argument("--reference-clusters", type=int, default=0,
                        help="time the batch-size-1 path on only the first N clusters and extrapolate (0 = same set)")
    args = parser.parse_args()

    lm = load_model(args.model)
    clusters, _ = load_clusters(resolve("stereoset-dev", ["dev.jsonl"]).path("dev.jsonl"))
    clusters = clusters[:args.clusters] if args.clusters else clusters
    ours_fn = masked_sentence_scores if lm.kind == "masked" else causal_sentence_scores
    reference_fn = reference_masked if lm.kind == "masked" else reference_causal
    ours_fn(lm, clusters[:20])  # warm-up

    runs = []
    for _ in range(3):  # the first full run also pays for one-off kernel set-up per new batch shape
        started = time.perf_counter()
        ours = ours_fn(lm, clusters)
        runs.append(time.perf_counter() - started)
    ours_s = min(runs)
    subset = clusters[:args.reference_clusters] if args.reference_clusters else clusters
    started = time.perf_counter()
    reference = reference_fn(lm, subset)
    reference_s = (time.perf_counter() - started) * len(clusters) / len(subset)
    diff = max(abs(ours[k] - v) for k, v in reference.items())
    print(f"model {args.model} ({lm.kind}), {len(clusters)} clusters, {len(ours)} sentences, "
          f"torch threads {torch.get_num_threads()}")
    print(f"batch-size-1 reference: {reference_s:8.2f} s" + ("" if subset is clusters else
                                                          f" (extrapolated from {len(subset)} clusters)"))
    print(f"gradiend-bench batched: {ours_s:8.2f} s (best of 3; first run {runs[0]:.2f} s)")
    print(f"speed-up: {reference_s / ours_s:.1f}x   max |score difference| on {len(reference)} sentences: {diff:.2e}"
          f"  ({'OK' if diff <= 1e-5 else 'MISMATCH'})")


if __name__ == "__main__":
    main()
