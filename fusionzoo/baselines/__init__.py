"""Baselines that are not trained fusion modules (the linear-probe floor on frozen features)."""
