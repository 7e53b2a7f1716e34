"""GLUE / SuperGLUE: metrics by hand, readers (raw and hub formats, malformed files), the feature cache
with affine hooks, the probe against the majority baseline, one real fine-tuning step, missing data."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.glue_encode import encode, features, has_pair_template, pair_batch
from benchmarks.glue_tasks import (
    GLUE_TASKS,
    SUPERGLUE_TASKS,
    cb_score,
    choice_predictions,
    load_task,
    mcc,
    metric_fn,
    multirc_parts,
    multirc_score,
    pearson,
    read_jsonl,
    read_tsv,
    superglue_rows,
)
from benchmarks.probe import bootstrap_task
from conftest import forward_chain_length, fp32_error_bound
from harness.api import RunContext
from harness.errors import HarnessError
from harness.hooks import AffineHook
from harness.registry import get_benchmark

SPECS = {**{f"glue-{t.name}": t for t in GLUE_TASKS}, **{f"superglue-{t.name}": t for t in SUPERGLUE_TASKS}}


# -- metrics -------------------------------------------------------------------------------------------
def test_metrics_by_hand():
    y, p = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])  # tp 2, tn 1, fp 1, fn 1
    assert mcc(y, p) == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    assert metric_fn(SPECS["glue-mrpc"])(y, p, None) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert metric_fn(SPECS["glue-cola"])(y, p, None) == pytest.approx(1 / 6)
    assert metric_fn(SPECS["glue-sst2"])(y, p, None) == pytest.approx(3 / 5)
    assert mcc(np.array([1, 1, 0]), np.array([1, 1, 1])) == 0.0  # an empty margin → 0, not NaN
    # Pearson: y = 1, 2, 3 and p = 1, 2, 4 → r = 3 / (sqrt(2) · sqrt(14/3))
    r = 3 / (math.sqrt(2) * math.sqrt(14 / 3))
    assert metric_fn(SPECS["glue-stsb"])(np.array([1., 2, 3]), np.array([1., 2, 4]), None) == pytest.approx(r)
    # CB: acc 1/2; F1 per class 2/3, 2/3, 0 → macro 4/9; (1/2 + 4/9)/2 = 17/36
    assert cb_score(np.array([0, 1, 2, 0]), np.array([0, 1, 1, 2])) == pytest.approx(17 / 36)
    assert (metric_fn(SPECS["superglue-cb"])(np.array([0, 1, 2, 0]), np.array([0, 1, 1, 2]), None)
            == pytest.approx(17 / 36))
    # MultiRC: question 0 all right, question 1 one answer wrong; F1a: tp 3, fp 1, fn 0 → 6/7; EM 1/2
    y, p, g = np.array([1, 0, 1, 0, 1]), np.array([1, 0, 1, 1, 1]), np.array([0, 0, 0, 1, 1])
    assert multirc_parts(y, p, g) == (pytest.approx(6 / 7), pytest.approx(0.5))
    assert metric_fn(SPECS["superglue-multirc"])(y, p, g) == pytest.approx((6 / 7 + 0.5) / 2)
    # COPA: the higher-scoring row of each example is chosen; accuracy per example
    groups = np.array([0, 0, 1, 1, 2, 2])
    chosen = choice_predictions(np.array([0.1, 0.9, 2.0, -1.0, 0.0, 0.0]), groups)
    assert chosen.tolist() == [0, 1, 1, 0, 1, 0]  # a tie picks the first choice
    gold = np.array([0, 1, 0, 1, 1, 0])
    assert metric_fn(SPECS["superglue-copa"])(gold, chosen, groups) == pytest.approx(2 / 3)


def test_metrics_match_sklearn_on_random_predictions():
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    assert mcc(y, p) == pytest.approx(matthews_corrcoef(y, p))
    assert metric_fn(SPECS["glue-mrpc"])(y, p, None) == pytest.approx(f1_score(y, p))
    y3, p3 = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    assert cb_score(y3, p3) == pytest.approx((np.mean(y3 == p3) + f1_score(y3, p3, average="macro")) / 2)
    assert pearson(y.astype(float), p.astype(float)) == pytest.approx(np.corrcoef(y, p)[0, 1])


def test_bootstrap_interval_contains_value_and_resamples_questions():
    spec = SPECS["superglue-multirc"]
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(60), 3)
    y = rng.integers(0, 2, groups.size)
    preds = [np.where(rng.random(groups.size) < 0.8, y, 1 - y) for _ in range(2)]
    from benchmarks.glue_tasks import Split
    split = Split(["x"] * groups.size, ["y"] * groups.size, y, groups)
    value, draws = bootstrap_task(spec, split, preds, resamples=300, seed=0)
    assert value == pytest.approx(np.mean([multirc_score(y, p, groups) for p in preds]))
    low, high = np.percentile(draws, [2.5, 97.5])
    assert low < value < high and draws.shape == (300,)


# -- readers -------------------------------------------------------------------------------------------
def test_mirror_readers_parse_every_offline_task(mirror):
    from harness.data.catalog import resolve

    expected = {"glue-cola": (8551, 1043), "glue-sst2": (67349, 872), "glue-mrpc": (3668, 408),
                "glue-stsb": (5749, 1500), "glue-wnli": (635, 71), "superglue-cb": (250, 56),
                "superglue-copa": (800, 200), "superglue-wsc": (554, 104), "superglue-wic": (5428, 638)}
    for name, (n_train, n_val) in expected.items():
        train, evals = load_task(SPECS[name], resolve(name).files)
        assert (len(train), len(evals["validation"])) == (n_train, n_val), name
    train, evals = load_task(SPECS["superglue-multirc"], resolve("superglue-multirc").files)
    val = evals["validation"]
    assert len(np.unique(val.groups)) == 953 and len(val) == 4848  # questions / answer options
    train, evals = load_task(SPECS["superglue-wsc"], resolve("superglue-wsc").files)
    assert "*" in train.first[0] and train.second[0] in train.first[0].replace("*", "")


def test_hub_jsonl_reads_like_the_raw_files(mirror, tmp_path):
    """The hub's rows (integer labels, MultiRC flattened) give the same examples as the raw files."""
    raw = Path(mirror) / "superglue" / "MultiRC" / "val.jsonl"
    records = read_jsonl(raw)[:3]
    flat = [{"paragraph": r["passage"]["text"], "question": q["question"], "answer": a["text"],
             "idx": {"paragraph": r["idx"], "question": q["idx"], "answer": a["idx"]}, "label": a["label"]}
            for r in records for q in r["passage"]["questions"] for a in q["answers"]]
    spec = SPECS["superglue-multirc"]
    from_raw, from_hub = superglue_rows(spec, records, raw), superglue_rows(spec, flat, tmp_path / "x")
    assert from_raw.first == from_hub.first and from_raw.second == from_hub.second
    assert from_raw.labels.tolist() == from_hub.labels.tolist() and from_raw.groups.tolist() == from_hub.groups.tolist()

    rte = read_tsv(SPECS["glue-rte"], Path(mirror) / "glue" / "RTE" / "dev.tsv")
    classes = SPECS["glue-rte"].classes
    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"sentence1": a, "sentence2": b, "label": int(y), "idx": i}) + "\n"
        for i, (a, b, y) in enumerate(zip(rte.first, rte.second, rte.labels))))
    shutil.copy(tmp_path / "train.jsonl", tmp_path / "validation.jsonl")
    train, evals = load_task(SPECS["glue-rte"], {"train.jsonl": tmp_path / "train.jsonl",
                                                 "validation.jsonl": tmp_path / "validation.jsonl"})
    assert train.first == rte.first and train.labels.tolist() == rte.labels.tolist() and classes[0] == "entailment"
    mnli = [{"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": k, "idx": k} for k in range(3)]
    for name in ("train", "validation_matched", "validation_mismatched"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mnli))
    train, evals = load_task(SPECS["glue-mnli"], {f"{n}.jsonl": tmp_path / f"{n}.jsonl" for n in
                                                  ("train", "validation_matched", "validation_mismatched")})
    assert set(evals) == {"validation_matched", "validation_mismatched"} and train.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("content, message", [
    ("index\tsentence1\tlabel\n0\ta\tentailment\n", "missing column.*sentence2"),
    ("index\tsentence1\tsentence2\tlabel\n0\ta\n", "line 2.*2 tab-separated fields"),
    ("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", "line 2.*label 'maybe' is not one of"),
    ("", "empty file"),
])
def test_malformed_tsv_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "dev.tsv"
    path.write_text(content)
    with pytest.raises(HarnessError, match=message) as err:
        read_tsv(SPECS["glue-rte"], path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content, message", [
    ('{"premise": "a", "hypothesis": "b", "label": "neutral"}\n{"premise": \n', "line 2.*invalid JSON"),
    ('{"premise": "a", "label": "neutral"}\n', "record 1.*missing field 'hypothesis'"),
    ('[1, 2]\n', "line 1.*expected a JSON object"),
])
def test_malformed_jsonl_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "val.jsonl"
    path.write_text(content)
    with pytest.raises(HarnessError, match=message):
        load_task(SPECS["superglue-cb"], {"train.jsonl": path, "val.jsonl": path})


