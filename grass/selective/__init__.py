"""Selective Mask (SPEC 4): learn which gradient coordinates keep inner-product rankings, and store them."""

from grass.selective.artifact import load_mask, mask_dir, mask_fingerprint, mask_path, save_mask, save_result
from grass.selective.learn import MaskResult, inner_product_fidelity, learn_mask, split_rows

__all__ = ["MaskResult", "inner_product_fidelity", "learn_mask", "load_mask", "mask_dir", "mask_fingerprint",
           "mask_path", "save_mask", "save_result", "split_rows"]
