"""Shared fixtures: offline mode, the data mirror (skip when absent; fail under CI=true), real zoo models."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import NoReturn

import pytest

os.environ["GRADIEND_BENCH_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_MIRROR = PROJECT_ROOT.parent / "shared" / "data"


EPS32 = 2.0 ** -23  # float32 machine epsilon (twice the unit roundoff u)
FP32_MARGIN = 4.0


def fp32_error_bound(scale: float, reduction: int) -> float:
    """How far an fp32 result may lie from its fp64 reference: ``FP32_MARGIN · eps32 · √n · scale``.

    The rounding error of an n-term fp32 sum grows like λ·√n·u, relative to the size of the *terms*, with
    probability that tends to one fast in λ (Higham & Mary, "A new approach to probabilistic rounding error
    analysis", SIAM J. Sci. Comput. 41(5), 2019) — so ``scale`` is the max-norm of the whole reference
    tensor, never the element itself (elements that cancel to ~0 carry the same absolute error), and ``n``
    is the number of rounded terms on the longest chain behind the result. FP32_MARGIN = 4 (λ = 8) is about
    3× the worst error measured for the bounded tests under 1 and 2 threads and ATEN_CPU_CAPABILITY
    default / avx2 / avx512 (docs/testing.md); a real bug (a wrong sign, a missing term, a dropped row) is
    off by a sizable fraction of ``scale``, orders of magnitude above this bound.
    """
    return FP32_MARGIN * EPS32 * math.sqrt(reduction) * scale


def forward_chain_length(config) -> int:
    """Rounded terms on the longest chain of a transformer forward up to its logits: each layer's attention
    and MLP sums (hidden + intermediate size) along the residual stream, then the head's hidden-size dot
    product — the ``n`` of :func:`fp32_error_bound` for a logit."""
    return config.num_hidden_layers * (config.hidden_size + config.intermediate_size) + config.hidden_size


def log_prob_bound(logits64, config) -> float:
    """fp32 error bound of log p = z_t − logsumexp(z) against fp64: each of the two terms moves by at most
    the largest logit error, whose scale is the largest |logit| of the fp64 reference rows given."""
    return 2 * fp32_error_bound(float(logits64.abs().max()), forward_chain_length(config))


def mirror_path() -> Path | None:
    value = os.environ.get("GRADIEND_BENCH_DATA")
    path = Path(value) if value else _DEFAULT_MIRROR
    return path if (path / "MANIFEST.tsv").is_file() else None


MIRROR_ABSENT = "data mirror absent: set GRADIEND_BENCH_DATA to ../shared/data to run this test"


def skip_or_fail_in_ci(reason: str) -> NoReturn:
    """Skip a test whose input is missing — but fail it under ``CI=true``: CI provides the data mirror, and a
    suite that goes green by skipping everything that reads it would prove nothing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing input fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def require_mirror() -> Path:
    """The data mirror's path, or :func:`skip_or_fail_in_ci` when there is none."""
    path = mirror_path()
    if path is None:
        skip_or_fail_in_ci(MIRROR_ABSENT)
    return path


def pytest_report_header(config) -> str:
    """Thread count and kernel set: fp32 results (and so the tolerances' margins) depend on both."""
    import torch

    return (f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}")


@pytest.fixture
def mirror(monkeypatch) -> Path:
    path = require_mirror()
    monkeypatch.setenv("GRADIEND_BENCH_DATA", str(path))
    return path


@pytest.fixture
def no_mirror(monkeypatch):
    monkeypatch.delenv("GRADIEND_BENCH_DATA", raising=False)


@pytest.fixture
def shared_wheels(monkeypatch):
    """Point the wheelhouse at the user cache's wheels so tests with a private cache do not re-download."""
    from harness.wheels import wheels_cache

    monkeypatch.setenv("GRADIEND_BENCH_WHEELHOUSE", str(wheels_cache()))


@pytest.fixture
def private_cache(tmp_path, monkeypatch, shared_wheels):
    monkeypatch.setenv("GRADIEND_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def bert_tiny():
    from harness.models import load_model

    return load_model("zoo:bert-tiny")


@pytest.fixture(scope="session")
def smollm2():
    from harness.models import load_model

    return load_model("zoo:smollm2-135m")


@pytest.fixture(scope="module")
def bert_tiny_fp64(bert_tiny):
    """A float64 copy of bert-tiny's HF model: the reference that fp32 results are bounded against."""
    import copy

    return copy.deepcopy(bert_tiny.model).double()


@pytest.fixture(scope="module")
def smollm2_fp64(smollm2):
    """A float64 copy of SmolLM2's HF model (~1 GB, freed after the module that asked for it)."""
    import copy

    return copy.deepcopy(smollm2.model).double()


@pytest.fixture(scope="session")
def tiny_families(tmp_path_factory):
    """The five paper families as tiny offline models, built once per session (tests/tiny_families.py)."""
    from tiny_families import session_families

    return session_families(tmp_path_factory)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (the family matrix: faster and steadier on 2 loaded cores)."""
    from tiny_families import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture(params=["bert_tiny", "smollm2"])
def any_lm(request):
    lm = request.getfixturevalue(request.param)
    yield lm
    lm.clear_hooks()


def restore_bert_tiny_origin(request):
    """apply_variant records its steps in the (session-wide) model's origin: restore it after each test.
    Test modules that apply variants to ``bert_tiny`` make it an autouse fixture."""
    if "bert_tiny" not in request.fixturenames:
        yield
        return
    lm = request.getfixturevalue("bert_tiny")
    saved = copy.deepcopy(lm.origin)
    yield
    lm.origin = saved
    lm.clear_hooks()
