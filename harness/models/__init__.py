"""Model catalog (zoo, local directories, hub ids) and the one model interface the project uses."""

from harness.models.catalog import load_model, model_catalog
from harness.models.interface import LanguageModel

__all__ = ["LanguageModel", "load_model", "model_catalog"]
