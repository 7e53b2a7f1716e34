"""Wall time and peak memory of fitting each post-processing method (``cpu`` protocol by default).

Run: ``GRADIEND_BENCH_DATA=../shared/data python perf/methods_fit.py [--model zoo:smollm2-135m]
[--protocol cpu] [--methods inlp sentdebias leace rlace selfdebias]``

Each method runs in its own child process (so peak RSS is that method's alone) with an empty method cache
but a shared **feature** cache: the first of INLP/LEACE/RLACE encodes the attribute sentences, the others
reuse them (as in a grid). The encoding is therefore timed once on its own, and each fit is reported with
and without it. SelfDebias fits nothing; its figure is the scoring overhead (prefixed forward passes) on
200 corpus sentences. Prints a table; nothing is asserted. Figures taken on a busy machine are inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

METHODS = ("inlp", "sentdebias", "leace", "rlace", "selfdebias")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(model: str, protocol: str, method: str, cache: str) -> dict:
    from harness.api import RunContext
    from harness.attribute_data import attribute_sentences, encode
    from harness.models import load_model
    from harness.registry import get_method

    lm = load_model(model)
    loaded_mb = _rss_mb()
    ctx = RunContext(seed=0, protocol=protocol, progress=False, cache_dir=cache)
    out = {"method": method, "model_rss_mb": round(loaded_mb)}
    if method == "encode":  # the attribute sentences INLP/LEACE/RLACE share
        instance = get_method("inlp")()
        data = attribute_sentences("gender", instance.settings(lm, ctx)["n_per_class"], 0)
        start = time.perf_counter()
        encode(lm, data.texts, ctx)
        out.update(seconds=time.perf_counter() - start, n=len(data.texts))
    elif method == "selfdebias":
        import torch

        from harness.attribute_data import sentence_split

        texts = [t for t, _ in sentence_split("heldout")[:200]]
        batch = [lm.token_ids([t])[0] for t in texts]
        start = time.perf_counter()
        with torch.no_grad():
            _score(lm, batch)
            plain = time.perf_counter() - start
            lm.add_prediction_hook(get_method("selfdebias")().fit(lm, ctx))
            start = time.perf_counter()
            _score(lm, batch)
        out.update(seconds=time.perf_counter() - start, plain_seconds=plain, n=len(texts))
    else:
        instance = get_method(method)()
        start = time.perf_counter()
        instance.fit(lm, ctx)
        out.update(seconds=time.perf_counter() - start, notes={k: v for k, v in instance.notes.items()
                                                                if k != "evaluations"})
    out["peak_rss_mb"] = round(_rss_mb())
    return out


def _score(lm, sequences) -> None:
    """Token log-probs of every sentence (causal: each next token; masked: each token masked in turn)."""
    from harness.scoring import MaskedQuery, causal_token_log_probs, masked_log_probs

    if lm.kind == "causal":
        causal_token_log_probs(lm, sequences)
    else:
        queries = [MaskedQuery(tuple(s), (p,), p, s[p]) for s in sequences for p in range(1, len(s) - 1)]
        masked_log_probs(lm, queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="zoo:smollm2-135m")
    parser.add_argument("--protocol", default="cpu")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.protocol, args.child, args.cache)))
        return
    print(f"model={args.model} protocol={args.protocol} cpus={os.cpu_count()} load_average={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as cache:
        shared = any(m in ("inlp", "leace", "rlace") for m in args.methods)
        order = (["encode"] if shared else []) + list(args.methods)
        for method in order:
            run = subprocess.run([sys.executable, __file__, "--model", args.model, "--protocol", args.protocol,
                                  "--child", method, "--cache", cache], capture_output=True, text=True)
            if run.returncode:
                print(f"{method}: failed\n{run.stderr[-2000:]}")
                continue
            row = json.loads(run.stdout.strip().splitlines()[-1])
            extra = ""
            if method == "encode":
                extra = f" ({row['n']} attribute sentences, shared by INLP/LEACE/RLACE)"
            elif method == "selfdebias":
                extra = f" scoring {row['n']} sentences; without the hook {row['plain_seconds']:.1f} s"
            else:
                notes = row["notes"]
                extra = " " + json.dumps({k: notes[k] for k in ("n_sentences", "n_tuples", "classifiers_trained",
                                                                 "rank_removed", "rank_erased", "steps_run",
                                                                 "probe_accuracy_before", "probe_accuracy_after",
                                                                 "majority_rate_test") if k in notes})
            print(f"{method:10s} {row['seconds']:8.1f} s  peak RSS {row['peak_rss_mb']:6d} MB "
                  f"(model loaded: {row['model_rss_mb']} MB){extra}", flush=True)


if __name__ == "__main__":
    main()
