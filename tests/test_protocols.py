"""Every registered protocol: deterministic given a seed, level 0 = the clean input exactly, and
monotone in the expected direction on a model that relies on what the protocol removes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from fusionzoo import registry
from fusionzoo.evaluation.runner import protocol_curve
from fusionzoo.protocols.base import generator_for
from fusionzoo.robustness import relative_robustness
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.config import RunConfig
from fusionzoo.train.trainer import Trainer

PROTOCOLS = registry.list_plugins("protocol")
TOKEN_PROTOCOLS = [n for n in PROTOCOLS if registry.get_entry("protocol", n).obj.target == "tokens"]
RAW_PROTOCOLS = [n for n in PROTOCOLS if registry.get_entry("protocol", n).obj.target == "raw"]
# training protocols (ogm_ge, gblend) change gradients and losses, not batches: tests/test_imbalance.py
DATA_PROTOCOLS = [n for n in PROTOCOLS if registry.get_entry("protocol", n).obj.target != "training"]
EXPECTED = {
    "missing_image", "missing_text", "missing_both_random", "feature_noise", "text_token_drop",
    "text_shuffle", "image_corruption", "text_typos", "label_noise",
}  # fmt: skip


RAW_EXTRA = {"image_corruption": "imagecorruptions", "text_typos": "nlpaug"}


def make(name: str, **options):
    if name in RAW_EXTRA and importlib.util.find_spec(RAW_EXTRA[name]) is None:
        pytest.skip(f"{name} needs the robustness extra ({RAW_EXTRA[name]})")
    entry = registry.get_entry("protocol", name)
    spec = registry.format_spec(name, {**entry.test_config, **options})
    return registry.create("protocol", spec)


def token_batch(seed: int = 0, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 3, 1, 5, 2, 4][:n])
    return {
        "image": torch.randn(n, 3, 8, generator=g),
        "image_mask": torch.ones(n, 3, dtype=torch.bool),
        "text": torch.randn(n, 5, 6, generator=g) * (torch.arange(5) < lengths[:, None]).unsqueeze(-1),
        "text_mask": torch.arange(5) < lengths[:, None],
        "label": torch.arange(n) % 3,
        "num_classes": 3,
        "index": torch.arange(n),
    }


def raw_batch():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(3)]
    texts = ["Black leather ankle boots with a chunky heel", "Kastor dámské kousek Materiál kůže", "ab"]
    return {"image": images, "text": texts}


def batch_for(name: str):
    return raw_batch() if name in RAW_PROTOCOLS else token_batch()


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, Image.Image):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_every_protocol_of_the_issue_is_registered_with_one_file_each():
    assert set(PROTOCOLS) >= EXPECTED
    for name in PROTOCOLS:
        entry = registry.get_entry("protocol", name)
        assert entry.obj.__module__.endswith(name), "one protocol per file, named after it"
        assert entry.obj.__doc__ and len(entry.obj.__doc__) > 80, f"{name}: docstring with its definition"


@pytest.mark.parametrize("name", DATA_PROTOCOLS)
def test_level_zero_is_the_clean_input_exactly(name):
    protocol = make(name)
    batch = batch_for(name)
    out = protocol.apply(batch, 0.0, generator_for("x"))
    for key in batch:
        assert same(out[key], batch[key]), f"{name}: level 0 changed '{key}'"
    assert 0.0 in protocol.levels()


@pytest.mark.parametrize("name", DATA_PROTOCOLS)
def test_deterministic_given_the_seed_and_changed_above_level_zero(name):
    protocol = make(name)
    level = max(protocol.levels())
    first = protocol.apply(batch_for(name), level, generator_for("seed", 1))
    second = protocol.apply(batch_for(name), level, generator_for("seed", 1))
    clean = batch_for(name)
    for key in first:
        assert same(first[key], second[key]), f"{name}: same seed, different '{key}'"
    assert any(not same(first[k], clean[k]) for k in clean), f"{name}: the highest level changes nothing"


@pytest.mark.parametrize("name", PROTOCOLS)
def test_canonical_spec_excludes_the_level_grid_and_round_trips(name):
    protocol = make(name)
    assert protocol.level_option not in protocol.canonical
    assert registry.create("protocol", protocol.canonical).canonical == protocol.canonical
    assert "seed=0" in protocol.canonical


def test_bad_options_and_levels_are_clear_errors():
    with pytest.raises(registry.RegistryError, match="imputation"):
        registry.create("protocol", "missing_image:imputation=median")
    with pytest.raises(registry.RegistryError, match=r"\[0, 1\]"):
        registry.create("protocol", "missing_text:rates=0;1.5")
    with pytest.raises(registry.RegistryError, match="corruption 'fog2'"):
        registry.create("protocol", "image_corruption:corruption=fog2")
    with pytest.raises(registry.RegistryError, match="outside"):
        make("missing_image").apply(token_batch(), 2.0, generator_for("x"))


def test_missing_modality_is_nested_masked_and_exact_at_the_ends():
    protocol = make("missing_image", rates=[0.0, 0.3, 0.7, 1.0])
    batch = token_batch(n=6)
    removed = []
    for level in protocol.levels():
        out = protocol.apply(batch, level, generator_for("nest"))
        gone = ~out["image_mask"].any(1)
        assert torch.all(out["image"][gone] == 0)
        assert torch.equal(out["text"], batch["text"])  # the other modality is untouched
        removed.append(gone)
    assert not removed[0].any() and removed[-1].all()
    for low, high in zip(removed, removed[1:], strict=False):
        assert torch.all(high | ~low), "a sample missing at η stays missing above η"
    zeros = make("missing_text", imputation="zeros").apply(batch, 1.0, generator_for("z"))
    assert torch.equal(zeros["text_mask"], batch["text_mask"]) and torch.all(zeros["text"] == 0)


def test_missing_both_random_never_removes_both():
    protocol = make("missing_both_random")
    batch = token_batch(n=6)
    batch = {**batch, **{k: torch.cat([batch[k]] * 20) for k in ("image", "image_mask", "text", "text_mask")}}
    out = protocol.apply(batch, 1.0, generator_for("both"))
    no_image, no_text = ~out["image_mask"].any(1), ~out["text_mask"].any(1)
    assert not torch.any(no_image & no_text) and no_image.any() and no_text.any()
    assert torch.all(no_image | no_text)


def test_label_noise_flips_the_expected_fraction_uniform_and_class_conditional():
    labels = torch.arange(3000) % 10
    batch = {"label": labels, "num_classes": 10}
    uniform = make("label_noise", mode="uniform").apply(batch, 0.4, generator_for("ln"))["label"]
    flipped = uniform != labels
    assert 0.36 < flipped.float().mean() < 0.44
    assert set(np.unique(((uniform - labels) % 10)[flipped].numpy())) == set(range(1, 10))
    pair = make("label_noise", mode="class_conditional").apply(batch, 0.4, generator_for("ln"))["label"]
    changed = pair != labels
    assert torch.equal(pair[changed], (labels[changed] + 1) % 10)


def test_image_corruption_grows_with_severity_and_is_seeded_by_the_pixels():
    protocol = make("image_corruption", severities=[0, 1, 3, 5])
    image = raw_batch()["image"][0]
    errors = []
    for severity in protocol.levels():
        out = protocol.apply({"image": [image]}, severity, generator_for("ic"))["image"][0]
        errors.append(float(np.abs(np.asarray(out, float) - np.asarray(image, float)).mean()))
    assert errors[0] == 0 and errors == sorted(errors) and errors[-1] > errors[1] > 0


def test_text_typos_grow_with_the_rate_and_keep_whitespace():
    protocol = make("text_typos", kind="swap", rates=[0.0, 0.25, 0.5, 1.0])
    text = "Black   leather ankle-boots, size 38 (EU); with a chunky heel and a side zipper"
    changed = []
    for rate in protocol.levels():
        out = protocol.apply({"text": [text]}, rate, generator_for("tt"))["text"][0]
        assert [len(w) for w in out.split(" ")] == [len(w) for w in text.split(" ")]  # spacing kept
        changed.append(sum(a != b for a, b in zip(out.split(), text.split(), strict=True)))
    assert changed[0] == 0 and changed == sorted(changed) and changed[-1] > changed[1]


# ------------------------------------------------------------------ monotone on models that rely on it
@pytest.fixture(scope="module")
def trained():
    """concat_mlp and the unimodal baselines trained on features where each modality alone is
    informative (so a fusion relies on both, a unimodal model on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    data = synthetic_features(480, 96, 300, seed=0, noise=1.2, image_dim=12, text_dim=10)
    models = {}
    for fusion in ("concat_mlp", "image_only", "text_only"):
        config = RunConfig(fusion=fusion, dim=16, epochs=5, batch_size=64, lr=3e-3, patience=0, device="cpu")
        trainer = Trainer(config, data)
        trainer.fit()
        models[fusion] = trainer.model.eval()
    yield data, models
    torch.set_num_threads(threads)


def accuracies(model, data, protocol):
    return [m["test_accuracy"] for m in protocol_curve(model, data, protocol).values()]


@pytest.mark.parametrize(
    "name, relies_on",
    [
        ("missing_image", "image_only"),
        ("missing_text", "text_only"),
        ("missing_both_random", "concat_mlp"),
        ("feature_noise", "concat_mlp"),
        ("text_token_drop", "text_only"),
    ],
)
def test_monotone_on_a_model_that_relies_on_the_removed_input(trained, name, relies_on):
    data, models = trained
    protocol = make(
        name,
        **(
            {"sigmas": [0.0, 0.5, 1.0, 2.0, 4.0]}
            if name == "feature_noise"
            else {"rates": [0.0, 0.25, 0.5, 0.75, 1.0]}
        ),
    )
    acc = accuracies(models[relies_on], data, protocol)
    assert acc[0] > 0.6, f"{relies_on} did not learn ({acc[0]})"
    assert all(b <= a + 0.02 for a, b in zip(acc, acc[1:], strict=False)), f"{name} not monotone: {acc}"
    assert acc[-1] < acc[0] - 0.1, f"{name} at its highest level barely hurts {relies_on}: {acc}"


def test_a_model_that_ignores_the_modality_is_unaffected(trained):
    data, models = trained
    for name, model in (
        ("missing_text", "image_only"),
        ("missing_image", "text_only"),
        ("text_token_drop", "image_only"),
    ):
        acc = accuracies(models[model], data, make(name))
        assert len(set(acc)) == 1, f"{model} changed under {name}: {acc}"


def test_text_shuffle_only_matters_to_a_position_aware_model(trained):
    data, models = trained
    protocol = make("text_shuffle")
    assert len(set(accuracies(models["text_only"], data, protocol))) == 1  # mean pooling: order-free

    class FirstTextToken(torch.nn.Module):  # relies on the order: reads the first token only
        num_classes = data.num_classes

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward_batch(self, batch, check=False):
            first = {**batch, "text": batch["text"][:, :1], "text_mask": batch["text_mask"][:, :1]}
            return self.inner.forward_batch(first)

    # the synthetic text tokens are exchangeable (prototype + i.i.d. noise), so accuracy need not move:
    # what must change is what an order-aware model sees and predicts
    reader = FirstTextToken(models["text_only"]).eval()
    batch = data.batch("test", torch.arange(64))
    shuffled = make("text_shuffle", rates=[0.0, 1.0]).apply(batch, 1.0, generator_for("shuffle"))
    with torch.no_grad():
        before, after = reader.forward_batch(batch).logits, reader.forward_batch(shuffled).logits
        pooled = (
            models["text_only"].forward_batch(batch).logits,
            models["text_only"].forward_batch(shuffled).logits,
        )
    assert not torch.allclose(before, after)
    assert torch.allclose(*pooled, atol=1e-5)  # mean pooling: the same output


def test_relative_robustness_orders_models_by_reliance(trained):
    data, models = trained
    protocol = make("missing_image", rates=[0.0, 0.5, 1.0])
    rel = {
        f: relative_robustness(protocol.levels(), accuracies(models[f], data, protocol))
        / accuracies(models[f], data, protocol)[0]
        for f in models
    }
    assert rel["text_only"] == pytest.approx(1.0)
    assert rel["image_only"] < rel["concat_mlp"] < 1.0


def test_training_with_dropped_images_degrades_less_under_missing_image(trained):
    """concat_mlp trained with the image dropped from half of the samples (train protocol
    missing_image@0.5) loses clearly less than concat_mlp trained on complete pairs; the
    ``modality_dropout`` fusion (image or text dropped, p = 0.5 → 25% image drops) is not worse.
    All three train with the same batch size and steps. Measured here: drops (clean − all images
    missing) 0.18 (concat_mlp), 0.19 (modality_dropout), 0.11 (missing_image@0.5)."""
    data, models = trained
    protocol = make("missing_image", rates=[0.0, 0.25, 0.5, 0.75, 1.0])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    robust = {"concat_mlp": models["concat_mlp"]}
    for name, config in (
        ("modality_dropout", RunConfig(fusion="modality_dropout:p=0.5", dim=16, epochs=5, batch_size=64, lr=3e-3, patience=0, device="cpu")),
        ("train_missing", RunConfig(fusion="concat_mlp", dim=16, epochs=5, batch_size=64, lr=3e-3, patience=0, device="cpu",
                                    train_protocol="missing_image@0.5")),
    ):  # fmt: skip
        trainer = Trainer(config, data)
        trainer.fit()
        robust[name] = trainer.model.eval()
    torch.set_num_threads(threads)
    drop = {}
    for name, model in robust.items():
        acc = accuracies(model, data, protocol)
        drop[name] = acc[0] - acc[-1]
    assert drop["train_missing"] < drop["concat_mlp"] - 0.05, drop
    assert drop["modality_dropout"] <= drop["concat_mlp"] + 0.02, drop


def test_train_time_label_noise_flips_train_and_val_once_and_never_test():
    from fusionzoo.protocols._train_time import expand_train_protocols, with_train_protocol

    data = synthetic_features(300, 100, 100, seed=1)
    config = RunConfig(train_protocol="label_noise:mode=uniform@0.5", device="cpu")
    assert config.train_protocol == "label_noise:mode=uniform,seed=0,val=true@0.5"
    noisy = with_train_protocol(config, data)
    for split in ("train", "val"):
        flipped = noisy.labels(split) != data.labels(split)
        assert 0.35 < flipped.mean() < 0.65
        indices = torch.tensor([0, 5, 7])
        assert np.array_equal(noisy.batch(split, indices)["label"].numpy(), noisy.labels(split)[[0, 5, 7]])
        assert np.array_equal(noisy.batch(split, indices)["label"], noisy.batch(split, indices)["label"])
    assert np.array_equal(noisy.labels("test"), data.labels("test"))
    assert np.array_equal(noisy.batch("test", torch.arange(4))["label"].numpy(), data.labels("test")[:4])
    # the same noisy labels for every run seed (the protocol's own seed decides)
    other = with_train_protocol(config.replace(seed=3), data)
    assert np.array_equal(other.labels("train"), noisy.labels("train"))
    assert with_train_protocol(RunConfig(train_protocol="label_noise@0", device="cpu"), data) is data
    assert expand_train_protocols([]) == [""]
    assert expand_train_protocols(["label_noise:rates=0;0.2", "missing_image@0.3"]) == [
        "",
        "label_noise:mode=uniform,seed=0,val=true@0.2",
        "missing_image:imputation=mask,seed=0@0.3",
    ]


def test_train_time_token_protocol_perturbs_training_batches_only():
    from fusionzoo.protocols._train_time import with_train_protocol

    data = synthetic_features(64, 32, 32, seed=2)
    wrapped = with_train_protocol(RunConfig(train_protocol="missing_image@1", device="cpu"), data)
    assert not wrapped.batch("train", torch.arange(8))["image_mask"].any()
    assert wrapped.batch("val", torch.arange(8))["image_mask"].all()
    assert wrapped.batch("test", torch.arange(8))["image_mask"].all()
    first = with_train_protocol(RunConfig(train_protocol="missing_image@0.5", device="cpu"), data)
    second = with_train_protocol(RunConfig(train_protocol="missing_image@0.5", device="cpu"), data)
    assert torch.equal(
        first.batch("train", torch.arange(32))["image_mask"],
        second.batch("train", torch.arange(32))["image_mask"],
    )
    assert RunConfig(train_protocol="missing_image@0.5").config_hash() != RunConfig().config_hash()


def test_label_noise_runs_take_buckets_and_class_weights_from_the_labels_they_train_on():
    """The trainer's head/medium/tail buckets and class weights come from the noisy training labels, as
    ``fusionzoo eval`` takes them, so the run's test metrics and its level-0 evaluation agree."""
    from fusionzoo.evaluation.tasks import test_metrics
    from fusionzoo.metrics.class_buckets import class_buckets
    from fusionzoo.protocols._train_time import with_train_protocol
    from fusionzoo.train.losses import class_weights_from_labels

    data = synthetic_features(240, 60, 90, seed=1)
    config = RunConfig(fusion="concat_mlp", dim=8, epochs=1, batch_size=64, class_weighted=True, device="cpu",
                       train_protocol="label_noise:mode=class_conditional@0.5")  # fmt: skip
    noisy, clean = with_train_protocol(config, data).labels("train"), data.labels("train")
    assert not np.array_equal(class_buckets(noisy, 6), class_buckets(clean, 6))  # the case that matters
    trainer = Trainer(config, data)
    assert np.array_equal(trainer.buckets, class_buckets(noisy, 6))
    assert torch.equal(trainer.loss_fn.class_weights, class_weights_from_labels(noisy, 6))
    result = trainer.fit()
    evaluated = test_metrics(trainer.model, data, 512, class_buckets(noisy, 6), torch.device("cpu"))
    assert {f"test_{k}": v for k, v in result.metrics.items() if k.startswith("acc_")} == {
        k: v for k, v in evaluated.items() if k.startswith("test_acc_")
    }
