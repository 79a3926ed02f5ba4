"""Benchmark presets shipped with fusionzoo (``fusionzoo bench --config NAME``); see fusionzoo.config."""