# -- encoding and the feature cache ----------------------------------------------------------------------
def test_pair_encoding_follows_the_tokenizer(bert_tiny, smollm2):
    batch = pair_batch(bert_tiny, ["a cat sat"], ["on the mat"], 128)
    ids = bert_tiny.tokenizer("a cat sat", "on the mat")["input_ids"]
    assert batch["input_ids"][0].tolist() == ids and batch["token_type_ids"][0].tolist().count(1) > 0
    assert has_pair_template(bert_tiny.tokenizer) and not has_pair_template(smollm2.tokenizer)
    batch = pair_batch(smollm2, ["a cat sat"], ["on the mat"], 128)
    tok = smollm2.tokenizer
    expected = (tok("a cat sat")["input_ids"] + [tok.eos_token_id]
                + tok("on the mat", add_special_tokens=False)["input_ids"])
    assert batch["input_ids"][0].tolist() == expected
    long = pair_batch(bert_tiny, ["word " * 300], ["short question"], 32)
    assert long["input_ids"].shape[1] == 32 and long["token_type_ids"][0].tolist().count(1) >= 3  # passage cut first


def test_affine_hook_on_cached_features_equals_reencoding(bert_tiny, mirror, tmp_path):
    train, _ = load_task(SPECS["glue-rte"], {"train.tsv": Path(mirror) / "glue/RTE/train.tsv",
                                             "dev.tsv": Path(mirror) / "glue/RTE/dev.tsv"})
    first, second = train.first[:40], train.second[:40]
    g = torch.Generator().manual_seed(0)
    hook = AffineHook(torch.eye(128) + 0.1 * torch.randn(128, 128, generator=g), torch.randn(128, generator=g))
    plain, how = features(bert_tiny, first, second, cache_dir=tmp_path)
    assert how == "encoded" and len(list((tmp_path / "features").rglob("*.pt"))) == 1
    bert_tiny.add_hidden_hook(hook)
    try:
        cached, how = features(bert_tiny, first, second, cache_dir=tmp_path)
        direct = encode(bert_tiny, first, second)
        assert how == "cached" and len(bert_tiny.hooks) == 1
        # hook on the pooled features vs on every token then pooled: H-term products and a mean over ≤ 128
        # tokens, on the scale of the summed terms |h|·|M|ᵀ + |b|; both sides within the fp32 bound
        terms = plain.abs() @ hook.matrix.abs().T + hook.bias.abs()
        bound = 2 * fp32_error_bound(float(terms.max()), bert_tiny.hidden_size + 128)
        torch.testing.assert_close(cached, direct, rtol=0, atol=bound)
        assert not torch.allclose(cached, plain, atol=1e-2)
        bert_tiny.add_hidden_hook(lambda h: torch.tanh(h))  # not affine: encoded with the hooks, not cached
        nonlinear, how = features(bert_tiny, first, second, cache_dir=tmp_path)
        assert how == "encoded-with-hooks" and torch.allclose(nonlinear, encode(bert_tiny, first, second), atol=1e-6)
    finally:
        bert_tiny.clear_hooks()


