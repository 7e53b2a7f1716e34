"""GRADIEND as published: the convergence rule, per-seed data order, resumable training, the paper's
name-prediction objective (hand-computed) and the decoder grid with the unchanged model in the argmax."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from methods.gradiend.convergence import ConvergenceRule
from methods.gradiend.data import FeatureClasses, GradiendData
from methods.gradiend.evaluation import PAPER_ALPHAS, PAPER_FEATURE_FACTORS, DecoderGrid, select
from methods.gradiend.name_prediction import (
    NamePredictionObjective,
    name_weights,
    normalise_token,
    preference_scores,
    prompt_text,
)
from methods.gradiend.training import TrainConfig, data_stream, sample_batch, train


# -- convergence rule -------------------------------------------------------------------------------
@pytest.mark.parametrize("r, m1, m2, step, reference, iclr", [
    (0.95, 0.04, -0.045, 60, False, True),   # the committed SmolLM2 seed: r high, means tiny
    (0.90, 0.70, 0.60, 60, False, False),    # same-sign means
    (0.70, 0.60, -0.55, 20, True, True),
    (0.55, 0.60, -0.55, 20, False, True),    # |r| between the two thresholds
    (0.70, 0.60, -0.49, 20, False, True),    # one class mean below 0.5
    (0.70, 0.60, -0.55, 0, False, True),     # best checkpoint is the initial one
    (-0.80, -0.70, 0.65, 40, True, True),    # the sign of r and of the means does not matter
    (float("nan"), 0.7, -0.7, 40, False, False),
])
def test_convergence_rules_on_hand_made_numbers(r, m1, m2, step, reference, iclr):
    assert ConvergenceRule.named("reference").check(r, m1, m2, step)["converged"] is reference
    assert ConvergenceRule.named("iclr").check(r, m1, m2, step)["converged"] is iclr


def test_a_failed_check_says_which_condition_failed():
    checks = ConvergenceRule.named("reference").check(0.95, 0.04, -0.045, 60)
    assert checks == {"converged": False, "improved": True, "score": True, "opposite_signs": True,
                      "class_means": False}


# -- per-seed data order ----------------------------------------------------------------------------
def _tiny_data() -> GradiendData:
    rows = [{"text_0": f"[NAME] went to place {i} and [TARGET] stayed.", "text_1": f"[NAME] went to place {i} and "
             "[TARGET] stayed.", "target_0": "he", "target_1": "she", "cls": i % 2, "split": "train", "kept": True}
            for i in range(40)]
    names = pd.DataFrame([{"name": n, "cls": c, "split": "train"}
                          for c, group in enumerate((["John", "Paul", "Mark"], ["Mary", "Anna", "Emma"]))
                          for n in group])
    classes = FeatureClasses("gender", ("male", "female"), (("he",), ("she",)))
    return GradiendData(classes, pd.DataFrame(rows), names, ["A neutral sentence about the weather today."])


def test_each_seed_has_its_own_deterministic_data_order():
    data = _tiny_data()

    def batches(seed):
        rng = data_stream(0, seed)
        return [sample_batch(data, "train", k % 2, 8, rng)[0] for k in range(4)]

    assert batches(0) == batches(0) and batches(1) == batches(1)
    assert batches(0) != batches(1) != batches(2)


# -- training: stops once enough seeds converged, resumes exactly ------------------------------------
@pytest.fixture(scope="module")
def tiny_engine(bert_tiny):
    from methods.gradiend.gradients import GradientEngine, select_parameters

    return GradientEngine(bert_tiny, select_parameters(bert_tiny, include=["*.layer.1.*"]))


def _probe(engine, data):
    from methods.gradiend.evaluation import EncoderProbe, Examples

    texts, fact, counter, labels = [], [], [], []
    for cls in (0, 1):
        for name in data.names_of("train", cls):
            texts.append(f"{name} went to the market and [TARGET] stayed.")
            fact.append(data.classes.words[cls][0])
            counter.append(data.classes.words[1 - cls][0])
            labels.append(1.0 if cls == 0 else -1.0)
    return EncoderProbe(engine, Examples(texts, fact, counter, labels))


def test_training_resumes_where_it_stopped_with_identical_numbers(tiny_engine, tmp_path):
    data = _tiny_data()
    probe = _probe(tiny_engine, data)
    config = TrainConfig(seeds=(0, 1), lr=1e-3, batch_size=4, max_steps=6, eval_every=2, min_convergent_seeds=None)
    whole = train(tiny_engine, data, config, probe.correlations)

    calls = {"n": 0}

    def crashing(model):
        calls["n"] += 1
        if calls["n"] == 6:  # seed 0 finished (4 evaluations), seed 1 stopped after its step-2 evaluation
            raise KeyboardInterrupt
        return probe.correlations(model)

    with pytest.raises(KeyboardInterrupt):
        train(tiny_engine, data, config, crashing, resume_dir=tmp_path / "resume")
    assert (tmp_path / "resume" / "state.safetensors").is_file()
    resumed = train(tiny_engine, data, config, probe.correlations, resume_dir=tmp_path / "resume")
    for part in ("w_e", "b_e", "w_d", "b_d"):
        torch.testing.assert_close(getattr(resumed.model, part), getattr(whole.model, part), rtol=0, atol=0)
    assert [s.best_step for s in resumed.seeds] == [s.best_step for s in whole.seeds]
    assert resumed.history == whole.history


def test_training_stops_after_the_first_converged_seed(tiny_engine):
    data = _tiny_data()
    probe = _probe(tiny_engine, data)
    # at this rate seed 2 separates the classes within a few steps, while seeds 0 and 1 saturate both classes
    # to the same sign (r ≈ 0.93 but means ≈ −1/−1: not converged) — so seed 2 goes first
    config = TrainConfig(seeds=(2, 0, 1), lr=1e-3, batch_size=4, max_steps=40, eval_every=4,
                         min_convergent_seeds=1, stop_on_convergence=True)
    result = train(tiny_engine, data, config, probe.correlations)
    assert [s.seed for s in result.seeds] == [2] and result.untrained == [0, 1]
    report = result.seeds[0]
    assert report.converged and result.converged
    assert report.steps < 40 and report.steps % 4 == 0  # stopped at the evaluation where it converged
    assert report.mean_first >= 0.5 and report.mean_second <= -0.5


# -- the name-prediction objective -------------------------------------------------------------------
def test_preference_scores_by_hand():
    scores = preference_scores(torch.tensor([0.3, 0.1], dtype=torch.float64),
                               torch.tensor([0.1, 0.2], dtype=torch.float64))
    # BPI_i = (1 − |M − F|)(M + F): 0.8·0.4, 0.9·0.3; MPI_i = (1 − F)·M; FPI_i = (1 − M)·F
    assert scores["bpi"] == pytest.approx((0.32 + 0.27) / 2, abs=1e-12)
    assert scores["mpi"] == pytest.approx((0.27 + 0.08) / 2, abs=1e-12)
    assert scores["fpi"] == pytest.approx((0.07 + 0.18) / 2, abs=1e-12)


NAMES = pd.DataFrame({"name": ["John", "Paul", "Mary", "Anna"], "gender": ["M", "M", "F", "F"],
                      "prob": [0.99, 0.9, 0.98, 0.8]})


def _by_hand(lm, text: str) -> tuple[float, float]:
    """P_M and P_F from a plain HF forward: Σ over the vocabulary tokens that normalise to a name."""
    vocab = lm.tokenizer.get_vocab()
    if lm.kind == "masked":
        enc = lm.tokenizer(text.replace("[TARGET]", lm.tokenizer.mask_token), return_tensors="pt")
        pos = int((enc["input_ids"][0] == lm.tokenizer.mask_token_id).nonzero())
    else:
        enc = lm.tokenizer(text.split("[TARGET]")[0].rstrip(), return_tensors="pt")
        pos = enc["input_ids"].shape[1] - 1
    with torch.no_grad():
        probs = torch.softmax(lm.model(**enc).logits[0, pos].double(), -1)
    totals = {"M": 0.0, "F": 0.0}
    for token, index in vocab.items():
        for name, gender, prob in NAMES.itertuples(index=False):
            if normalise_token(token) == name.lower():
                totals[gender] += float(probs[index]) * prob
    return totals["M"], totals["F"]


@pytest.mark.parametrize("which", ["bert_tiny", "smollm2"])
def test_name_prediction_equals_the_hand_computed_sum(which, request):
    lm = request.getfixturevalue(which)
    weights = name_weights(lm, NAMES)
    prompts = ["My friend, [NAME], repairs engines.", "My friend, [NAME], bakes bread."]
    objective = NamePredictionObjective(lm, prompts, weights)
    p_m, p_f = objective.probabilities(lm)
    assert sorted(objective.texts) == sorted(prompt_text(lm, p) for p in prompts)
    for i, text in enumerate(objective.texts):  # causal LMs score the prompts sorted by length
        want_m, want_f = _by_hand(lm, text)
        # fp32 softmax vs fp64; the sums are over a handful of tokens of probability ≤ 1
        assert p_m[i].item() == pytest.approx(want_m, abs=1e-5 + 1e-3 * want_m)
        assert p_f[i].item() == pytest.approx(want_f, abs=1e-5 + 1e-3 * want_f)
    if lm.kind == "causal":  # " John", "John" and "john" all count for a causal LM
        assert weights.n_tokens["M"] > weights.n_names["M"]
        assert prompt_text(lm, prompts[0]) == "The person, who repairs engines, has the first name [TARGET]"


# -- the decoder grid ---------------------------------------------------------------------------------
def test_the_paper_grid_has_240_candidates():
    assert len(PAPER_FEATURE_FACTORS) * len(PAPER_ALPHAS) == 240
    assert sorted(abs(a) for a in PAPER_ALPHAS)[:2] == [1e-4, 1e-4] and max(PAPER_ALPHAS) == 0.5


def test_selection_prefers_the_unchanged_model_when_every_candidate_is_worse():
    table = pd.DataFrame([{"h": None, "alpha": 0.0, "bpi": 0.30, "fpi": 0.1, "mpi": 0.2, "lms": 0.50},
                          {"h": 1.0, "alpha": 0.1, "bpi": 0.31, "fpi": 0.1, "mpi": 0.2, "lms": 0.40},
                          {"h": -1.0, "alpha": 0.1, "bpi": 0.20, "fpi": 0.3, "mpi": 0.1, "lms": 0.49}])
    chosen = select(table, "bpi")
    assert chosen["unchanged"] and chosen["alpha"] == 0.0 and math.isclose(chosen["score"], 0.15)
    assert select(table, "fpi")["h"] == -1.0  # 0.3·0.49 beats the base's 0.1·0.5


def test_a_real_grid_scores_the_base_model_first_and_rejects_destructive_updates(smollm2):
    # SmolLM2, not bert-tiny: bert-tiny's MLM head is untrained, so its LMS is 0 whatever the weights
    from methods.gradiend.gradients import GradientEngine, select_parameters
    from methods.gradiend.model import Gradiend

    engine = GradientEngine(smollm2, select_parameters(smollm2, include=["*.layers.29.mlp.*"]))
    noise = Gradiend.init(engine.map.dim, [0])
    noise.w_d.normal_(0, 50.0, generator=torch.Generator().manual_seed(0))  # any rewrite wrecks the model
    objective = NamePredictionObjective(smollm2, ["My friend, [NAME], repairs engines.",
                                                  "My friend, [NAME], bakes bread."], name_weights(smollm2, NAMES))
    sentences = ["The weather was calm and the river flowed slowly past the old mill.",
                 "The city council approved the new budget for the public library last week.",
                 "The train to the capital leaves from the main station at nine in the morning."]
    before = engine.flat.clone()
    grid = DecoderGrid(engine, objective, sentences, 0).run(noise, 0, [-10.0, 10.0], [-0.5, 0.5])
    assert len(grid) == 5 and pd.isna(grid["h"].iloc[0])
    assert grid["lms"].iloc[0] > grid["lms"].iloc[1:].max()  # the updates really are destructive
    for metric in ("bpi", "fpi", "mpi"):
        assert select(grid, metric)["unchanged"]
    torch.testing.assert_close(engine.flat, before, rtol=0, atol=0)  # every candidate was undone


def test_old_records_are_judged_by_the_reference_rule_from_their_own_numbers(tmp_path):
    import json

    from leaderboard.flags import unconverged
    from methods.gradiend.relabel import relabel

    seeds = [{"seed": 0, "best_correlation": 0.95, "best_step": 60, "mean_first": 0.04, "mean_second": -0.045,
              "converged": True},
             {"seed": 1, "best_correlation": 0.97, "best_step": 60, "mean_first": 0.71, "mean_second": -0.65,
              "converged": True}]
    record = {"variant_steps": [{"method": "gradiend", "notes": {"selected_seed": 0, "seeds": seeds}},
                                {"method": "inlp", "notes": {}}], "scores": {"ss": 58.9}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    assert relabel(tmp_path) == [(path, False)]
    notes = json.loads(path.read_text())["variant_steps"][0]["notes"]
    assert notes["converged"] is False and notes["seeds"][0]["converged_as_recorded"] is True
    assert notes["seeds"][1]["converged"] is True and "relabel" in notes["convergence_relabelled"]
    from types import SimpleNamespace

    assert unconverged(SimpleNamespace(variant_steps=json.loads(path.read_text())["variant_steps"]))
    assert json.loads(path.read_text())["scores"] == {"ss": 58.9}
    assert relabel(tmp_path) == []  # idempotent


def test_learning_rate_defaults_follow_the_reference_per_family(bert_tiny, smollm2):
    from methods.gradiend.workflow import Settings

    assert Settings(protocol="full").learning_rate(bert_tiny) == 1e-5  # the ICLR code's default
    assert Settings(protocol="full").learning_rate(smollm2) == 1e-4  # its Llama configuration
    assert Settings(protocol="cpu").learning_rate(smollm2) == 1e-3  # the measured cpu deviation
    assert Settings(protocol="cpu", lr=2e-5).learning_rate(smollm2) == 2e-5


def test_race_and_religion_keep_the_class_word_objective(bert_tiny):
    from methods.gradiend.name_prediction import ClassWordObjective

    texts = ["The [TARGET] family moved to the city.", "Many [TARGET] people live in the north."]
    objective = ClassWordObjective(bert_tiny, texts, ["black", "christian"], ["white", "muslim"])
    p1, p2 = objective.probabilities(bert_tiny)
    for i, (text, first, second) in enumerate(zip(texts, ["black", "christian"], ["white", "muslim"])):
        enc = bert_tiny.tokenizer(text.replace("[TARGET]", bert_tiny.tokenizer.mask_token), return_tensors="pt")
        pos = int((enc["input_ids"][0] == bert_tiny.tokenizer.mask_token_id).nonzero())
        with torch.no_grad():
            probs = torch.softmax(bert_tiny.model(**enc).logits[0, pos].double(), -1)
        ids = bert_tiny.tokenizer.convert_tokens_to_ids([first, second])
        assert p1[i].item() == pytest.approx(float(probs[ids[0]]), abs=1e-6 + 1e-4 * float(probs[ids[0]]))
        assert p2[i].item() == pytest.approx(float(probs[ids[1]]), abs=1e-6 + 1e-4 * float(probs[ids[1]]))


def test_every_run_seed_trains_its_own_gradiend_seeds():
    from methods.gradiend.workflow import Settings

    assert Settings(seed=0).training_seeds() == (0, 1, 2)  # run seed 0: the configured seeds
    assert Settings(seed=1).training_seeds() == (3, 4, 5) and Settings(seed=2, seeds=(7,)).training_seeds() == (9,)
