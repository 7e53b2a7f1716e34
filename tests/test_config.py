"""Experiment config validation: errors name the key and the allowed values."""

from __future__ import annotations

import pytest

from harness.config import expand, load_config, parse_config
from harness.errors import HarnessError

GOOD = {"name": "t", "models": ["zoo:bert-tiny"], "benchmarks": ["lm-quality"]}


def test_defaults_and_expansion():
    config = parse_config({**GOOD, "seeds": [0, 1], "variants": ["inlp"]})
    specs = expand(config)
    assert [s.seed for s in specs] == [0, 1]
    assert specs[0].variant == "inlp" and specs[0].protocol == "cpu"
    assert specs[0].benchmark_options["n_sentences"] == 1000  # defaults resolved into the hashed config
    assert specs[0].config_hash != specs[1].config_hash


def test_seed_free_variants_run_once_and_say_so():
    config = parse_config({**GOOD, "seeds": [3, 1, 2], "variants": ["base", "selfdebias", "inlp", "cda+selfdebias"]})
    seeds = {}
    for spec in expand(config):
        seeds.setdefault(spec.variant, []).append((spec.seed, spec.full_config()["seed_dependent"]))
    assert seeds == {"base": [(3, False)], "selfdebias": [(3, False)],
                     "inlp": [(3, True), (1, True), (2, True)], "cda+selfdebias": [(3, True), (1, True), (2, True)]}


def test_fewer_seeds_drop_only_the_named_cells_and_keep_record_hashes():
    """GLUE of the weight-changing variants stays at seed 0; post-processing, the other benchmark and the
    seed-free base keep theirs, and a kept run's record hash is the one the plain config gives."""
    raw = {**GOOD, "seeds": [0, 1, 2], "benchmarks": ["lm-quality", "glue"],
           "variants": ["base", "cda", "inlp", "cda+inlp"]}
    rule = {"models": ["zoo:bert-tiny"], "benchmarks": ["glue"], "variants": "weight-changing", "seeds": [0]}
    reduced = expand(parse_config({**raw, "fewer_seeds": [rule]}))
    cells = {}
    for spec in reduced:
        cells.setdefault((spec.variant, spec.benchmark), []).append(spec.seed)
    assert cells == {("base", "lm-quality"): [0], ("base", "glue"): [0], ("cda", "lm-quality"): [0, 1, 2],
                     ("cda", "glue"): [0], ("inlp", "lm-quality"): [0, 1, 2], ("inlp", "glue"): [0, 1, 2],
                     ("cda+inlp", "lm-quality"): [0, 1, 2], ("cda+inlp", "glue"): [0]}
    plain = {s.config_hash for s in expand(parse_config(raw))}
    assert {s.config_hash for s in reduced} < plain
    listed = expand(parse_config({**raw, "fewer_seeds": [{**rule, "variants": ["inlp"], "seeds": [1, 2]}]}))
    assert sorted(s.seed for s in listed if (s.variant, s.benchmark) == ("inlp", "glue")) == [1, 2]
    assert sorted(s.seed for s in listed if (s.variant, s.benchmark) == ("cda", "glue")) == [0, 1, 2]


@pytest.mark.parametrize("rule, message", [
    ({"seeds": [5]}, r"fewer_seeds\[0\]\.seeds': 5 is not in the config's seeds"),
    ({"seeds": [0], "benchmarks": ["glu"]}, r"'glu' is not in the config's benchmarks.*use one of: lm-quality"),
    ({"seeds": [0], "models": ["zoo:bert"]}, r"'zoo:bert' is not in the config's models"),
    ({"seeds": [0], "variants": ["cda"]}, r"'cda' is not in the config's variants"),
    ({"seeds": [0], "variants": "weight"}, r"fewer_seeds\[0\]\.variants"),
    ({"seeds": []}, r"fewer_seeds\[0\]\.seeds"),
])
def test_fewer_seeds_rules_name_only_the_configs_own_cells(rule, message):
    with pytest.raises(HarnessError, match=message):
        parse_config({**GOOD, "seeds": [0, 1], "variants": ["inlp"], "fewer_seeds": [rule]}, "x.yaml")


def test_hash_ignores_execution_settings_but_not_options():
    a = expand(parse_config(GOOD))[0]
    b = expand(parse_config({**GOOD, "batch_size": 8, "device": "cpu"}))[0]
    c = expand(parse_config({**GOOD, "benchmarks": [{"name": "lm-quality", "options": {"n_sentences": 10}}]}))[0]
    assert a.config_hash == b.config_hash != c.config_hash


@pytest.mark.parametrize("raw, message", [
    ({**GOOD, "modles": ["x"]}, "unknown key 'modles'; allowed keys: name, models"),
    ({"name": "t", "benchmarks": ["lm-quality"]}, "missing required key 'models'"),
    ({**GOOD, "protocol": "fast"}, "key 'protocol' must be one of 'cpu' or 'full', got 'fast'"),
    ({**GOOD, "benchmarks": ["sat"]}, "key 'benchmarks\\[0\\]': unknown benchmark 'sat'.*allowed values: crows, glue, "
                                      "glue-zs, lm-quality, seat, stereoset, superglue, superglue-zs"),
    ({**GOOD, "benchmarks": [{"name": "lm-quality", "options": {"n": 3}}]}, "has no option.*allowed: mask_fraction"),
    ({**GOOD, "benchmarks": [{"name": "lm-quality", "opts": {}}]},
     "unknown key 'benchmarks\\[0\\].opts'; allowed keys: name, options"),
    ({**GOOD, "variants": ["inlpx"]}, "key 'variants\\[0\\]': unknown method 'inlpx'"),
    ({**GOOD, "models": ["zoo:gpt5"]}, "key 'models\\[0\\]': unknown zoo model 'zoo:gpt5'"),
    ({**GOOD, "seeds": "zero"}, "key 'seeds'"),
    ({**GOOD, "models": []}, "key 'models'"),
    (["not", "a", "mapping"], "must be a YAML mapping"),
])
def test_validation_errors(raw, message):
    with pytest.raises(HarnessError, match=message) as info:
        parse_config(raw, "x.yaml")
    assert "\n" not in info.value.one_line()


def test_yaml_syntax_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nmodels: [zoo:bert-tiny\n")
    with pytest.raises(HarnessError, match="not valid YAML at line"):
        load_config(bad)
    with pytest.raises(HarnessError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_demo_config_is_valid():
    from conftest import PROJECT_ROOT

    config = load_config(PROJECT_ROOT / "configs" / "demo.yaml")
    assert config.models == ["zoo:bert-tiny-mlm"] and expand(config)


def test_hash_ignores_execution_options():
    a = expand(parse_config({**GOOD, "benchmarks": [{"name": "stereoset", "options": {"max_rows": 8}}]}))[0]
    b = expand(parse_config({**GOOD, "benchmarks": ["stereoset"]}))[0]
    c = expand(parse_config({**GOOD, "benchmarks": [{"name": "stereoset", "options": {"split": "dev"}}]}))[0]
    assert a.config_hash == b.config_hash != c.config_hash
    assert a.full_config()["benchmark_options"]["max_rows"] == 8
