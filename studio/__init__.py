"""ftstudio: a terminal fine-tuning studio for large language models."""

__version__ = "0.1.0"
