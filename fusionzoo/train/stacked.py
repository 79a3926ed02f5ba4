"""S runs of one configuration as one stacked model: ``torch.func.stack_module_state`` + ``vmap``.

    params[name] = stack(member_1[name], ..., member_S[name])          (S, *shape), one leaf each
    logits, aux  = vmap(functional_call(model, (params, buffers), batch), randomness="different")
                   → (S, B, C), {name: (S,)}

Each member is built exactly as its own run builds it (``seed_everything(seed)``, then
``FusionModel.for_data``), so its initial weights are bitwise those of the run trained alone.

**Random draws** (dropout, modality dropout, ...): under ``vmap(randomness="different")`` every random
op becomes one physical draw of shape ``(S, *shape)``. :class:`MemberRandomness`, a dispatch mode that
sits below vmap and sees that physical op, fills slice ``i`` from member ``i``'s own generator with the
op the run alone would call on ``shape``. The generator starts where the global generator of the run
alone stands after building its model, so member ``i`` draws the same numbers in the same order as
its own run, whatever other seeds train beside it. A random op it does not know raises
:class:`Unbatchable` (the group then trains one run at a time).

**What cannot be stacked** is found by :func:`stacking_problem` before any training: one training
forward + backward and one evaluation forward of the stack on a few real rows, compared with each
member run alone (same rows, same generator state) — the loss, every aux loss, every gradient and the
eval logits must agree to ``rtol=atol=`` :data:`PROBE_TOLERANCE`. An op without a vmap rule
(data-dependent shapes such as boolean-mask indexing in the MoE head's token routing, ``.item()``),
a buffer written in training (batch-norm statistics) or any disagreement gives a reason, and the runs
train one at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from fusionzoo.train.model import FusionModel

__all__ = [
    "INPUT_KEYS",
    "PROBE_ROWS",
    "PROBE_TOLERANCE",
    "MemberRandomness",
    "StackedModel",
    "Unbatchable",
    "stacking_problem",
]

PROBE_ROWS = 8  # rows of the first training batch the probe runs
PROBE_TOLERANCE = 1e-4  # rtol = atol between the stacked and the single-run probe outputs
INPUT_KEYS = ("image", "text", "image_mask", "text_mask")


class Unbatchable(RuntimeError):
    """The stacked model cannot reproduce its members' runs; the message says why."""


# ------------------------------------------------------------------------------------ randomness
def _member_random(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], generators: Sequence[torch.Generator]
) -> Tensor:
    """The physical ``(S, *shape)`` draw of ``func`` with slice ``i`` from ``generators[i]``, each slice
    drawn by the op the run alone calls (``F.dropout``: ``empty_like(x).bernoulli_(1 - p)``)."""
    aten, members = torch.ops.aten, len(generators)
    kwargs = {k: v for k, v in kwargs.items() if k != "generator"}
    name = func.overloadpacket.__name__
    if name.endswith("_") and isinstance(args[0], Tensor) and args[0].shape[:1] == (members,):
        for i, g in enumerate(generators):  # in place (bernoulli_, exponential_, uniform_, normal_)
            func(args[0][i], *args[1:], **kwargs, generator=g)
        return args[0]
    if func is aten.bernoulli.p:  # dropout under vmap: bernoulli(x expanded to (S, ...), 1 - p)
        like, p = args[0], (args[1] if len(args) > 1 else kwargs.get("p", 0.5))
        return torch.stack(
            [torch.empty_like(like[i]).bernoulli_(p, generator=g) for i, g in enumerate(generators)]
        )
    if func in (aten.rand.default, aten.randn.default) and list(args[0])[:1] == [members]:
        draw = torch.rand if func is aten.rand.default else torch.randn
        return torch.stack([draw(list(args[0])[1:], generator=g, **kwargs) for g in generators])
    if func is aten.multinomial.default and args[0].dim() == 2 and args[0].shape[0] % members == 0:
        chunks = args[0].view(members, -1, args[0].shape[1])
        return torch.cat(
            [torch.multinomial(chunks[i], *args[1:], **kwargs, generator=g) for i, g in enumerate(generators)]
        )
    raise Unbatchable(
        f"random op {func} has no per-member draw (fusionzoo draws in-place random fills, bernoulli, "
        "rand, randn and multinomial per member)"
    )


