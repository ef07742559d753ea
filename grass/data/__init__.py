"""Datasets: loaders returning train/query tensors, and the seeded subsets and splits LDS needs."""
