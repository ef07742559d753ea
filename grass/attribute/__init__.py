"""Attributors: compressed features -> train x query influence scores, with damping selection."""
