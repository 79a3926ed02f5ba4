"""``python -m fusionzoo.cli ...``: the ``fusionzoo`` command (as ``python -m fusionzoo``)."""

from fusionzoo.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
