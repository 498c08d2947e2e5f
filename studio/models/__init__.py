"""Model sources, loading, quantization, and the built-in tiny model."""
