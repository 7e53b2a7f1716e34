"""gradiend-bench harness: model & data catalog, run records, experiment configs, pipeline and CLI.

The harness never imports `methods`, `benchmarks` or `leaderboard`; it finds adapters through
:mod:`harness.registry`.
"""

__version__ = "0.1.0"

RECORD_SCHEMA_VERSION = 1
