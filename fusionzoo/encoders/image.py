"""Image encoders: any timm model, returning its token sequence ``(B, Li, Ei)``.

Spec strings::

    timm:<model_name>                   timm registry model, e.g. timm:vit_base_patch16_224
    timm:<model_name>@<checkpoint file> registry architecture + local weights (.safetensors/.pth); a
                                        full checkpoint with its classifier (state_dict or timm's
                                        {"state_dict": ...} / {"model": ...}) loads, see
                                        :func:`load_timm_checkpoint`
    timm:/path/to/folder                a folder written by timm's ``save_for_hf`` (config.json + weights)
    timm:local-dir:/path/to/folder      the same, in timm's own spelling

``forward_features`` gives the tokens: ViTs return ``(B, prefix + patches, E)``; CNN feature maps
``(B, C, H, W)`` are flattened to ``(B, H·W, C)``. Token selection (``image_tokens``) keeps ``all``
tokens, the ``cls`` token, the ``mean`` token, or ``N`` tokens (the patch grid average-pooled to N).
"""

from __future__ import annotations

import hashlib
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fusionzoo.encoders.errors import EncoderError, WeightsUnavailableError

PREFIX = "timm:"


def parse_token_selection(value: str | int | None) -> str | int:
    """``all`` | ``cls`` | ``mean`` | a positive integer N (given as int or digit string)."""
    if value is None:
        return "all"
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        count = int(value)
        if count < 1:
            raise EncoderError(f"token selection {value!r}: N must be >= 1")
        return count
    value = str(value).strip().lower()
    if value not in ("all", "cls", "mean"):
        raise EncoderError(f"token selection {value!r} is not one of all, cls, mean or a positive integer N")
    return value


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identity of a weights file: name, size, mtime and (for files under 4 GB) its content hash."""
    path = Path(path).resolve()
    stat = path.stat()
    ident: dict[str, Any] = {"file": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if stat.st_size < (4 << 30):
        ident["sha256"] = _file_digest(str(path), stat.st_size, stat.st_mtime_ns)
    return ident


def folder_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identity of a model folder: the identity of every regular file in it (sorted)."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return {"folder": str(path), "files": [dict(file_identity(p), file=p.name) for p in files]}


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _looks_like_missing_download(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc).lower()
    return bool(
        names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "HfHubHTTPError", "ConnectionError"}
        or "internet connection" in text
        or "couldn't connect" in text
        or "offline" in text
        or "urlopen error" in text
        or "name or service not known" in text
        or "temporary failure in name resolution" in text
    )


class ImageEncoder(nn.Module):
    """A timm model wrapped to return tokens ``(B, Li, Ei)`` from normalised pixels ``(B, 3, H, W)``."""

    def __init__(
        self,
        model: nn.Module,
        spec: str,
        weights: dict[str, Any],
        data_config: dict[str, Any],
        token_selection: str | int = "all",
    ) -> None:
        super().__init__()
        import timm.data

        self.model = model
        self.spec = spec
        self.weights = weights
        self.data_config = data_config
        self.token_selection = parse_token_selection(token_selection)
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
        if self.token_selection == "cls" and self.num_prefix_tokens == 0:
            raise EncoderError(
                f"image encoder '{spec}' has no [CLS] token; use --image-tokens mean, all or N instead"
            )
        self.transform = timm.data.create_transform(**data_config, is_training=False)
        self._probe: tuple[int, int] | None = None

    # ---- shapes ---------------------------------------------------------------------------------
    def _probe_shapes(self) -> tuple[int, int]:
        if self._probe is None:
            size = self.data_config["input_size"]
            was_training = self.training
            self.eval()
            with torch.inference_mode():
                param = next(self.model.parameters(), None)
                device = param.device if param is not None else torch.device("cpu")
                tokens = self.forward(torch.zeros(1, *size, device=device))
            self.train(was_training)
            self._probe = (int(tokens.shape[1]), int(tokens.shape[2]))
        return self._probe

    @property
    def num_tokens(self) -> int:
        return self._probe_shapes()[0]

    @property
    def out_dim(self) -> int:
        return self._probe_shapes()[1]

    # ---- forward --------------------------------------------------------------------------------
    def all_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(pixels)
        if isinstance(features, list | tuple):
            features = features[-1]
        if features.ndim == 4:
            if str(getattr(self.model, "output_fmt", "NCHW")).upper() == "NHWC":
                batch, height, width, channels = features.shape
                features = features.reshape(batch, height * width, channels)
            else:
                features = features.flatten(2).transpose(1, 2)
        elif features.ndim == 2:
            features = features[:, None, :]
        return features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.all_tokens(pixels)
        return select_tokens(tokens, self.token_selection, self.num_prefix_tokens)

    # ---- identity and layers --------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What determines the features: spec, weights identity, preprocessing, token selection."""
        config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.data_config.items()}
        return {
            "kind": "timm",
            "spec": self.spec,
            "weights": self.weights,
            "preprocessing": config,
            "tokens": self.token_selection,
            "timm": _version("timm"),
        }

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters grouped stem-first, then block by block (timm's coarse group matcher)."""
        from timm.models import group_parameters

        named = dict(self.model.named_parameters())
        try:
            groups = group_parameters(self.model, self.model.group_matcher(coarse=True))
            return [[named[name] for name in groups[key]] for key in sorted(groups)]
        except (AttributeError, NotImplementedError):
            return [list(named.values())]

    def freeze_layers(self, count: int) -> None:
        """Freeze the stem and the first ``count`` blocks (``count < 0``: freeze everything)."""
        groups = self.layer_groups()
        frozen = groups if count < 0 else groups[: count + 1] if count > 0 else []
        for group in frozen:
            for param in group:
                param.requires_grad_(False)


def select_tokens(tokens: torch.Tensor, selection: str | int, num_prefix_tokens: int) -> torch.Tensor:
    if selection == "all":
        return tokens
    if selection == "cls":
        return tokens[:, :1]
    if selection == "mean":
        return tokens.mean(dim=1, keepdim=True)
    patches = tokens[:, num_prefix_tokens:] if tokens.shape[1] > num_prefix_tokens else tokens
    count = int(selection)
    side = math.isqrt(patches.shape[1])
    root = math.isqrt(count)
    if side * side == patches.shape[1] and root * root == count:
        grid = patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], side, side)
        return F.adaptive_avg_pool2d(grid, root).flatten(2).transpose(1, 2)
    return F.adaptive_avg_pool1d(patches.transpose(1, 2), count).transpose(1, 2)


