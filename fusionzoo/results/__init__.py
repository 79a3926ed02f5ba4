"""What a runs directory holds and what is read from it, below every layer that writes or reads it.

store       the tidy tables (runs, history, predictions; parquet, written atomically)
identity    run identity: plugin code hashes, the training regime
versions    the data versions of a runs directory
provenance  the environment a run was recorded in (packages, git state, machine)
stats       summary statistics over runs (bootstrap CIs, paired tests)
"""