# -- probe, fine-tuning, missing data --------------------------------------------------------------------
def _run(lm, name, tmp_path, protocol="cpu", **options):
    ctx = RunContext(cache_dir=tmp_path, progress=False, protocol=protocol)
    return get_benchmark(name)(precision="float32", resamples=200, **options).run(lm, ctx), ctx


def test_probe_beats_majority_on_sst2_bert_tiny(bert_tiny, mirror, tmp_path):
    result, ctx = _run(bert_tiny, "glue", tmp_path, tasks="sst2", max_train=500)
    info = result.details["per_task"]["sst2"]
    assert result.protocol == "probe" and info["train_examples"] == 500
    assert result.scores["sst2"].low > info["floor"] + 5 and not info["below_floor"]
    assert result.scores["floor"].value == info["floor"] == pytest.approx(444 / 872 * 100)  # 444 positive of 872
    assert result.scores["score"].value == result.scores["sst2"].value and "glue-sst2" in ctx.datasets


@pytest.mark.slow
def test_probe_beats_majority_on_sst2_smollm2(smollm2, mirror, tmp_path):
    result, _ = _run(smollm2, "glue", tmp_path, tasks="sst2", max_train=1000)
    info = result.details["per_task"]["sst2"]
    assert result.scores["sst2"].low > info["floor"] + 10


