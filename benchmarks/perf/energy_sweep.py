"""energy_aware_adaptive@mlp on a small synthetic task: test accuracy and mean test energy vs the energy λ.

    python benchmarks/perf/energy_sweep.py --noise 1.5 --seeds 6                 # cross-modal task
    python benchmarks/perf/energy_sweep.py --noise 2.5 --redundant --seeds 3     # each modality suffices
    python benchmarks/perf/energy_sweep.py --weights default                     # the declared default

``synthetic_features(512, 128, 256, complementary=True)``: each modality alone identifies only part of
the class, so a router that drops a modality loses accuracy. The figures in the fusion's docstring
come from this script (D = 32, 15 epochs, batch 64, lr 3e-3, one CPU thread).
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
    parser.add_argument("--noise", type=float, default=1.5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--redundant", action="store_true", help="complementary=False")
    parser.add_argument("--weights", default="0,0.001,0.003,0.01,0.03,0.1,0.3,1", help="λ list or 'default'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = synthetic_features(512, 128, 256, seed=0, complementary=not args.redundant, noise=args.noise)
    weights = [None] if args.weights == "default" else [float(w) for w in args.weights.split(",")]
    for weight in weights:
        accuracy, energy = [], []
        for seed in range(args.seeds):
            config = RunConfig(
                fusion="energy_aware_adaptive", head="mlp", seed=seed, dim=32, epochs=15, batch_size=64,
                lr=3e-3, patience=0, device="cpu", metric="accuracy",
                loss_weights={} if weight is None else {"energy": weight},
            )  # fmt: skip
            result = train_run(config, data)
            accuracy.append(result.metrics["accuracy"])
            energy.append(result.metrics.get("aux_energy", float("nan")))
        label = "default" if weight is None else f"{weight:g}"
        print(
            f"energy λ={label}: test accuracy {np.mean(accuracy):.3f} "
            f"({' / '.join(f'{a:.3f}' for a in accuracy)}), mean test energy {np.mean(energy):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