def _version(package: str) -> str:
    from importlib.metadata import version

    try:
        return version(package)
    except Exception:  # pragma: no cover - installed as a dependency
        return "unknown"


def _classifier_keys(model: nn.Module) -> set[str]:
    """``<name>.weight`` / ``<name>.bias`` of the classifier(s) named by ``pretrained_cfg["classifier"]``."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return {f"{name}.{part}" for name in names for part in ("weight", "bias")}


def _show(keys: list[str], limit: int = 8) -> str:
    more = f", … ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_timm_checkpoint(model: nn.Module, checkpoint: str | os.PathLike[str], spec: str = "") -> None:
    """Load a timm checkpoint file into ``model`` (built with ``num_classes=0``), as timm's pretrained
    path does.

    ``timm.models.load_checkpoint`` reads ``.safetensors`` or a torch file (``weights_only``), unwraps
    ``{"state_dict": ...}`` / ``{"model": ...}`` (timm's ``load_state_dict``; the model weights, not
    ``state_dict_ema``) and strips a ``module.`` prefix. The classifier keys named by the model's
    ``pretrained_cfg["classifier"]`` are dropped (``timm.models._builder.load_pretrained`` does the same
    when ``num_classes`` differs), so a full checkpoint saved with its head loads. Any other difference
    — missing or unexpected keys, a shape mismatch — raises :class:`EncoderError` naming the keys.
    """
    import argparse

    from timm.models import load_checkpoint

    label = spec or str(checkpoint)
    drop = _classifier_keys(model)
    dropped: list[str] = []

    def without_classifier(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
        own = set(model.state_dict())
        dropped.extend(k for k in state_dict if k in drop and k not in own)
        return {k: v for k, v in state_dict.items() if k in own or k not in drop}

    try:
        # timm's train.py stores its argparse.Namespace next to the weights: allow that one plain container
        with torch.serialization.safe_globals([argparse.Namespace]):
            incompatible = load_checkpoint(
                model, str(checkpoint), use_ema=False, strict=False, filter_fn=without_classifier
            )
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        if "size mismatch" in detail:
            raise EncoderError(
                f"image encoder '{label}': checkpoint {checkpoint} does not fit the architecture: {detail}"
            ) from None
        raise EncoderError(
            f"image encoder '{label}': cannot read checkpoint {checkpoint}: {detail}"
        ) from None
    except Exception as exc:
        raise EncoderError(
            f"image encoder '{label}': cannot read checkpoint {checkpoint}: {type(exc).__name__}: {exc}"
        ) from None
    problems = []
    if incompatible is not None and incompatible.missing_keys:
        problems.append(f"missing key(s): {_show(list(incompatible.missing_keys))}")
    if incompatible is not None and incompatible.unexpected_keys:
        problems.append(f"unexpected key(s): {_show(list(incompatible.unexpected_keys))}")
    if problems:
        raise EncoderError(
            f"image encoder '{label}': checkpoint {checkpoint} does not fit the architecture "
            f"({'; '.join(problems)}); only the classifier keys ({_show(sorted(drop)) or 'none'}) may "
            "differ. Check the model name and its options (e.g. img_size, depth)"
        )


def parse_image_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``(model_name, checkpoint_path, local_dir)`` from an image encoder spec."""
    if not spec.startswith(PREFIX):
        raise EncoderError(
            f"image encoder '{spec}' must start with '{PREFIX}' (e.g. timm:vit_base_patch16_224 or timm:/path)"
        )
    body = spec[len(PREFIX) :]
    if body.startswith("local-dir:"):
        return "", None, body[len("local-dir:") :]
    if os.sep in body and "@" not in body and Path(body).expanduser().is_dir():
        return "", None, str(Path(body).expanduser())
    if "@" in body:
        name, checkpoint = body.split("@", 1)
        return name, str(Path(checkpoint).expanduser()), None
    if os.sep in body or body.startswith("."):
        raise EncoderError(f"image encoder '{spec}': folder {body} does not exist")
    return body, None, None


