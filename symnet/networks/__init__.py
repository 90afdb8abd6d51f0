"""Networks: the composer, activations and losses, collapse, backprop and compiled NumPy code."""
