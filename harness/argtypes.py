"""argparse value types whose errors read as one line through ``harness.cli.OneLineParser``
(``error: gradiend-bench …: argument --resamples: must be an integer ≥ 0, not '-1'.``)."""

from __future__ import annotations

import argparse


def non_negative_int(text: str) -> int:
    """An integer ≥ 0: counts that may be zero (bootstrap resamples) and seeds (numpy refuses negative ones)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, not {text!r}")
    return value
