"""Optuna tuning of one fusion + head: ``space`` (merged search spaces), ``study`` (storages, exact
budgets, workers), ``export`` (bench presets, plots), ``cli`` (``fusionzoo tune``). See docs/tuning.md."""
