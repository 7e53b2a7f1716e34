"""Method adapters; each module registers one method with ``@register_method``."""
