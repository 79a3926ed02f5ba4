"""FLUID@moe with ``paper_loss`` on a small cross-modal task (per-seed test accuracy).

    python benchmarks/perf/paper_loss_moe.py --noise 3 --experts 16

``synthetic_features(512, 128, 256, complementary=True)``, D = 32, ``fluid:queries=4,layers=1,heads=2``,
10 epochs, batch 64, lr 3e-3, seeds 0-2. Run it on two checkouts to compare how ``paper_loss`` weights
the MoE head's aux losses (λ = 1/3 for load_balance only; router_z keeps its default 0.001).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.config import RunConfig
from fusionzoo.train.trainer import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = synthetic_features(512, 128, 256, seed=0, complementary=True, noise=args.noise)
    accuracy = []
    for seed in range(3):
        config = RunConfig(
            fusion="fluid:queries=4,layers=1,heads=2", head=f"moe:experts={args.experts}", paper_loss=True,
            seed=seed, dim=32, epochs=args.epochs, batch_size=64, lr=3e-3, patience=0, device="cpu",
            metric="accuracy",
        )  # fmt: skip
        accuracy.append(train_run(config, data).metrics["accuracy"])
    print(f"test accuracy {' / '.join(f'{a:.3f}' for a in accuracy)} (mean {np.mean(accuracy):.3f})")


if __name__ == "__main__":
    main()
