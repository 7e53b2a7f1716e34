"""Issue 14, bad inputs: every bad value is one `error:` line with exit 2 before any work starts.

Configs go through the real CLI (`harness.cli.main`) with `--dry-run`, so nothing here loads a model:
a value that only failed after the model loaded would pass these dry runs and fail the test.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from conftest import PROJECT_ROOT
from harness.cli import main
from harness.config import expand, load_config, parse_config
from harness.errors import HarnessError
from harness.records import record_path, slug

BASE = {"name": "faults", "models": ["zoo:bert-tiny"], "variants": ["base"], "benchmarks": ["lm-quality"]}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def dry_run(tmp_path, capsys, config: dict, *extra: str) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    rc = main(["run", str(path), "--results", str(tmp_path / "runs"), "--dry-run", *extra])
    return rc, (one_error_line(capsys) if rc else capsys.readouterr().out)


def _bench(name: str, **options) -> dict:
    return {**BASE, "benchmarks": [{"name": name, "options": options}]}


BAD_CONFIGS = {
    # case 4: typos and seeds
    "method_options typo": ({**BASE, "variants": ["leace"], "method_options": {"leac": {"n_per_class": 50}}},
                            ["method_options.leac", "unknown method 'leac'", "leace"]),
    "method_options unused": ({**BASE, "variants": ["leace"], "method_options": {"inlp": {"iterations": 3}}},
                              ["method_options.inlp", "no variant uses method 'inlp'"]),
    "variant options typo": ({**BASE, "variants": [{"name": "leace", "options": {"leac": {"n_per_class": 5}}}]},
                             ["variants[0].options", "has no method leac"]),
    "seed true": ({**BASE, "seeds": [True]}, ["seeds[0]", "True"]),
    "seed text": ({**BASE, "seeds": ["1"]}, ["seeds[0]", "'1'"]),
    "seed float": ({**BASE, "seeds": [1.5]}, ["seeds[0]", "1.5"]),
    "seed repeated": ({**BASE, "seeds": [0, 0]}, ["seeds", "seed 0 is listed twice"]),
    # case 5: values that used to fail only after the model loaded
    "seed negative": ({**BASE, "seeds": [-1]}, ["seeds[0]", "greater than or equal to 0", "-1"]),
    "device banana": ({**BASE, "device": "banana"}, ["key 'device'", "'banana'", "cuda:N"]),
    "batch_size true": ({**BASE, "batch_size": True}, ["batch_size"]),
    "lm-quality n_sentences -5": (_bench("lm-quality", n_sentences=-5), ["n_sentences", "-5", "integer ≥ 1"]),
    "lm-quality n_sentences 0": (_bench("lm-quality", n_sentences=0), ["n_sentences", "is 0", "integer ≥ 1"]),
    "lm-quality n_sentences abc": (_bench("lm-quality", n_sentences="abc"), ["n_sentences", "'abc'"]),
    "lm-quality mask_fraction 2": (_bench("lm-quality", mask_fraction=2.0), ["mask_fraction", "≤ 1"]),
    "crows resamples x": (_bench("crows", resamples="x"), ["crows", "resamples", "'x'"]),
    "crows scoring": (_bench("crows", scoring="pll"), ["scoring", "'pll'", "bias-bench or nangia"]),
    "stereoset resamples -1": (_bench("stereoset", resamples=-1), ["stereoset", "resamples", "-1", "≥ 0"]),
    "stereoset split": (_bench("stereoset", split="train"), ["split", "'train'", "auto, test, dev or test-subset"]),
    "seat n_permutations true": (_bench("seat", n_permutations=True), ["n_permutations", "true"]),
    "seat unknown test": (_bench("seat", tests=["sent-weat99"]), ["sent-weat99", "allowed:"]),
    "glue protocol": (_bench("glue", protocol="zero"), ["glue", "protocol", "'zero'"]),
    "glue task": (_bench("superglue", tasks="cola"), ["superglue", "cola", "choose from: boolq"]),
    "glue compile": (_bench("glue", compile="yes"), ["compile", "auto, true or false"]),
    "glue-zs backend": (_bench("glue-zs", backend="vllm"), ["backend", "'vllm'"]),
    "leace n_per_class abc": ({**BASE, "variants": ["leace"], "method_options": {"leace": {"n_per_class": "abc"}}},
                              ["method_options.leace", "n_per_class", "'abc'", "integer ≥ 1 or null"]),
    "leace in a variant's options": ({**BASE, "variants": [{"name": "cda+leace",
                                                            "options": {"leace": {"affine": "yes"}}}]},
                                     ["variants[0]", "affine", "true or false"]),
    "inlp C 0": ({**BASE, "variants": ["inlp"], "method_options": {"inlp": {"C": 0}}}, ["inlp", "'C'", "> 0"]),
    "rlace lr as YAML text": ({**BASE, "variants": ["rlace"], "method_options": {"rlace": {"lr": "1e-3"}}},
                              ["rlace", "'lr'", "1.0e-3"]),
    "gradiend rule": ({**BASE, "variants": ["gradiend"], "method_options": {"gradiend": {"rule": "best"}}},
                      ["gradiend", "rule", "product or lms-threshold"]),
    "gradiend seeds repeated": ({**BASE, "variants": ["gradiend"], "method_options": {"gradiend": {"seeds": [1, 1]}}},
                                ["gradiend", "seeds", "repeats"]),
    "cda steps 0": ({**BASE, "variants": ["cda"], "method_options": {"cda": {"steps": 0}}}, ["cda", "steps"]),
    "dropout rate 1.5": ({**BASE, "variants": ["dropout"], "method_options": {"dropout": {"hidden_dropout": 1.5}}},
                         ["dropout", "hidden_dropout", "< 1"]),
    "selfdebias epsilon 0": ({**BASE, "variants": ["selfdebias"], "method_options": {"selfdebias": {"epsilon": 0}}},
                             ["selfdebias", "epsilon", "> 0"]),
    "selfdebias prefixes text": ({**BASE, "variants": ["selfdebias"],
                                  "method_options": {"selfdebias": {"prefixes": "Be fair: "}}},
                                 ["selfdebias", "prefixes", "list of strings"]),
    "sentdebias n_components -1": ({**BASE, "variants": ["sentdebias"],
                                    "method_options": {"sentdebias": {"n_components": -1}}}, ["n_components"]),
    # case 8a
    "model ..": ({**BASE, "models": [".."]}, ["models[0]", "'..'", "config.json"]),
    "model ./missing": ({**BASE, "models": ["./no-such-model"]}, ["models[0]", "no-such-model"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_value_is_one_line_at_dry_run(tmp_path, capsys, case):
    config, fragments = BAD_CONFIGS[case]
    rc, line = dry_run(tmp_path, capsys, config)
    assert rc == 2
    for fragment in fragments:
        assert fragment in line, line
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU, so device: cuda is valid")
def test_cuda_without_a_gpu_fails_at_load(tmp_path, capsys):
    rc, line = dry_run(tmp_path, capsys, {**BASE, "device": "cuda"})
    assert rc == 2 and "key 'device'" in line and "cuda is not available" in line and "use device: cpu" in line


def test_good_values_still_pass(tmp_path, capsys):
    config = {**BASE, "variants": ["base", "leace", {"name": "cda+inlp", "options": {"inlp": {"iterations": 3}}}],
              "method_options": {"leace": {"n_per_class": 50, "affine": False}, "cda": {"lr": 1.0e-4}},
              "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 5}},
                             {"name": "seat", "options": {"tests": "sent-weat6, sent-weat7"}},
                             {"name": "glue", "options": {"compile": False, "tasks": ["rte"], "max_train": None}}],
              "seeds": [0, 3], "device": "cpu"}
    rc, out = dry_run(tmp_path, capsys, config)
    assert rc == 0 and "15 run(s)" in out  # base runs once (seed-free): (1 + 2 + 2) variant-seeds x 3 benchmarks


def test_every_adapter_declares_its_options_and_its_defaults_pass_them():
    from harness.options import Option
    from harness.registry import BENCHMARKS, METHODS, load_plugins

    load_plugins()
    for table in (METHODS, BENCHMARKS):
        for name, cls in table.items():
            assert cls.options_spec and set(cls.options_spec) == set(cls.default_options), name
            for key, option in cls.options_spec.items():
                assert isinstance(option, Option) and option.problem(option.default) is None, (name, key)


def test_valid_configs_keep_their_hash_so_committed_records_are_found():
    """Values are never converted: every committed record of the demo grid made by the current adapter versions is
    found under the hash the grid computes today (records of older versions are re-run, not matched)."""
    from harness.records import load_records

    records = load_records(PROJECT_ROOT / "results" / "runs")
    matched = 0
    for spec in expand(load_config(PROJECT_ROOT / "configs" / "demo.yaml")):
        same = [r for r in records if (r.model, r.variant, r.benchmark, r.seed) == (spec.model, spec.variant,
                                                                                      spec.benchmark, spec.seed)
                and r.config.get("versions") == spec.extra["versions"]]
        assert all(r.config_hash == spec.config_hash for r in same), (spec.variant, spec.benchmark)
        matched += bool(same)
    assert matched >= 20  # at least the records regenerated under the current versions
    # an integer given for a float option stays an integer (C: 1 hashes as it always did)
    spec = expand(parse_config({**BASE, "variants": ["inlp"], "method_options": {"inlp": {"C": 1}}}))[0]
    assert spec.variant_options["inlp"]["C"] == 1 and isinstance(spec.variant_options["inlp"]["C"], int)


# -- case 5: CLI flags ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragment", [
    (["compare", "base", "inlp", "--resamples", "0"], "--resamples: must be an integer ≥ 1, not '0'"),
    (["compare", "base", "inlp", "--resamples", "-5"], "--resamples: must be an integer ≥ 1, not '-5'"),
    (["check", "--baseline", "b.json", "--tolerance", "-1"], "--tolerance: must be a number ≥ 0, not '-1'"),
    (["check", "--baseline", "b.json", "--tolerance", "nan"], "--tolerance: must be a number ≥ 0"),
])
def test_bad_flag_values_are_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert fragment in one_error_line(capsys)


# -- case 6: StereoSet predictions ----------------------------------------------------------------
@pytest.fixture
def gold_and_predictions(mirror, tmp_path):
    gold = mirror / "stereoset" / "test_subset.json"
    raw = json.loads(gold.read_text())
    items = [{"id": s["id"], "score": 0.1 * (i % 7)} for i, s in
             enumerate(s for c in raw["data"]["intrasentence"] for s in c["sentences"])]
    return gold, raw, items


def _score(tmp_path, gold, items) -> int:
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({"intrasentence": items}))
    return main(["stereoset", "score", "--gold", str(gold), "--predictions", str(predictions)])


@pytest.mark.parametrize("bad", ["nan text", "NaN number", "duplicate id"])
def test_wrong_predictions_are_rejected(tmp_path, capsys, gold_and_predictions, bad):
    gold, _, items = gold_and_predictions
    assert _score(tmp_path, gold, items) == 0
    capsys.readouterr()
    first = items[0]["id"]
    if bad == "nan text":
        items[0] = {"id": first, "score": "nan"}
    elif bad == "NaN number":
        items[0] = {"id": first, "score": float("nan")}  # json.dumps writes NaN, which json.loads accepts
    else:
        items.append({"id": first, "score": 0.9})
    assert _score(tmp_path, gold, items) == 2
    line = one_error_line(capsys)
    assert "pred.json" in line and first in line
    assert ("appears twice" in line) if bad == "duplicate id" else ("not a finite number" in line)


def test_duplicate_gold_cluster_is_rejected(tmp_path, capsys, gold_and_predictions):
    _, raw, items = gold_and_predictions
    raw["data"]["intrasentence"].append(raw["data"]["intrasentence"][0])
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(raw))
    assert _score(tmp_path, gold, items) == 2
    line = one_error_line(capsys)
    assert "gold.json" in line and raw["data"]["intrasentence"][0]["id"] in line and "appears twice" in line


# -- case 7: outputs that cannot be written, found before the work ---------------------------------
def test_results_under_a_file_or_in_proc_fail_before_the_work(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(BASE))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for results, fragment in ((blocker, "is a file, not a folder"), (blocker / "runs", "is a file, not a folder"),
                              ("/proc/gradiend-bench-runs", "no file can be created in /proc")):
        for dry in ([], ["--dry-run"]):  # the real run fails at once too: no model loads
            assert main(["run", str(config), "--results", str(results), *dry]) == 2
            line = one_error_line(capsys)
            assert "results folder" in line and fragment in line and "--results" in line
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_fails_before_the_work(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(BASE))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["run", str(config), "--results", str(locked / "runs")]) == 2
        assert "no file can be created in" in one_error_line(capsys)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("argv, fragment", [
    (["leaderboard", "-o", "{blocker}/board.md"], "--output file"),
    (["leaderboard", "--output-dir", "{blocker}/boards"], "--output-dir"),
    (["leaderboard", "--plots", "{blocker}/figures"], "--plots folder"),
    (["plot", "-o", "{blocker}/figures"], "--output folder"),
    (["check", "--update", "--baseline", "{blocker}/baseline.json"], "--baseline file"),
    (["leaderboard", "-o", "/proc/board.md"], "--output file"),
])
def test_unwritable_leaderboard_outputs_fail_before_the_work(tmp_path, capsys, argv, fragment):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = [a.format(blocker=blocker) for a in argv] + ["--results", str(tmp_path / "no-records")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert fragment in line and "cannot be written" in line


def test_an_os_error_at_the_cli_boundary_is_one_line(tmp_path, capsys):
    from leaderboard_records import write_grid

    write_grid(tmp_path / "runs", {("m1", "base", "stereoset"): {"ss": 60.0, "lms": 90.0, "icat": 70.0}})
    missing = tmp_path / "README.md"  # --readme must name an existing file: reading it raises FileNotFoundError
    assert main(["leaderboard", "--results", str(tmp_path / "runs"), "--readme", str(missing), "--no-intervals"]) == 2
    line = one_error_line(capsys)
    assert str(missing) in line and "No such file" in line


# -- case 8a: a record never leaves its folder ------------------------------------------------------
def test_record_paths_stay_inside_the_results_folder(tmp_path):
    assert {slug(".."), slug("."), slug(""), slug("...")} .isdisjoint({"..", ".", ""})
    spec = expand(parse_config(BASE))[0]
    for model in ("..", ".", "../..", "/abs/model", "~/m"):
        path = record_path(tmp_path / "runs", spec.__class__(**{**spec.__dict__, "model": model}))
        assert os.path.abspath(path).startswith(str(tmp_path / "runs") + os.sep), (model, path)
    with pytest.raises(HarnessError, match="models\\[0\\].*'\\.\\.'"):
        parse_config({**BASE, "models": [".."]})