def test_missing_task_data_is_listed_unavailable(bert_tiny, mirror, tmp_path, monkeypatch):
    partial = tmp_path / "mirror"
    (partial / "glue").mkdir(parents=True)
    shutil.copytree(Path(mirror) / "glue" / "WNLI", partial / "glue" / "WNLI")
    monkeypatch.setenv("GRADIEND_BENCH_DATA", str(partial))
    result, ctx = _run(bert_tiny, "glue", tmp_path / "cache", tasks=["wnli", "rte", "mnli"])
    assert result.details["tasks"] == ["wnli"] and set(ctx.datasets) == {"glue-wnli"}
    assert set(result.details["unavailable"]) == {"rte", "mnli"}
    assert "RTE/train.tsv" in result.details["unavailable"]["rte"]
    assert "offline" in result.details["unavailable"]["mnli"]
    assert set(result.scores) == {"score", "floor", "wnli"}
    assert result.scores["score"].value == result.scores["wnli"].value  # WNLI alone is the suite
    monkeypatch.setenv("GRADIEND_BENCH_DATA", str(tmp_path / "empty"))
    with pytest.raises(HarnessError, match="no task has data here.*rte"):
        _run(bert_tiny, "glue", tmp_path / "cache", tasks="rte")


def test_protocol_and_option_validation(bert_tiny):
    glue = get_benchmark("glue")
    assert glue().protocol(RunContext(protocol="cpu"), bert_tiny)[0] == "probe"  # default "experiment"
    assert glue().protocol(RunContext(protocol="full"), bert_tiny)[0] == "full"  # → auto → masked: fine-tuned
    assert glue(protocol="auto").protocol(RunContext(protocol="cpu"), bert_tiny)[0] == "full"
    assert glue(protocol="finetune-lite").protocol(RunContext(protocol="cpu"))[0] == "finetune-lite"
    with pytest.raises(HarnessError, match="option 'protocol'.*choose one of"):
        glue(protocol="zero").run(bert_tiny, RunContext())
    with pytest.raises(HarnessError, match="no task.*boolq.*choose from: cola"):
        glue(tasks="boolq").run(bert_tiny, RunContext())


@pytest.mark.parametrize("task", ["glue-rte", "glue-stsb", "superglue-copa"])
def test_finetune_trains_one_real_step(bert_tiny, mirror, task):
    from benchmarks.finetune import FinetuneSettings, finetune_predict
    from harness.data.catalog import resolve

    spec = SPECS[task]
    train, evals = load_task(spec, resolve(task).files)
    train, val = train.take(np.arange(8)), evals["validation"].take(np.arange(6))
    before = {k: v.detach().clone() for k, v in bert_tiny.backbone_parameters().items()}
    hook = AffineHook(torch.eye(128))
    bert_tiny.add_hidden_hook(hook)
    try:
        preds, log = finetune_predict(bert_tiny, spec, train, {"validation": val}, seed=0,
                                      settings=FinetuneSettings(batch_size=4, max_steps=1))
    finally:
        bert_tiny.clear_hooks()
    assert log.steps == 1 and len(log.losses) == 1 and math.isfinite(log.losses[0])
    assert preds["validation"].shape == (6,)
    assert all(torch.equal(before[k], v) for k, v in bert_tiny.backbone_parameters().items())  # a clone trained


