"""The paper's published numbers (REFERENCE.md), printed beside ours and labelled as the paper's.

Keyed by experiment name, then our compressor name, then proj_dim: (LDS, compression seconds on the
authors' GPU). Only ratios of the times carry over to another machine.
"""

PAPER = {
    "mnist_mlp": {
        "random_mask": {2048: (0.380, 0.15), 4096: (0.405, 0.15), 8192: (0.432, 0.15)},
        "selective_mask": {2048: (0.388, 0.14), 4096: (0.416, 0.13), 8192: (0.437, 0.15)},
        "sjlt": {2048: (0.417, 0.49), 4096: (0.428, 0.52), 8192: (0.436, 0.48)},
        "fjlt": {2048: (0.415, 0.90), 4096: (0.436, 1.43), 8192: (0.435, 2.44)},
        "gaussian": {2048: (0.410, 3.08), 4096: (0.425, 5.54), 8192: (0.435, 10.84)},
    },
}
PAPER_NOTES = {
    "fjlt": "paper's FJLT is TRAK's fast_jl Rademacher CUDA kernel; ours is a Hadamard-based FJLT",
}


def paper_number(experiment: str, compressor: str, proj_dim: int):
    """(LDS, seconds) from the paper, or None where the paper has no such cell."""
    return PAPER.get(experiment, {}).get(compressor, {}).get(int(proj_dim))
