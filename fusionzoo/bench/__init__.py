"""Benchmark runner: grid of fusions × heads × seeds, resumable results, statistics, the `bench` command.

The package is also callable: ``fusionzoo.bench(fusions=[...], ...)`` is :func:`fusionzoo.api.bench`.
"""

from fusionzoo.callable_package import make_callable

make_callable(__name__, "fusionzoo.api:bench")
