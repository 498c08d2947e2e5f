"""Fine-tuning methods, one module per family, behind one registry (`studio.methods.registry`)."""
