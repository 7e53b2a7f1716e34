"""Benchmark adapters; each module registers one benchmark with ``@register_benchmark``."""
