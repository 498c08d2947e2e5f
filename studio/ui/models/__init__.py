"""What the Models screen lists and shows about a model (`catalog`)."""
