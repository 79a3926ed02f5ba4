"""DistributedDataParallel finetune runs (``bench --ddp N`` / ``torchrun -m fusionzoo bench``) on CPU with
gloo and 2 processes: the distributed pieces equal their single-process counterparts, and a DDP grid
records exactly what a single-process grid records (rank 0 only), resumable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp


def _rank(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from fusionzoo.testing.token_features import synthetic_features
    from fusionzoo.train import distributed
    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.evaluation import evaluate
    from fusionzoo.train.model import FusionModel

    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    group = distributed.current()
    assert group is not None and group.world == world and group.main == (rank == 0)
    data = synthetic_features(37, 19, 23, num_classes=3, image_tokens=2, image_dim=8, text_dim=8, max_text=3)
    config = RunConfig(fusion="concat_mlp", head="linear", dim=8, device="cpu", dropout=0.0)
    torch.manual_seed(0)
    model = FusionModel.for_data(config, data)

    # sharded, gathered evaluation == a single process evaluating every row
    sharded, logits = distributed.evaluate_sharded(model, data, "test", group, batch_size=4, device="cpu")
    whole, reference = evaluate(model, data, "test", batch_size=4, device="cpu")
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-6)
    assert sharded.keys() == whole.keys() and all(
        sharded[k] == whole[k] or (np.isnan(sharded[k]) and np.isnan(whole[k])) for k in whole
    )

    # rank batches: equal counts, disjoint shares of one seeded permutation covering every row
    batches = distributed.rank_batches(37, 4, seed=5, epoch=2, group=group)
    shares: list[object] = [None] * world
    dist.all_gather_object(shares, torch.cat(batches).tolist())
    assert len({len(s) for s in shares}) == 1
    assert set().union(*map(set, shares)) == set(range(37))

    # one DDP step on half a batch per rank == one single-process step on the whole batch
    rows = torch.arange(16)
    mine = rows[rank * 8 : (rank + 1) * 8]
    model.eval()  # no dropout: the gradients are then exactly comparable
    wrapped = distributed.wrap(model, torch.device("cpu"))
    step = wrapped(data.batch("train", mine), False)
    torch.nn.functional.cross_entropy(step.logits, data.batch("train", mine)["label"]).backward()
    single = FusionModel.for_data(config, data).eval()
    single.load_state_dict(model.state_dict())
    full = single.forward_batch(data.batch("train", rows))
    torch.nn.functional.cross_entropy(full.logits, data.batch("train", rows)["label"]).backward()
    for (name, p), q in zip(model.named_parameters(), single.parameters(), strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
    Path(f"{out}.{rank}").write_text("ok")
    dist.destroy_process_group()


def test_distributed_pieces_equal_one_process(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_rank, args=(2, init, str(tmp_path / "done")), nprocs=2, join=True)
    assert (tmp_path / "done.0").read_text() == "ok" and (tmp_path / "done.1").read_text() == "ok"


# -------------------------------------------------------------------------------------- end to end
def _tiny_finetune_data(root: Path) -> tuple[Path, Path, Path]:
    from launch_helpers import tiny_encoders

    tiny_encoders(root)
    csv = root / "glami" / "data.csv"
    frame = pd.read_csv(csv)
    frame["image_path"] = [str(Path(p).relative_to(csv.parent)) for p in frame["image_path"]]  # csv backend
    frame.to_csv(csv, index=False)
    return csv, root / "vit", root / "bert"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_bench_ddp_2_on_cpu_records_like_one_process_and_resumes_under_torchrun(tmp_path):
    from fusionzoo.train.checkpoint import load_checkpoint

    csv, vit, bert = _tiny_finetune_data(tmp_path)
    out = tmp_path / "runs"
    args = [
        "bench", "--mode", "finetune", "--dataset", "csv", "--data-option", f"csv={csv}", "--data-option",
        "image_col=image_path", "--image-encoder", f"timm:{vit}", "--text-encoder", f"hf:{bert}",
        "--fusions", "concat_mlp,film", "--seeds", "0", "--epochs", "2", "--dim", "16", "--batch-size", "4",
        "--no-unimodal", "--no-probe", "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", *args, "--ddp", "2"], capture_output=True, text=True, env=_env(),
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("leaderboard · csv") == 1  # rank 0 speaks for both ranks
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 2 and table["run_id"].is_unique and set(table["status"]) == {"ok"}
    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == 4 and not history.duplicated(["run_id", "epoch"]).any()
    # rank 0's checkpoint reproduces the recorded (gathered) test accuracy in one process
    from fusionzoo.prepare import DataOptions, prepare_data
    from fusionzoo.train.evaluation import predict

    options = DataOptions(
        dataset="csv", mode="finetune", data={"csv": str(csv), "image_col": "image_path"},
        encoders={"image": f"timm:{vit}", "text": f"hf:{bert}"},
    )  # fmt: skip
    live = prepare_data(options, progress=False)
    for _, row in table.iterrows():
        model, _, _ = load_checkpoint(row["checkpoint"], encoder=live.make_encoder())
        predictions = predict(model, live, "test").argmax(1)
        assert float((predictions == live.labels("test")).mean()) == pytest.approx(row["test_accuracy"])
        assert (np.load(out / "predictions" / f"{row['run_id']}.npy")[0] == predictions).all()
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    again = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "fusionzoo", *args], capture_output=True,
        text=True, env=_env(), timeout=900,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 finished run(s) reused" in again.stdout and "ran 0 runs" in again.stdout
    assert len(pd.read_parquet(out / "results.parquet")) == 2
