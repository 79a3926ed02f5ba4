"""Errors raised by the encoders, each naming the thing that failed and how to fix it."""

from __future__ import annotations

from fusionzoo.errors import FusionzooError


class EncoderError(FusionzooError, RuntimeError):
    """An encoder spec, model or tokenizer that cannot be used as asked."""


class WeightsUnavailableError(EncoderError):
    """Pretrained weights (or a tokenizer) are not on this machine and cannot be downloaded now."""

    def __init__(self, kind: str, name: str, detail: str = "", *, offline: bool = True) -> None:
        self.kind = kind
        self.name = name
        flag = (
            "--no-pretrained"
            if kind == "image"
            else "--no-pretrained (random weights; a tokenizer is still needed)"
        )
        where = "offline (HF_HUB_OFFLINE=1 or no network)" if offline else "not found"
        local = (
            "timm:/path/to/folder (config.json + model.safetensors, from timm's save_for_hf) or "
            "create_image_encoder(spec, checkpoint_path=FILE)"
            if kind == "image"
            else "hf:/path/to/folder (a folder written by save_pretrained: config.json, weights, tokenizer files)"
        )
        message = (
            f"{kind} encoder '{name}': pretrained weights are not available {where}. Fix one of:\n"
            f"  - point to local weights: {local};\n"
            f"  - pass {flag};\n"
            f'  - download once on a connected machine (e.g. `python -c "import timm; '
            f"timm.create_model('<name>', pretrained=True)\"` or `huggingface-cli download <name>`) and copy "
            f"the Hugging Face cache (~/.cache/huggingface or $HF_HOME) here."
        )
        if detail:
            message += f"\n  (underlying error: {detail})"
        super().__init__(message)
