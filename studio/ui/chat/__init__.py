"""What the Chat screen can load: the base model, each run's adapter and checkpoints
(`choices`)."""
