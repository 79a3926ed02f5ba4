"""Contract checks for fusion and head plugins (usable by plugin authors in their own test suites).

    from fusionzoo.testing import check_fusion, check_head
    check_fusion(MyFusion)              # or an instance, or a registered name / spec string
    check_head("moe:experts=4")
    check_search_space(MyFusion)        # its declared search space (``fusionzoo tune``)

Each violated rule raises :class:`ContractError` naming the plugin and the rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.interface import FusionOutput, HeadOutput
from fusionzoo.output_checks import ContractError, validate_fusion_output, validate_head_output

__all__ = [
    "ContractError",
    "check_fusion",
    "check_head",
    "check_search_space",
    "validate_fusion_output",
    "validate_head_output",
]

FUSION_SHAPES = ((2, 3, 5, 16), (3, 1, 4, 32), (4, 7, 2, 16))  # (B, Ni, Nt, D)
HEAD_SHAPES = ((2, 1, 16, 3), (3, 5, 32, 4))  # (B, N, D, C)


def _name(module: Any) -> str:
    return getattr(module, "spec", None) or getattr(module, "registry_name", None) or type(module).__name__


def _builder(target: Any, kind: str, hp: dict[str, Any]) -> Callable[..., nn.Module]:
    """Turn a class, an instance's class or a registry spec into ``build(*args) -> module``."""
    from fusionzoo import registry

    if isinstance(target, str):
        create = registry.create_fusion if kind == "fusion" else registry.create_head
        return lambda *args: create(target, *args, **hp)
    if isinstance(target, nn.Module):
        return lambda *args: target
    if inspect.isclass(target) or callable(target):
        return lambda *args: target(*args, **hp)
    raise TypeError(f"cannot check {target!r}: pass a class, an instance or a registered name")


def _random_masks(batch: int, length: int, generator: torch.Generator) -> Tensor:
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    return torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)


def _total(out: FusionOutput | HeadOutput, primary: Tensor) -> Tensor:
    total = primary.float().pow(2).mean()
    for value in out.aux_losses.values():
        total = total + value.float()
    return total


def _gradient_check(
    name: str,
    module: nn.Module,
    make_batch: Callable[[int], tuple[Tensor, ...]],
    run: Callable[..., Any],
    primary: Callable[[Any], Tensor],
    rounds: int = 4,
) -> None:
    """Every trainable parameter must receive a gradient in at least one of a few random batches."""
    module.train()
    if not any(p.requires_grad for p in module.parameters()):
        return  # parameter-free (e.g. a fully ablated fluid): nothing to reach
    module.zero_grad(set_to_none=True)
    for seed in range(rounds):
        out = run(*make_batch(seed))
        _total(out, primary(out)).backward()
    dead = [pname for pname, p in module.named_parameters() if p.requires_grad and p.grad is None]
    if dead:
        raise ContractError(
            name,
            "gradients reach every trainable parameter",
            f"no gradient for {', '.join(dead[:6])}{' …' if len(dead) > 6 else ''} (unused or dead parameters)",
        )
    nonfinite = [
        pname
        for pname, p in module.named_parameters()
        if p.grad is not None and not torch.isfinite(p.grad).all()
    ]
    if nonfinite:
        raise ContractError(name, "gradients are finite", f"NaN/inf gradient in {', '.join(nonfinite[:6])}")
    module.zero_grad(set_to_none=True)


def _eval_determinism(
    name: str,
    module: nn.Module,
    run: Callable[..., Any],
    primary: Callable[[Any], Tensor],
    batch: tuple[Tensor, ...],
) -> None:
    module.eval()
    with torch.no_grad():
        first, second = primary(run(*batch)), primary(run(*batch))
    if not torch.equal(first, second):
        diff = (first - second).abs().max().item()
        raise ContractError(name, "eval() is deterministic", f"two eval calls differ by up to {diff:.3g}")


