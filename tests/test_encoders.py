"""Image/text encoders loaded from local folders, the offline error, defaults, and finetune mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fusionzoo.encoders.errors import EncoderError, WeightsUnavailableError
from fusionzoo.encoders.features import collate_features
from fusionzoo.encoders.image import create_image_encoder
from fusionzoo.encoders.live import LiveEncoders, RawCollate, raw_dataset
from fusionzoo.encoders.text import create_text_encoder
from fusionzoo.testing.tiny_encoders import save_tiny_image_model, save_tiny_text_model
from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    splits = splits_from_csv(write_tiny_glami(root / "data", n=24))
    return {
        "splits": splits,
        "image_dir": save_tiny_image_model(root / "vit"),
        "text_dir": save_tiny_text_model(root / "bert", splits.train["text"].tolist()),
        "root": root,
    }


def test_timm_model_saved_to_a_folder_loads_back_by_path(data):
    encoder = create_image_encoder(f"timm:{data['image_dir']}")
    assert encoder.num_tokens == 1 + (32 // 8) ** 2 and encoder.out_dim == 32
    assert encoder.data_config["input_size"] == (3, 32, 32)
    image = Image.open(data["splits"].train["image_path"][0])
    pixels = torch.stack([encoder.transform(image)] * 3)
    with torch.no_grad():
        tokens = encoder(pixels)
    assert tokens.shape == (3, 17, 32) and torch.isfinite(tokens).all()
    # same weights as the saved model: a second load gives identical tokens and identity
    again = create_image_encoder(f"timm:local-dir:{data['image_dir']}")
    with torch.no_grad():
        assert torch.equal(again(pixels), tokens)
    assert again.identity()["weights"] == encoder.identity()["weights"]
    assert any("sha256" in f for f in encoder.identity()["weights"]["files"])


def test_registry_architecture_with_a_checkpoint_file(data, tmp_path):
    import timm
    from safetensors.torch import save_file

    args = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **args)
    checkpoint = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(checkpoint))
    encoder = create_image_encoder(f"timm:vit_tiny_patch16_224@{checkpoint}", model_kwargs=args)
    assert torch.equal(encoder.model.pos_embed, model.pos_embed)
    ident = encoder.identity()["weights"]["checkpoint"]
    assert ident["size"] == checkpoint.stat().st_size and "sha256" in ident
    # different bytes -> different identity (so a different cache key)
    torch.nn.init.normal_(model.pos_embed)
    save_file(model.state_dict(), str(checkpoint))
    other = create_image_encoder("timm:vit_tiny_patch16_224", checkpoint_path=checkpoint, model_kwargs=args)
    assert other.identity() != encoder.identity()


@pytest.mark.parametrize(("selection", "count"), [("cls", 1), ("mean", 1), (4, 4), ("3", 3), ("all", 17)])
def test_image_token_selection(data, selection, count):
    encoder = create_image_encoder(f"timm:{data['image_dir']}", image_tokens=selection)
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, count, 32)
    assert encoder.num_tokens == count


def test_cnn_feature_map_is_flattened_to_tokens():
    encoder = create_image_encoder("timm:resnet10t", pretrained=False, input_size=64)
    with torch.no_grad():
        tokens = encoder(torch.randn(2, 3, 64, 64))
    assert tokens.shape == (2, 4, 512)  # 2×2 map of stride 32 → 4 tokens
    with pytest.raises(EncoderError, match="no \\[CLS\\] token"):
        create_image_encoder("timm:resnet10t", pretrained=False, image_tokens="cls")


def test_bert_saved_with_save_pretrained_loads_by_path(data):
    encoder = create_text_encoder(f"hf:{data['text_dir']}", max_length=8)
    texts = ["cotton shirt", "leather " * 30, ""]
    batch = encoder.tokenize(texts)
    assert batch.truncated == 1 and batch.lengths[1] == 8 and batch.input_ids.shape == (3, 8)
    with torch.no_grad():
        tokens, mask = encoder(batch.input_ids, batch.attention_mask)
    assert tokens.shape == (3, 8, 32) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == batch.lengths
    assert encoder.identity()["max_length"] == 8
    assert "files" in encoder.identity()["weights"]


def test_missing_weights_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as image_error:
        create_image_encoder("timm:vit_base_patch16_224")
    message = str(image_error.value)
    assert "vit_base_patch16_224" in message and "--no-pretrained" in message and "timm:/path" in message
    assert "connected machine" in message
    with pytest.raises(WeightsUnavailableError) as text_error:
        create_text_encoder("hf:bert-base-multilingual-cased")
    assert "hf:/path/to/folder" in str(text_error.value) and "--no-pretrained" in str(text_error.value)
    # --no-pretrained for a registry image model needs nothing from the hub, and is reproducible
    first = create_image_encoder("timm:resnet10t", pretrained=False)
    torch.rand(3)
    second = create_image_encoder("timm:resnet10t", pretrained=False)
    assert first.out_dim == 512 and first.identity() == second.identity()
    assert torch.equal(first.model.conv1[0].weight, second.model.conv1[0].weight)


def test_bad_specs_name_the_fix(tmp_path):
    with pytest.raises(EncoderError, match="must start with 'timm:'"):
        create_image_encoder("vit_base_patch16_224")
    with pytest.raises(EncoderError, match="not known to timm"):
        create_image_encoder("timm:vit_bse_patch16_224")
    with pytest.raises(EncoderError, match="does not exist"):
        create_text_encoder(f"hf:{tmp_path}/missing")
    with pytest.raises(EncoderError, match="no config.json"):
        create_image_encoder(f"timm:local-dir:{tmp_path}")


def test_synth_defaults_are_built_locally_and_deterministically(data, tmp_path):
    from fusionzoo.encoders.defaults import SYNTH_TEXT_RECIPE, default_encoders

    image, text = default_encoders("synth", data["splits"], tmp_path / "cache")
    assert (
        str(tmp_path / "cache" / "models") in image.spec and str(tmp_path / "cache" / "models") in text.spec
    )
    assert (image.num_tokens, image.out_dim) == (17, 192)
    assert text.out_dim == SYNTH_TEXT_RECIPE["config"]["hidden_size"]
    image2, text2 = default_encoders("synth", data["splits"], tmp_path / "other")
    sha = [f.get("sha256") for f in image.identity()["weights"]["files"]]
    assert sha == [f.get("sha256") for f in image2.identity()["weights"]["files"]]
    text_sha = [f.get("sha256") for f in text.identity()["weights"]["files"]]
    assert text_sha == [f.get("sha256") for f in text2.identity()["weights"]["files"]]
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(image(pixels), image2(pixels))
    batch = text.tokenize(["cotton shirt", "tocnot nocott"])  # unseen words of seen characters
    assert (batch.input_ids != text.tokenizer.unk_token_id).all()  # characters cover unseen words


def test_paper_defaults_for_glami_fail_clearly_offline(monkeypatch):
    from fusionzoo.encoders.defaults import default_encoder_specs, default_encoders

    assert default_encoder_specs("glami1m") == (
        "timm:vit_base_patch16_224",
        "hf:bert-base-multilingual-cased",
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError):
        default_encoders("glami1m")


def test_live_encoders_match_cache_shapes_and_train_unfrozen_layers_only(data, tmp_path):
    from fusionzoo.encoders.cache import encode_splits

    splits = data["splits"]
    image = create_image_encoder(f"timm:{data['image_dir']}")
    text = create_text_encoder(f"hf:{data['text_dir']}", max_length=16)
    cached = encode_splits(splits, image, text, tmp_path / "cache", split_names=["train"], progress=False)
    cached_batch = collate_features(cached["train"], [0, 1, 2, 3])

    image = create_image_encoder(f"timm:{data['image_dir']}")
    text = create_text_encoder(f"hf:{data['text_dir']}", max_length=16)
    live = LiveEncoders(image, text, freeze_image_layers=1, freeze_text_layers=1).train()
    loader = torch.utils.data.DataLoader(
        raw_dataset(splits.train, image), batch_size=4, collate_fn=RawCollate(text), shuffle=False
    )
    raw = next(iter(loader))
    batch = live(raw)
    assert set(batch) == set(cached_batch)
    for key in ("image", "image_mask", "label", "index"):
        assert batch[key].shape == cached_batch[key].shape, key
        assert batch[key].dtype == cached_batch[key].dtype, key
    assert batch["text"].shape[0] == 4 and batch["text"].shape[2] == cached_batch["text"].shape[2]
    assert torch.equal(batch["text_mask"].sum(1), cached_batch["text_mask"].sum(1))
    assert torch.equal(batch["label"], cached_batch["label"])
    # same features as the cache (up to fp16 storage) when run in eval mode
    live.eval()
    with torch.no_grad():
        np.testing.assert_allclose(live(raw)["image"].numpy(), cached_batch["image"].numpy(), atol=2e-2)

    live.train()
    out = live(raw)
    loss = out["image"].pow(2).mean() + (out["text"] * out["text_mask"][..., None]).pow(2).mean()
    loss.backward()
    named = dict(live.named_parameters())
    frozen_image = [
        n for n in named if n.startswith("image_encoder.model.") and ("blocks.0." in n or "patch_embed" in n)
    ]
    trainable_image = [n for n in named if "image_encoder.model.blocks.1." in n]
    frozen_text = [n for n in named if "text_encoder.model.embeddings" in n or ".layer.0." in n]
    trainable_text = [n for n in named if "text_encoder.model.encoder.layer.1." in n]
    assert frozen_image and trainable_image and frozen_text and trainable_text
    for name in frozen_image + frozen_text:
        assert not named[name].requires_grad and named[name].grad is None, name
    for name in trainable_image + trainable_text:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    backbone = {id(p) for p in live.backbone_parameters()}
    assert backbone == {id(named[n]) for n in named if named[n].requires_grad}
    assert {id(named[n]) for n in trainable_image + trainable_text} <= backbone


def test_raw_collate_drops_unreadable_images(data, tmp_path):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "bad", n=10, bad=(1,)))
    image = create_image_encoder(f"timm:{data['image_dir']}")
    text = create_text_encoder(f"hf:{data['text_dir']}")
    dataset = raw_dataset(splits.train, image)
    batch = RawCollate(text)([dataset[i] for i in range(4)])
    assert batch["pixels"].shape[0] == 3 and batch["dropped"] == [1]
    with pytest.raises(EncoderError, match="unreadable"):
        RawCollate(text, on_bad_image="fail")([dataset[i] for i in range(4)])


def test_no_pretrained_text_keeps_architecture_and_tokenizer(data):
    encoder = create_text_encoder(f"hf:{data['text_dir']}", pretrained=False)
    assert encoder.out_dim == 32 and encoder.identity()["weights"]["random_init"] is True
    pretrained = create_text_encoder(f"hf:{data['text_dir']}")
    assert encoder.identity() != pretrained.identity()
    batch = encoder.tokenize(["cotton"])
    with torch.no_grad():
        tokens, _ = encoder(batch.input_ids, batch.attention_mask)
    assert tokens.shape == (1, batch.input_ids.shape[1], 32)
    torch.manual_seed(123)  # the global RNG does not matter: random init is seeded
    again = create_text_encoder(f"hf:{data['text_dir']}", pretrained=False)
    with torch.no_grad():
        assert torch.equal(again(batch.input_ids, batch.attention_mask)[0], tokens)
    other = create_text_encoder(f"hf:{data['text_dir']}", pretrained=False, init_seed=1)
    assert other.identity() != encoder.identity()


def test_text_token_selection(data):
    for selection, expected in (("cls", 1), ("mean", 1), ("all", None)):
        encoder = create_text_encoder(f"hf:{data['text_dir']}", text_tokens=selection)
        batch = encoder.tokenize(["cotton shirt", "silk"])
        with torch.no_grad():
            tokens, mask = encoder(batch.input_ids, batch.attention_mask)
        assert tokens.shape[1] == (expected or batch.input_ids.shape[1])
        assert mask.shape == tokens.shape[:2] and mask.dtype == torch.bool


def test_live_data_trains_end_to_end_in_finetune_mode(data, tmp_path):
    """LiveData through the real trainer: unusable files dropped, a broken JPEG masked, frozen layers kept."""
    import warnings

    from fusionzoo.encoders.live import LiveData
    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.trainer import train_run

    csv = write_tiny_glami(tmp_path / "live", n=30, bad=(1,))
    splits = splits_from_csv(csv)
    broken = splits.train["image_path"][2]
    payload = Path(broken).read_bytes()
    Path(broken).write_bytes(payload[:40])  # valid JPEG signature, truncated data: fails at decode time
    image = create_image_encoder(f"timm:{data['image_dir']}")
    text = create_text_encoder(f"hf:{data['text_dir']}", max_length=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        live = LiveData(splits, image, text, freeze_layers=1)
    assert any("item1" in str(w.message) for w in caught)
    assert live.size("train") == len(splits.train) - 1
    batch = live.batch("train", torch.arange(4))
    assert batch["image_ok"].tolist() == [True, False, True, True]  # row 2 of the frame is now row 1
    encoder = live.make_encoder()
    tokens = encoder(batch)
    assert not tokens["image_mask"][1].any() and tokens["image_mask"][0].all()

    frozen = encoder.image_encoder.model.patch_embed.proj.weight.detach().clone()
    trained = encoder.image_encoder.model.blocks[1].attn.qkv.weight.detach().clone()
    config = RunConfig(
        fusion="concat_mlp",
        head="linear",
        dim=16,
        epochs=1,
        batch_size=8,
        mode="finetune",
        backbone_lr=1e-2,
        freeze_layers=1,
        patience=0,
        device="cpu",
    )
    result = train_run(config, live, checkpoint_dir=tmp_path / "ckpt")
    assert result.status == "ok", result.error
    # the run trained its own copy of the encoder; the checkpoint holds it, the data's encoders are untouched
    from fusionzoo.train.checkpoint import load_checkpoint

    model, _, info = load_checkpoint(tmp_path / "ckpt", encoder=live.make_encoder())
    assert info["model"]["encoder"]
    assert torch.equal(model.encoder.image_encoder.model.patch_embed.proj.weight, frozen)
    assert not torch.equal(model.encoder.image_encoder.model.blocks[1].attn.qkv.weight, trained)
    fresh = live.make_encoder()
    assert torch.equal(fresh.image_encoder.model.blocks[1].attn.qkv.weight, trained)
    with pytest.raises(ValueError, match="finetune run"):
        load_checkpoint(tmp_path / "ckpt")
    # the checkpointed whole model reproduces the run's test metrics (best-epoch encoder, not a later one)
    from fusionzoo.train.trainer import predict

    logits = predict(model, live, "test")
    assert (logits.argmax(1) == result.test_predictions).all()


def test_finetune_runs_never_share_an_encoder(data, tmp_path):
    """Two finetune runs with the same seed give identical results in either order (issue: the live
    encoder used to be an attribute of the data, so run k started from run k-1's finetuned weights)."""
    from fusionzoo.encoders.live import LiveData
    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.trainer import train_run

    splits = splits_from_csv(write_tiny_glami(tmp_path / "order", n=24))
    image = create_image_encoder(f"timm:{data['image_dir']}")
    text = create_text_encoder(f"hf:{data['text_dir']}", max_length=16)
    live = LiveData(splits, image, text)

    def run(fusion):
        config = RunConfig(
            fusion=fusion, head="linear", dim=16, epochs=1, batch_size=8, mode="finetune",
            backbone_lr=1e-2, patience=0, device="cpu", seed=3,
        )  # fmt: skip
        return train_run(config, live)

    first_a, first_b = run("concat_mlp"), run("film")
    second_b, second_a = run("film"), run("concat_mlp")

    def same(x, y):  # NaN-aware (empty buckets are NaN on this tiny set)
        np.testing.assert_equal(x, y)
        return True

    assert same(first_a.metrics, second_a.metrics) and same(first_b.metrics, second_b.metrics)
    assert same(first_a.test_predictions, second_a.test_predictions)
