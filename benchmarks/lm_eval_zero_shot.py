"""Zero-shot GLUE / SuperGLUE through ``lm-eval`` (``glue-zs``, ``superglue-zs``), with the hooks active.

The prompts are lm-eval's own task definitions (``include``-d from the installed package); our local copies
only swap the data for the mirrored validation files (written as the hub's jsonl rows under
``<cache>/lm_eval/``), so nothing is fetched from the hub. Scoring: each choice's log-likelihood of the
continuation given the prompt, the highest wins (lm-eval's ``acc``). The model goes to lm-eval as an
object:

* causal LMs — lm-eval's Hugging Face backend (``HFLM``) wrapping our already-loaded model (hidden hooks
  sit on its body, so they apply); when the model carries a *prediction* hook (SelfDebias), which HFLM
  would bypass, our own class scores instead: :math:`\\sum_t \\log p(x_t \\mid \\text{context}, x_{<t})`;
* masked LMs — our class ``gradiend-bench`` with the pseudo-log-likelihood of the continuation,
  :math:`\\sum_{t \\in \\text{cont}} \\log p(x_t \\mid x_{\\setminus t})`, each continuation token masked in turn.

**MultiRC**: lm-eval 0.4's definition lists the choices as ``[… yes, … no]`` with ``doc_to_target: label``,
so a correct answer (label 1) would be scored as "no"; ours lists ``[… no, … yes]`` (checked in the tests).
Metrics are ours (:mod:`benchmarks.glue_tasks`) on lm-eval's per-document predictions: MCC for CoLA, F1 for
MRPC, (acc + macro-F1)/2 for CB, (F1a + EM)/2 for MultiRC, accuracy otherwise, ×100 with bootstrap CIs.
STS-B has no zero-shot definition in lm-eval and is not scored; QNLI is (its validation file is mirrored).

**Instruct models**: as bias-bench's ``shell_jobs/glue_llama.sh`` (``lm_eval … --apply_chat_template`` for
Llama-3.2-3B-Instruct), a model that :func:`chat_decision` picks gets lm-eval's ``apply_chat_template``: each
prompt becomes the user turn of the tokenizer's own chat template with the assistant header opened, and the
answer follows without lm-eval's target delimiter (lm-eval's rule under a chat template). Deviation: the
template gets a fixed ``date_string`` (:data:`CHAT_TEMPLATE_ARGS`, Llama-3.2's own fallback), where the
reference's runs wrote the day they ran. The record says ``chat_template: {used, reason, date_string,
example}`` (``example``: the first request as lm-eval built it).

``score`` and ``floor`` are the suite means of :mod:`benchmarks.glue_suite` (WNLI reported but outside the
mean; floor = the best constant answer on the same documents, :func:`benchmarks.probe.floor_score`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmarks.glue_suite import with_floors
from benchmarks.glue_tasks import (
    _HUB_FIELDS,
    GLUE_TASKS,
    SUPERGLUE_TASKS,
    TaskSpec,
    load_task,
    read_jsonl,
    superglue_rows,
)
from benchmarks.probe import bootstrap_task, floor_score
from harness.api import Benchmark, BenchmarkResult, RunContext, Score
from harness.atomic import write_text_atomic
from harness.errors import HarnessError
from harness.models.chat import BIAS_BENCH_RULE, ChatDecision, instruct_chat
from harness.models.interface import LanguageModel
from harness.options import Option
from harness.registry import register_benchmark

_SPECS = {t.dataset: t for t in GLUE_TASKS + SUPERGLUE_TASKS}
# our name → (catalog data set, lm-eval yaml relative to lm_eval/tasks)
ZS_GLUE = {"cola": ("glue-cola", "glue/cola/default.yaml"), "sst2": ("glue-sst2", "glue/sst2/default.yaml"),
           "mrpc": ("glue-mrpc", "glue/mrpc/default.yaml"), "qqp": ("glue-qqp", "glue/qqp/default.yaml"),
           "mnli": ("glue-mnli", "glue/mnli/default.yaml"), "qnli": ("glue-qnli", "glue/qnli/default.yaml"),
           "rte": ("glue-rte", "glue/rte/default.yaml"), "wnli": ("glue-wnli", "glue/wnli/default.yaml")}
ZS_SUPERGLUE = {"boolq": ("superglue-boolq", "super_glue/boolq/default.yaml"),
                "cb": ("superglue-cb", "super_glue/cb/default.yaml"),
                "copa": ("superglue-copa", "super_glue/copa/default.yaml"),
                "multirc": ("superglue-multirc", "super_glue/multirc/default.yaml"),
                "rte": ("superglue-rte", "super_glue/rte/default.yaml"),
                "wic": ("superglue-wic", "super_glue/wic/default.yaml"),
                "wsc": ("superglue-wsc", "super_glue/wsc/default.yaml")}
# Llama-3.2's chat template writes "Today Date: <the day it runs>" unless given a date; its own fallback date here,
# so the Instruct model's prompts (and numbers) do not change from day to day
CHAT_TEMPLATE_ARGS = {"date_string": "26 Jul 2024"}
MULTIRC_CHOICES = "['''{{answer}}\\nIs the answer correct? no''', '''{{answer}}\\nIs the answer correct? yes''']"


# -- data: mirrored validation files as the hub's rows --------------------------------------------------
def hub_rows(spec: TaskSpec, path: Path) -> list[dict[str, Any]]:
    """Validation rows in the hub's format (integer labels in the hub's class order) from raw or hub files."""
    if path.suffix == ".tsv":
        split = load_task(spec, {"train.tsv": path, "dev.tsv": path})[1]["validation"]
        a, b = _HUB_FIELDS[spec.name]
        return [{a: x, **({b: y} if b else {}), "label": int(lab), "idx": i}
                for i, (x, y, lab) in enumerate(zip(split.first, split.second, split.labels))]
    records = read_jsonl(path)
    if path.name != "val.jsonl":
        return records  # already the hub's rows
    classes = spec.classes
    if spec.name == "multirc":
        superglue_rows(spec, records, path)  # validates; then flatten like the hub
        return [{"paragraph": r["passage"]["text"], "question": q["question"], "answer": a["text"],
                 "idx": {"paragraph": r["idx"], "question": q["idx"], "answer": a["idx"]}, "label": int(a["label"])}
                for r in records for q in r["passage"]["questions"] for a in q["answers"]]
    superglue_rows(spec, records, path)  # validates fields and labels, clear errors on malformed files
    rows = []
    for r in records:
        row = {**r, **(r.get("target") or {})}
        row.pop("target", None)
        if spec.name != "copa":
            row["label"] = classes.index(str(row["label"]))
        rows.append(row)
    return rows


def task_yaml(name: str, include: Path, data: Path) -> str:
    lines = [f"include: {json.dumps(str(include))}", f"task: {name}", "tag: gradiend_bench_zs",
             "dataset_path: json", "dataset_name: null",
             f"dataset_kwargs: {{data_files: {{validation: {json.dumps(str(data))}}}}}",
             "training_split: null", "validation_split: validation", "test_split: null", "fewshot_split: null"]
    if "multirc" in name:
        lines.append(f"doc_to_choice: {json.dumps(MULTIRC_CHOICES)}")
    return "\n".join(lines) + "\n"


# -- the model object -----------------------------------------------------------------------------------
_LM_CLASS = None


def harness_lm_class():
    """lm-eval ``LM`` subclass over our :class:`LanguageModel` (registered as ``gradiend-bench``)."""
    global _LM_CLASS
    if _LM_CLASS is not None:
        return _LM_CLASS
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model

    from harness.scoring import MaskedQuery, causal_token_log_probs, masked_log_probs

    @register_model("gradiend-bench")
    class HarnessLM(LM):
        def __init__(self, lm: LanguageModel, max_length: int = 512, progress: bool = False):
            super().__init__()
            self.lm, self.max_length, self.progress = lm, max_length, progress

        def _pieces(self, requests):
            pairs = [r.args[:2] for r in requests]
            ctx = self.lm.token_ids([c for c, _ in pairs], add_special_tokens=False)
            cont = self.lm.token_ids([x for _, x in pairs], add_special_tokens=False)
            return ctx, cont

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            ctx, cont = self._pieces(requests)
            if self.lm.kind == "causal":
                seqs = [(c + x)[-(self.max_length - 1):] for c, x in zip(ctx, cont)]
                values = causal_token_log_probs(self.lm, seqs, progress=self.progress)
                return [(float(v[-len(x):].sum()), False) for v, x in zip(values, cont)]
            tok = self.lm.tokenizer
            start = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
            end = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
            queries, owner = [], []
            for k, (c, x) in enumerate(zip(ctx, cont)):
                body = (c + x)[-(self.max_length - 2):]
                ids = tuple([start, *body, end])
                for p in range(len(ids) - 1 - len(x), len(ids) - 1):
                    queries.append(MaskedQuery(ids, (p,), p, ids[p]))
                    owner.append(k)
            values = masked_log_probs(self.lm, queries, progress=self.progress)
            totals = np.bincount(np.asarray(owner, dtype=np.int64), weights=values, minlength=len(ctx))
            return [(float(t), False) for t in totals]

        @property
        def tokenizer_name(self) -> str:  # lm-eval's request-cache fingerprint under a chat template
            return str(getattr(self.lm.tokenizer, "name_or_path", self.lm.spec)).replace("/", "__")

        def chat_template(self, chat_template: bool | str = False) -> str | None:
            return getattr(self.lm.tokenizer, "chat_template", None) if chat_template else None

        def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
            """As lm-eval's HFLM: the tokenizer's template, rendered as text (it writes its own BOS)."""
            return self.lm.tokenizer.apply_chat_template(
                chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt, **CHAT_TEMPLATE_ARGS)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("rolling log-likelihood is not used by the GLUE/SuperGLUE tasks")

        def generate_until(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("generation is not used by the GLUE/SuperGLUE tasks")

    _LM_CLASS = HarnessLM
    return HarnessLM


def chat_decision(lm: LanguageModel) -> ChatDecision:
    """Whether the prompts go through the tokenizer's chat template: bias-bench's ``shell_jobs/glue_llama.sh``
    runs ``lm_eval --apply_chat_template`` for its Llama-3.2-3B-Instruct models (bias-bench's rule,
    :data:`harness.models.chat.BIAS_BENCH_RULE`), not for base Llama."""
    return instruct_chat(lm, BIAS_BENCH_RULE, "prompts rendered with its own chat template, as bias-bench's "
                                              "shell_jobs/glue_llama.sh (lm_eval --apply_chat_template)")


def chat_note(chat: ChatDecision, samples: dict, local: dict[str, str]) -> dict[str, Any]:
    """The record's ``chat_template``: the decision, the template's arguments and the first request as lm-eval
    built it (prompt and first choice), so the record shows what the model read."""
    name, task = next(iter(local.items()))
    context, continuation = min(samples[task], key=lambda s: s["doc_id"])["arguments"][0][:2]
    return {**chat.note(), **CHAT_TEMPLATE_ARGS,
            "example": {"task": name, "context": context, "continuation": continuation}}


def lm_eval_model(lm: LanguageModel, backend: str, batch_size: int, progress: bool):
    if backend == "auto":
        backend = "hf" if lm.kind == "causal" and not lm.prediction_hooks else "harness"
    if backend == "hf":
        if lm.kind != "causal":
            raise HarnessError("lm-eval's hf backend scores causal LMs only", "use backend 'harness' or 'auto'")
        from lm_eval.models.huggingface import HFLM

        chat = {"chat_template_args": CHAT_TEMPLATE_ARGS} if chat_decision(lm).used else {}
        return HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size, **chat), "hf"
    return harness_lm_class()(lm, progress=progress), "harness"


# -- the benchmarks -------------------------------------------------------------------------------------
class ZeroShotSuite(Benchmark):
    tasks: ClassVar[dict[str, tuple[str, str]]] = {}
    version = 2  # 2: floors, WNLI outside the mean
    reads = "predictions"
    headline = ("score",)
    execution_options = ("batch_size",)
    # limit: examples per task (lm-eval's: a number < 1 is a fraction); null: all
    options_spec = {"tasks": Option(list, None, allow_none=True, items=Option(str, ""), min_items=1, comma_text=True),
                    "limit": Option(float, None, above=0, allow_none=True),
                    "backend": Option(str, "auto", choices=("auto", "hf", "harness")),
                    "batch_size": Option(int, 16, minimum=1), "resamples": Option(int, 1000, minimum=1)}

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.selected()  # unknown task names fail when the config is read

    def selected(self) -> list[str]:
        chosen = self.options["tasks"]
        names = list(self.tasks) if chosen is None else (
            [c.strip() for c in chosen.split(",")] if isinstance(chosen, str) else list(chosen))
        unknown = [n for n in names if n not in self.tasks]
        if unknown or not names:
            raise HarnessError(f"{self.name} has no task(s) {', '.join(unknown) or '(none given)'}",
                               f"choose from: {', '.join(self.tasks)}")
        return names

    def run(self, lm: LanguageModel, ctx: RunContext) -> BenchmarkResult:
        import lm_eval
        import lm_eval.tasks

        names = self.selected()
        root = Path(ctx.cache_dir or Path.cwd() / ".cache") / "lm_eval" / self.name
        package = Path(lm_eval.tasks.__file__).parent
        unavailable, local, docs = {}, {}, {}
        for name in names:
            dataset, yaml_rel = self.tasks[name]
            spec = _SPECS[dataset]
            resolved = None
            for files in (["dev.tsv"], ["val.jsonl"], ["validation.jsonl"],
                          ["validation_matched.jsonl"]):
                try:
                    resolved = ctx.data(dataset, files)
                    break
                except HarnessError as exc:
                    reason = exc.what
            if resolved is None:
                unavailable[name] = reason
                continue
            rows = hub_rows(spec, next(iter(resolved.files.values())))
            data = root / name / "validation.jsonl"
            write_text_atomic(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            task = f"gbzs_{self.name.split('-')[0]}_{name}"
            write_text_atomic(root / "tasks" / f"{task}.yaml", task_yaml(task, package / yaml_rel, data))
            local[name], docs[name] = task, rows
        if not local:
            raise HarnessError(f"{self.name}: no task has data here (" +
                               "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + ")",
                               "set GRADIEND_BENCH_DATA to the data mirror or run with internet access")
        model, backend = lm_eval_model(lm, self.options["backend"], self.options["batch_size"], ctx.progress)
        manager = lm_eval.tasks.TaskManager(include_path=str(root / "tasks"))
        chat = chat_decision(lm)
        out = lm_eval.simple_evaluate(model=model, tasks=list(local.values()), task_manager=manager,
                                      num_fewshot=0, limit=self.options["limit"], log_samples=True,
                                      bootstrap_iters=0, random_seed=ctx.seed, numpy_random_seed=ctx.seed,
                                      torch_random_seed=ctx.seed, fewshot_random_seed=ctx.seed,
                                      **({"apply_chat_template": True} if chat.used else {}))
        scores, per_task, draws, floors = {}, {}, {}, {}
        for name, task in local.items():
            spec = _SPECS[self.tasks[name][0]]
            samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
            gold = np.array([int(s["doc"]["label"]) for s in samples])
            pred = np.array([int(np.argmax([r[0] for r in s["filtered_resps"]])) for s in samples])
            groups = None
            if spec.name == "multirc":
                keys = [f"{s['doc']['idx']['paragraph']}/{s['doc']['idx']['question']}" for s in samples]
                groups = np.unique(np.asarray(keys), return_inverse=True)[1]
            metric_spec = replace(spec, kind="classification") if spec.kind == "choice" else spec
            from benchmarks.glue_tasks import Split
            split = Split([""] * len(gold), [None] * len(gold), gold, groups)
            value, draw = bootstrap_task(metric_spec, split, [pred], resamples=self.options["resamples"], seed=ctx.seed)
            low, high = np.percentile(draw * 100, [2.5, 97.5])
            scores[name] = Score(value * 100, float(low), float(high), len(gold))
            draws[name] = draw * 100
            floors[name] = floor_score(metric_spec, split) * 100
            per_task[name] = {"metric": spec.metric, "score": value * 100, "lm_eval_task": task, "examples": len(gold),
                              "lm_eval_metrics": {k: v for k, v in out["results"][task].items()
                                                  if isinstance(v, (int, float)) and "stderr" not in k}}
        scores, summary = with_floors(scores, floors, draws, per_task)
        return BenchmarkResult(scores, protocol="zero-shot", details={
            "protocol": "zero-shot", "backend": backend, "tasks": list(per_task), **summary, "unavailable": unavailable,
            "per_task": per_task, "limit": self.options["limit"], "lm_eval_version": lm_eval.__version__,
            **({"chat_template": chat_note(chat, out["samples"], local)} if chat.used else {})})


@register_benchmark("glue-zs")
class GlueZeroShot(ZeroShotSuite):
    """Zero-shot GLUE through lm-eval's prompts on the mirrored validation files (hooks active)."""

    tasks = ZS_GLUE
    datasets = tuple(d for d, _ in ZS_GLUE.values())


@register_benchmark("superglue-zs")
class SuperGlueZeroShot(ZeroShotSuite):
    """Zero-shot SuperGLUE through lm-eval's prompts (MultiRC choice order fixed), hooks active."""

    tasks = ZS_SUPERGLUE
    datasets = tuple(d for d, _ in ZS_SUPERGLUE.values())
