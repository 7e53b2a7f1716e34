"""Name → class registries for method adapters and benchmarks (lm-evaluation-harness style).

Adapters register themselves with a decorator::

    @register_benchmark("seat")
    class SEAT(Benchmark): ...

The harness never imports adapter packages directly: :func:`load_plugins` walks every package named
in the ``gradiend_bench.plugins`` entry-point group (this project declares ``methods`` and
``benchmarks``) and imports each of its modules, so adding an adapter is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Callable, TypeVar

from harness.errors import HarnessError, UnknownNameError

T = TypeVar("T")

PLUGIN_GROUP = "gradiend_bench.plugins"
_FALLBACK_PLUGIN_PACKAGES = ("methods", "benchmarks")

METHODS: dict[str, type] = {}
BENCHMARKS: dict[str, type] = {}
_loaded = False


def _register(table: dict[str, type], kind: str, name: str) -> Callable[[type[T]], type[T]]:
    def decorator(cls: type[T]) -> type[T]:
        existing = table.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise HarnessError(f"{kind} name '{name}' registered twice ({existing.__module__} and {cls.__module__})",
                               "give one of them another name")
        cls.name = name  # type: ignore[attr-defined]
        table[name] = cls
        return cls

    return decorator


def register_method(name: str) -> Callable[[type[T]], type[T]]:
    return _register(METHODS, "method", name)


def register_benchmark(name: str) -> Callable[[type[T]], type[T]]:
    return _register(BENCHMARKS, "benchmark", name)


def _plugin_packages() -> list[str]:
    names = [ep.value for ep in entry_points(group=PLUGIN_GROUP)]
    return names or list(_FALLBACK_PLUGIN_PACKAGES)


def load_plugins() -> None:
    """Import every module of every plug-in package once (registration happens on import)."""
    global _loaded
    if _loaded:
        return
    for package_name in _plugin_packages():
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(getattr(package, "__path__", []), prefix=package_name + "."):
            if not module.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(module.name)
    _loaded = True


def get_method(name: str) -> type:
    load_plugins()
    if name not in METHODS:
        raise UnknownNameError("method", name, list(METHODS) + ["base"])
    return METHODS[name]


def get_benchmark(name: str) -> type:
    load_plugins()
    if name not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, list(BENCHMARKS))
    return BENCHMARKS[name]


def method_names() -> list[str]:
    load_plugins()
    return sorted(METHODS)


def benchmark_names() -> list[str]:
    load_plugins()
    return sorted(BENCHMARKS)


def declared_metrics() -> dict[str, tuple[str, object]]:
    """Metric key → (benchmark name, :class:`harness.metrics.Metric`) over every installed benchmark."""
    load_plugins()
    found: dict[str, tuple[str, object]] = {}
    for name in sorted(BENCHMARKS):
        for metric in getattr(BENCHMARKS[name], "metrics", ()):
            if metric.key in found:
                raise HarnessError(f"metric key '{metric.key}' is declared by {found[metric.key][0]} and {name}",
                                   "give one of them another key")
            found[metric.key] = (name, metric)
    return found
