"""SJLT kernels: the pure-torch reference, a C++ CPU kernel, a Triton GPU kernel, and the dispatch.

Use `grass.kernels.dispatch.sjlt_project(x, buckets, signs, k, scale, backend)`; it returns the output
and the name of the path that ran, which runs record in their metrics.
"""