def test_bfloat16_encoder_is_a_copy_close_to_float32(bert_tiny):
    from benchmarks.glue_encode import release_encoder, resolve_precision

    texts = ["The nurse said she would come.", "A man is playing a guitar on stage."]
    weight = next(bert_tiny.model.parameters()).detach().clone()
    full = encode(bert_tiny, texts, None)
    half = encode(bert_tiny, texts, None, precision="bfloat16")
    release_encoder(bert_tiny)
    assert next(bert_tiny.model.parameters()).dtype == torch.float32
    assert torch.equal(next(bert_tiny.model.parameters()), weight)
    assert torch.nn.functional.cosine_similarity(full, half).min() > 0.99 and not torch.equal(full, half)
    assert resolve_precision(bert_tiny, "auto") == "float32"  # small models gain nothing from bf16


def test_compiled_encoder_matches_eager_and_is_cached_apart(bert_tiny, tmp_path):
    from benchmarks.glue_encode import cache_key, release_encoder, resolve_compile

    texts = ["The nurse said she would come.", "A man is playing a guitar on stage.", "Short one."]
    eager = encode(bert_tiny, texts, None)
    compiled = encode(bert_tiny, texts, None, compiled=True)
    again = encode(bert_tiny, texts[:2], None, compiled=True)  # another shape: dynamic, no wrong reuse
    release_encoder(bert_tiny)
    assert not hasattr(bert_tiny, "_glue_compiled")
    # other (fused) kernels for the same forward: both within the fp32 bound on the features' scale
    bound = 2 * fp32_error_bound(float(eager.abs().max()), forward_chain_length(bert_tiny.model.config))
    torch.testing.assert_close(eager, compiled, rtol=0, atol=bound)
    torch.testing.assert_close(eager[:2], again, rtol=0, atol=bound)
    assert cache_key(bert_tiny, texts, None, max_length=128, precision="float32", compiled=True) != \
        cache_key(bert_tiny, texts, None, max_length=128, precision="float32")
    assert resolve_compile("float32", "auto", bert_tiny) is False and resolve_compile("bfloat16", "auto", bert_tiny)
    assert resolve_compile("bfloat16", False, bert_tiny) is False
    with pytest.raises(HarnessError, match="option 'compile'.*auto, true or false"):
        get_benchmark("glue")(compile="yes").run(bert_tiny, RunContext())


def test_token_budget_batches_by_hand():
    from benchmarks.glue_encode import token_budget_batches

    lengths = [3, 10, 4, 10, 2, 5]
    # longest first (ties in input order); rows × the first row's length ≤ 20; at most 3 rows
    assert token_budget_batches(lengths, 20, 3) == [[1, 3], [5, 2, 0], [4]]
    assert token_budget_batches(lengths, 100, 2) == [[1, 3], [5, 2], [0, 4]]
    assert token_budget_batches([], 20, 3) == []
    # a row over budget runs alone
    assert sorted(i for b in token_budget_batches(lengths, 7, 9) for i in b) == list(range(6))


def test_batched_encoding_equals_one_row_at_a_time(bert_tiny, mirror):
    train, _ = load_task(SPECS["glue-rte"], {"train.tsv": Path(mirror) / "glue/RTE/train.tsv",
                                             "dev.tsv": Path(mirror) / "glue/RTE/dev.tsv"})
    first, second = train.first[:12], train.second[:12]
    batched = encode(bert_tiny, first, second, batch_size=4, max_length=64)
    single = torch.cat([encode(bert_tiny, [a], [b], batch_size=1, max_length=64) for a, b in zip(first, second)])
    # other batch shapes and padding: both within the fp32 bound on the features' scale
    bound = 2 * fp32_error_bound(float(single.abs().max()), forward_chain_length(bert_tiny.model.config))
    torch.testing.assert_close(batched, single, rtol=0, atol=bound)