def check_fusion(
    target: Any, shapes: Iterable[tuple[int, int, int, int]] = FUSION_SHAPES, seed: int = 0, **hp: Any
) -> None:
    """Validate a fusion plugin against the whole contract; raise :class:`ContractError` on the first rule broken.

    ``target``: a fusion class, an instance (its own ``dim`` is used), or a registered name/spec.
    ``hp``: constructor hyperparameters (e.g. tiny sizes for speed).
    """
    build = _builder(target, "fusion", hp)
    fixed_dim = target.dim if isinstance(target, nn.Module) else None
    for batch, n_img, n_txt, dim in shapes:
        dim = fixed_dim or dim
        torch.manual_seed(seed)
        module = build(dim)
        name = _name(module)
        if not isinstance(module, nn.Module):
            raise ContractError(name, "constructor returns an nn.Module", f"got {type(module).__name__}")
        gen = torch.Generator().manual_seed(seed)

        def make_batch(
            s: int, b: int = batch, ni: int = n_img, nt: int = n_txt, d: int = dim
        ) -> tuple[Tensor, ...]:
            g = torch.Generator().manual_seed(1000 + s)
            return (
                torch.randn(b, ni, d, generator=g),
                torch.randn(b, nt, d, generator=g),
                _random_masks(b, ni, g),
                _random_masks(b, nt, g),
            )

        def primary(out: FusionOutput) -> Tensor:
            if out.decision_weights is None:
                return out.tokens
            return torch.cat([out.tokens.flatten(1), out.decision_weights], dim=1)  # learned weights count

        image, text = (
            torch.randn(batch, n_img, dim, generator=gen),
            torch.randn(batch, n_txt, dim, generator=gen),
        )
        image_mask, text_mask = _random_masks(batch, n_img, gen), _random_masks(batch, n_txt, gen)
        for mode in ("train", "eval"):
            module.train(mode == "train")
            with torch.no_grad():
                validate_fusion_output(module(image, text), batch, dim, name)
                validate_fusion_output(module(image, text, image_mask, text_mask), batch, dim, name)
        if getattr(module, "modality_branches", False):  # declared branches: one feature per modality read
            with torch.no_grad():
                features = module(image, text, image_mask, text_mask).modality_features
            wanted = set(getattr(module, "modalities", ("image", "text")))
            if not wanted <= set(features):
                raise ContractError(
                    name,
                    "a fusion with modality_branches returns modality_features for each modality it reads",
                    f"got {sorted(features)}, expected {sorted(wanted)}",
                )
        # a whole modality missing for some samples (robustness evaluation relies on it)
        missing_image, missing_text = image_mask.clone(), text_mask.clone()
        missing_image[0] = False
        if batch > 1:
            missing_text[-1] = False
        for mode in (True, False):
            module.train(mode)
            with torch.no_grad():
                out = module(image, text, missing_image, missing_text)
            try:
                validate_fusion_output(out, batch, dim, name)
            except ContractError as err:
                raise ContractError(name, "finite output when a modality is missing", err.detail) from err
        _gradient_check(name, module, make_batch, module, primary)
        _eval_determinism(name, module, module, primary, (image, text, image_mask, text_mask))
        if fixed_dim:
            break


def check_head(
    target: Any, shapes: Iterable[tuple[int, int, int, int]] = HEAD_SHAPES, seed: int = 0, **hp: Any
) -> None:
    """Validate a head plugin (``target`` as in :func:`check_fusion`); shapes are ``(B, N, D, C)``."""
    build = _builder(target, "head", hp)
    fixed = (target.dim, target.num_classes) if isinstance(target, nn.Module) else None
    for batch, n_tok, dim, classes in shapes:
        if fixed:
            dim, classes = fixed
        torch.manual_seed(seed)
        module = build(dim, classes)
        name = _name(module)
        gen = torch.Generator().manual_seed(seed)
        tokens, mask = torch.randn(batch, n_tok, dim, generator=gen), _random_masks(batch, n_tok, gen)

        def make_batch(s: int, b: int = 16, n: int = n_tok, d: int = dim) -> tuple[Tensor, ...]:
            g = torch.Generator().manual_seed(1000 + s)
            return torch.randn(b, n, d, generator=g), _random_masks(b, n, g)

        def primary(out: HeadOutput) -> Tensor:
            return out.logits

        for mode in ("train", "eval"):
            module.train(mode == "train")
            with torch.no_grad():
                validate_head_output(module(tokens), batch, classes, name)
                validate_head_output(module(tokens, mask), batch, classes, name)
        _gradient_check(name, module, make_batch, module, primary)
        _eval_determinism(name, module, module, primary, (tokens, mask))
        if fixed:
            break


def check_search_space(target: Any, kind: str | None = None) -> None:
    """Validate a plugin's search space for ``fusionzoo tune``; raise :class:`ContractError` on a broken rule.

    A declaration (``search_space_distributions()``): every key is a constructor hyperparameter, every
    value an Optuna distribution, and the plugin builds with every hyperparameter at the low ends (first
    choices) and at the high ends (last choices). A legacy ``search_space(trial)``: it returns
    constructor hyperparameters only. ``target``: a class or a registered name of ``kind`` (``"fusion"``
    or ``"head"``, default: a ``Head`` subclass is a head, anything else a fusion).
    """
    import optuna

    from fusionzoo import registry
    from fusionzoo.interface import Head
    from fusionzoo.tune.distributions import representative
    from fusionzoo.tune.plugin_space import (
        RULE_KEYS,
        call_legacy_space,
        declaration_problems,
        raw_declaration,
        uses_legacy_space,
    )

    if isinstance(target, str):
        entry = registry.get_entry(kind or "fusion", registry.parse_spec(target)[0])
        cls, tiny = entry.obj, entry.test_config
    else:
        cls = target if callable(target) else type(target)
        tiny = dict(getattr(cls, "test_config", None) or {})
    kind = kind or ("head" if inspect.isclass(cls) and issubclass(cls, Head) else "fusion")
    name = getattr(cls, "__name__", repr(cls))
    if uses_legacy_space(cls):
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        unknown = sorted(set(call_legacy_space(cls, trial)) - set(registry.hyperparameters(cls)))
        if unknown:
            raise ContractError(name, RULE_KEYS, f"search_space(trial) returns {', '.join(unknown)}")
        return
    declared = raw_declaration(cls)
    problems = declaration_problems(cls, declared)
    if problems:
        raise ContractError(name, *problems[0])
    args = (16,) if kind == "fusion" else (16, 3)
    for last in (False, True):
        values = {hp: representative(dist, last) for hp, dist in declared.items()}
        try:
            cls(*args, **{**tiny, **values})
        except Exception as exc:
            raise ContractError(
                name, "search space values build the plugin", f"{values}: {type(exc).__name__}: {exc}"
            ) from exc
