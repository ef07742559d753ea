"""Per-example gradient capture: whole-model flat gradients (flat) and hooked linear layers (linear)."""