def _no_dropout(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """An op tagged random whose ``dropout_p`` is 0 (the CPU flash attention kernel): draws nothing."""
    for index, argument in enumerate(func._schema.arguments):
        if argument.name == "dropout_p":
            value = args[index] if index < len(args) else kwargs.get("dropout_p", argument.default_value)
            return not value
    return False


class MemberRandomness(TorchDispatchMode):
    """Inside a vmapped forward, draw every random op per member from ``generators`` (see the module
    docstring); any other op runs as it is."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        self.generators = list(generators)

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no torch._disable_dynamo wrapper around every op: the stacked step runs eagerly

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        if torch.Tag.nondeterministic_seeded not in func.tags or _no_dropout(func, args, kwargs):
            return func(*args, **kwargs)
        return _member_random(func, args, kwargs, self.generators)


def clone_generator(generator: torch.Generator) -> torch.Generator:
    out = torch.Generator(device=generator.device)
    out.set_state(generator.get_state())
    return out


# ----------------------------------------------------------------------------------- the stack
class StackedModel:
    """``members`` (same architecture) as stacked parameters; see the module docstring.

    ``params``/``buffers`` map each name of the members' ``named_parameters``/``named_buffers`` to an
    ``(S, ...)`` tensor (the parameters are leaves the optimiser steps). ``members[i]`` stays a normal
    :class:`FusionModel`: :meth:`load_member` copies slice ``i`` into it (for checkpoints, the best
    weights and the final test evaluation, which then run exactly as for a single run).
    """

    def __init__(self, members: Sequence[FusionModel], generators: Sequence[torch.Generator]) -> None:
        if not members or len(members) != len(generators):
            raise ValueError("StackedModel needs one generator per member")
        if any(m.encoder is not None for m in members):
            raise Unbatchable("finetune mode (the encoders are in the graph)")
        self.members = list(members)
        self.generators = list(generators)
        params, buffers = stack_module_state(self.members)
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        self.base = copy.deepcopy(self.members[0])  # the code the stacked tensors run through
        self.size = len(self.members)

    @property
    def model(self) -> FusionModel:
        return self.members[0]

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        return list(self.params.items())

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def _call(self, inputs: Mapping[str, Any], batched_inputs: bool) -> Callable[..., Any]:
        base = self.base

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], tensors: dict[str, Tensor]) -> Any:
            out = functional_call(
                base,
                (params, buffers),
                (tensors["image"], tensors["text"], tensors.get("image_mask"), tensors.get("text_mask")),
            )
            return out.logits, dict(out.aux_losses)

        tensors = {k: inputs[k] for k in INPUT_KEYS if inputs.get(k) is not None}
        in_dims = (0, 0, {k: (0 if batched_inputs else None) for k in tensors})
        mapped = vmap(one, in_dims=in_dims, randomness="different")
        return lambda: mapped(self.params, self.buffers, tensors)

    def forward(self, inputs: Mapping[str, Any], batched_inputs: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """``(logits (S, B, C), {aux name: (S,)})``. ``batched_inputs``: every input tensor has a
        leading member dimension (each member's own rows); else all members read the same rows.
        In training mode the random draws come from the members' generators."""
        run = self._call(inputs, batched_inputs)
        if not self.base.training:
            return run()
        with MemberRandomness(self.generators):
            return run()

    @torch.no_grad()
    def load_member(self, index: int) -> FusionModel:
        """Copy slice ``index`` of every parameter and buffer into ``members[index]``; returns it."""
        member = self.members[index]
        for name, value in member.named_parameters():
            value.copy_(self.params[name][index])
        for name, value in member.named_buffers():
            value.copy_(self.buffers[name][index])
        return member


# ------------------------------------------------------------------------------------------- probe
def _single_outputs(
    member: FusionModel, state: Tensor, inputs: Mapping[str, Any], labels: Tensor, loss: Callable
) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor], Tensor]:
    """(loss, aux, grads by name, eval logits) of one member alone, its global RNG at ``state``."""
    model = copy.deepcopy(member)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(state)
        out = model(
            inputs["image"], inputs["text"], inputs.get("image_mask"), inputs.get("text_mask"), check=True
        )
        total = loss(out.logits, labels, out.aux_losses)
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.eval()
    with torch.no_grad():
        logits = model(
            inputs["image"], inputs["text"], inputs.get("image_mask"), inputs.get("text_mask")
        ).logits
    return total.detach(), {k: v.detach() for k, v in out.aux_losses.items()}, grads, logits


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(
        torch.allclose(a.float(), b.float(), rtol=PROBE_TOLERANCE, atol=PROBE_TOLERANCE, equal_nan=True)
    )


def stacking_problem(
    stack: StackedModel, inputs: Mapping[str, Any], labels: Tensor, loss: Callable[..., Tensor]
) -> str | None:
    """Why ``stack`` does not reproduce its members (``None``: it does); see the module docstring.

    ``inputs``/``labels``: a few training rows (shared by every member); ``loss(logits, labels, aux)``
    the scalar a run minimises. Nothing of ``stack`` changes (its generators are cloned)."""
    generators = [clone_generator(g) for g in stack.generators]
    expected = [
        _single_outputs(member, g.get_state(), inputs, labels, loss)
        for member, g in zip(stack.members, stack.generators, strict=True)
    ]
    params = {k: v.detach().clone().requires_grad_(True) for k, v in stack.params.items()}
    buffers = {k: v.clone() for k, v in stack.buffers.items()}
    trial = copy.copy(stack)
    trial.params, trial.buffers, trial.generators = params, buffers, generators
    trial.base = copy.deepcopy(stack.base)
    try:
        trial.train()
        repeated = {k: v.unsqueeze(0).repeat(trial.size, *([1] * v.dim())) for k, v in inputs.items()}
        logits, aux = trial.forward(repeated, batched_inputs=True)  # as in training: each member its rows
        totals = torch.stack(
            [loss(logits[i], labels, {k: v[i] for k, v in aux.items()}) for i in range(trial.size)]
        )
        totals.sum().backward()
        trial.train(False)
        with torch.no_grad():
            eval_logits, _ = trial.forward(inputs, batched_inputs=False)
    except Unbatchable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - an op without a vmap rule, a data-dependent shape, ...
        first = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return f"its forward or backward cannot run under torch.func.vmap ({first})"
    for name, value in buffers.items():
        if not torch.equal(value, stack.buffers[name]) and not all(
            _close(value[i], dict(m.named_buffers())[name]) for i, m in enumerate(stack.members)
        ):
            return f"buffer '{name}' changes during training (e.g. batch-norm statistics)"
    for i, (total, member_aux, grads, member_logits) in enumerate(expected):
        if not _close(totals[i].detach(), total):
            return f"the stacked training loss differs from the run alone (member {i})"
        for name, value in member_aux.items():
            if name not in aux or not _close(aux[name][i].detach(), value):
                return f"aux loss '{name}' differs from the run alone"
        for name, grad in grads.items():
            stacked = params[name].grad
            if stacked is None or not _close(stacked[i], grad):
                return f"the gradient of '{name}' differs from the run alone"
        if not _close(eval_logits[i], member_logits):
            return "the evaluation logits differ from the run alone"
    return None
