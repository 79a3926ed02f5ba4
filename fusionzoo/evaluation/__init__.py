"""Evaluation beyond clean accuracy: robustness protocols on saved checkpoints and efficiency metrics.

- :mod:`fusionzoo.robustness` — relative/effective robustness, table normalisation, Pareto fronts;
- :mod:`fusionzoo.evaluation.tables` — ``robustness.parquet`` and ``efficiency.parquet`` of a runs directory;
- :mod:`fusionzoo.evaluation.runner` — ``fusionzoo eval``: evaluate finished runs, resumable;
- :mod:`fusionzoo.evaluation.raw` — raw-input protocols re-encoded into the feature cache;
- :mod:`fusionzoo.evaluation.efficiency` — efficiency metrics once per efficiency key;
- :mod:`fusionzoo.protocols._train_time` — train-time protocols (missing modality, label noise).
"""
