"""CrowS-Pairs speed: full runs on the zoo models, and our batched masked scoring vs a batch-size-1 one.

The batch-size-1 path scores the way the references do: one forward pass per masked variant, log-softmax
over the whole vocabulary. It checks that both give the same preferences and prints both times and the
ratio. ``--causal-reference`` also scores the causal LM exactly as bias-bench does (first token after the
start token, later tokens WITHOUT it in the context) and counts the pairs whose preference changes.

    python perf/crows_speed.py                       # gender + all pairs, both zoo models
    python perf/crows_speed.py --models zoo:bert-tiny --bias-types gender
"""

from __future__ import annotations

import argparse
import difflib
import time

import numpy as np
import torch


def reference_masked(lm, pairs, scoring: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch size 1: tokenise, diff, one forward pass per masked position."""
    tok, model = lm.tokenizer, lm.model
    out1, out2, kept = [], [], []
    for pair in pairs:
        ids = [tok.encode(s) for s in pair.ordered]
        matcher = difflib.SequenceMatcher(None, [str(x) for x in ids[0]], [str(x) for x in ids[1]])
        spans = ([], [])
        for op in matcher.get_opcodes():
            if (op[0] == "equal") == (scoring == "nangia"):
                spans[0].extend(range(op[1], op[2]))
                spans[1].extend(range(op[3], op[4]))
        if scoring == "bias-bench" and not (spans[0] and spans[1]):
            out1.append(0.0), out2.append(0.0), kept.append(False)
            continue
        scores = []
        for seq, span in zip(ids, spans):
            values = []
            for p in (span if scoring == "bias-bench" else span[1:-1]):
                masked = torch.tensor([seq])
                masked[0, p] = tok.mask_token_id
                with torch.no_grad():
                    logits = model(input_ids=masked).logits[0, p]
                values.append(torch.log_softmax(logits.float(), -1)[seq[p]].item())
            scores.append(float(np.mean(values)) if scoring == "bias-bench" else float(sum(values)))
        out1.append(scores[0]), out2.append(scores[1]), kept.append(True)
    return np.array(out1), np.array(out2), np.array(kept)


def bias_bench_causal(lm, pairs) -> tuple[np.ndarray, np.ndarray]:
    """bias-bench's _joint_log_probability: start token only for the first token; 2^(mean log2 p)."""
    tok, model = lm.tokenizer, lm.model
    with torch.no_grad():
        initial = model(torch.tensor([[lm.start_token_id]])).logits[0, 0].float().softmax(-1)
    out = []
    for pair in pairs:
        row = []
        for sentence in pair.ordered:
            tokens = tok.encode(sentence, add_special_tokens=False)
            with torch.no_grad():
                probs = model(torch.tensor([tokens])).logits[0].float().softmax(-1)
            p = [initial[tokens[0]].item()] + [probs[t - 1, tokens[t]].item() for t in range(1, len(tokens))]
            row.append(float(2 ** np.mean(np.log2(p))))
        out.append(row)
    arr = np.array(out)
    return arr[:, 0], arr[:, 1]


def main() -> None:
    from benchmarks.crows import CrowSPairs, causal_pair_scores, masked_pair_scores, preferences
    from harness.api import RunContext
    from harness.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["zoo:bert-tiny", "zoo:smollm2-135m"])
    parser.add_argument("--bias-types", nargs="+", default=["gender", "all"])
    parser.add_argument("--reference-bias-type", default="gender", help="pairs for the batch-size-1 comparison")
    parser.add_argument("--causal-reference", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    for spec in args.models:
        lm = load_model(spec)
        scorings = ("bias-bench", "nangia") if lm.kind == "masked" else ("bias-bench",)
        for scoring in scorings:
            for bias_type in args.bias_types:
                bench = CrowSPairs(scoring=scoring, bias_type=bias_type)
                started = time.perf_counter()
                result = bench.run(lm, RunContext(progress=False))
                score, d = result.scores["score"], result.details
                print(f"{spec:18s} {d['scoring']:21s} {bias_type:7s} N={d['N']:4d} score={score.value:6.2f} "
                      f"[{score.low:.2f}, {score.high:.2f}]  {time.perf_counter() - started:7.2f} s", flush=True)
        pairs = CrowSPairs(bias_type=args.reference_bias_type).pairs(RunContext())
        if lm.kind == "masked":
            for scoring in scorings:
                started = time.perf_counter()
                ours = masked_pair_scores(lm, pairs, scoring)
                fast = time.perf_counter() - started
                started = time.perf_counter()
                ref = reference_masked(lm, pairs, scoring)
                slow = time.perf_counter() - started
                dirs = [p.direction for p in pairs]
                same = np.array_equal(preferences(ours[0], ours[1], dirs, 3), preferences(ref[0], ref[1], dirs, 3))
                gap = max(np.abs(ours[0] - ref[0]).max(), np.abs(ours[1] - ref[1]).max())
                print(f"{spec:18s} {scoring:10s} batched {fast:6.2f} s, batch-size-1 {slow:6.2f} s, "
                      f"ratio {slow / fast:5.1f}x; same preferences: {same}; max |score gap| {gap:.2e}", flush=True)
        elif args.causal_reference:
            dirs = [p.direction for p in pairs]
            ours = causal_pair_scores(lm, pairs)
            started = time.perf_counter()
            ref = bias_bench_causal(lm, pairs)
            slow = time.perf_counter() - started
            a, b = preferences(ours[0], ours[1], dirs, None), preferences(ref[0], ref[1], dirs, None)
            print(f"{spec:18s} bias-bench exact causal context: {slow:.2f} s; preferences differ on "
                  f"{int((a != b).sum())}/{len(pairs)} pairs; score {100 * (a > 0).mean():.2f} (ours) vs "
                  f"{100 * (b > 0).mean():.2f} (bias-bench context)", flush=True)


if __name__ == "__main__":
    main()
