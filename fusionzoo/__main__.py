"""``python -m fusionzoo ...`` (e.g. ``torchrun --nproc-per-node 2 -m fusionzoo bench --mode finetune``)."""

from fusionzoo.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
