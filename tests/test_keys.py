"""harness.keys: the one canonical JSON + sha256 behind record hashes and cache keys."""

from pathlib import Path

from harness.api import RunContext
from harness.config import config_hash
from harness.keys import canonical_json, stable_digest, stable_key

PAYLOAD = {"model": "zoo:bert-tiny", "seed": 0, "options": {"b": [1, 2.5, None], "a": "Straße"},
           "path": Path("/tmp/x")}
# sha256 of json.dumps(PAYLOAD, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str), the form
# config_hash had before harness.keys existed: committed records under results/runs are named by it.
PINNED = "89185ffd60edafec95953a8b0448591d4d06a3c0d5ba4c77cd8de207f2918eba"


def test_config_hash_keeps_the_committed_records_form():
    assert config_hash(PAYLOAD) == stable_key(PAYLOAD) == PINNED
    assert canonical_json({"b": 1, "a": "ß"}) == '{"a":"\\u00df","b":1}'


def test_stable_key_ignores_dict_order_and_truncates():
    reordered = {"path": Path("/tmp/x"), "options": {"a": "Straße", "b": [1, 2.5, None]}, "seed": 0,
                 "model": "zoo:bert-tiny"}
    assert stable_key(reordered) == PINNED
    assert stable_key(PAYLOAD, 16) == PINNED[:16]
    assert stable_key({**PAYLOAD, "seed": 1}) != PINNED


def test_stable_digest_extends_the_same_hash():
    digest = stable_digest(PAYLOAD)
    assert digest.hexdigest() == PINNED
    digest.update(b"text\0")
    assert digest.hexdigest() != PINNED


def test_method_protocol_maps_benchmark_only_protocols_to_cpu():
    assert RunContext(protocol="full").method_protocol == "full"
    assert [RunContext(protocol=p).method_protocol for p in ("cpu", "probe", "zero")] == ["cpu"] * 3