def create_image_encoder(
    spec: str,
    pretrained: bool | None = None,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    image_tokens: str | int = "all",
    input_size: int | tuple[int, int] | None = None,
    crop_pct: float | None = None,
    model_kwargs: dict[str, Any] | None = None,
    init_seed: int = 0,
) -> ImageEncoder:
    """Build a frozen-ready timm image encoder (eval mode) from a spec string.

    ``pretrained=None`` means: pretrained weights for a registry name, unless a checkpoint or local
    folder is given (then those weights). Missing weights offline raise :class:`WeightsUnavailableError`.
    ``input_size``/``crop_pct`` override the model's preprocessing; ``model_kwargs`` go to
    ``timm.create_model`` (e.g. ``img_size=64`` for a ViT). Random initialisation (``pretrained=False``)
    draws from ``init_seed``, so the same spec gives the same weights (and cache key) every time.
    """
    import timm
    import timm.data

    name, spec_checkpoint, local_dir = parse_image_spec(spec)
    checkpoint = str(checkpoint_path) if checkpoint_path is not None else spec_checkpoint
    kwargs = {k: v for k, v in (model_kwargs or {}).items() if v is not None}
    if local_dir is not None:
        folder = Path(local_dir)
        if not (folder / "config.json").is_file():
            raise EncoderError(
                f"image encoder '{spec}': {folder} has no config.json; save it with "
                f"timm.models.save_for_hf(model, folder, safe_serialization=True)"
            )
        use_pretrained = True if pretrained is None else pretrained
        create_name = f"local-dir:{folder}"
        weights: dict[str, Any] = (
            folder_identity(folder) if use_pretrained else {"random_init": True, "config": str(folder)}
        )
    else:
        if not timm.is_model(name):
            close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise EncoderError(f"timm model '{name}' is not known to timm {_version('timm')}{hint}")
        create_name = name
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise EncoderError(f"image encoder '{spec}': checkpoint file {checkpoint} does not exist")
            use_pretrained = False
            weights = {"checkpoint": file_identity(checkpoint)}
        else:
            use_pretrained = True if pretrained is None else pretrained
            weights = {"random_init": True}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)  # random-init weights are reproducible (and so cacheable)
            model = timm.create_model(create_name, pretrained=use_pretrained, num_classes=0, **kwargs)
    except Exception as exc:
        if use_pretrained and (_looks_like_missing_download(exc) or _is_offline()):
            raise WeightsUnavailableError(
                "image", name or str(local_dir), f"{type(exc).__name__}: {exc}"
            ) from None
        raise EncoderError(
            f"image encoder '{spec}' could not be created: {type(exc).__name__}: {exc}"
        ) from exc
    if checkpoint is not None and local_dir is None:
        load_timm_checkpoint(model, checkpoint, spec)
    if use_pretrained and local_dir is None:
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        weights = {"pretrained": cfg.get("hf_hub_id") or cfg.get("url") or name, "tag": cfg.get("tag")}
    if weights.get("random_init"):
        weights["model_kwargs"] = dict(kwargs)
        weights["note"] = (
            "random initialisation: features depend on the torch seed; prefer a saved checkpoint"
        )
    model.eval()
    data_config = dict(timm.data.resolve_model_data_config(model))
    patch_embed = getattr(model, "patch_embed", None)
    fixed = getattr(patch_embed, "img_size", None)
    if fixed is not None and input_size is None and not getattr(patch_embed, "dynamic_img_size", False):
        data_config["input_size"] = (3, *tuple(fixed))
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        data_config["input_size"] = (3, *size)
    if crop_pct is not None:
        data_config["crop_pct"] = crop_pct
    encoder = ImageEncoder(model, spec, weights, data_config, image_tokens)
    return encoder.eval()
