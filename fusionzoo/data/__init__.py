"""Datasets: the real GLAMI-1M format, the embedded GLAMI-format synthetic dataset, any image-text CSV."""
