"""Sparse mixture-of-experts blocks: batched expert MLPs with top-k dispatch, and the router losses.

For ``R`` routed tokens ``x_r``, router probabilities ``p_r = softmax(z_r)`` over ``E`` experts and the
top-k experts ``S_r`` of each token with weights ``w_{r,e}``:

    y_r = Σ_{e ∈ S_r} w_{r,e} · E_e(x_r),      E_e(x) = W2_e · Dropout(GELU(W1_e x + b1_e)) + b2_e

    load_balance = E · Σ_e f_e · P_e     (Switch Transformer / GShard form)
        f_e = (1/R) Σ_r 1[argmax_j p_{r,j} = e]    fraction of tokens whose top-1 expert is e
        P_e = (1/R) Σ_r p_{r,e}                    mean router probability of e
    router_z = (1/R) Σ_r (logsumexp_e z_{r,e})²    (ST-MoE router z-loss)

``load_balance`` is 1 for perfectly uniform routing and ``E`` when every token goes to one expert.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DISPATCH_MODES = ("auto", "grouped", "padded", "loop")


class ExpertMLPs(nn.Module):
    """``num_experts`` independent two-layer MLPs stored as batched weights ``(E, in, hidden)``.

    ``forward(x (R, in), expert_index (R, k) long, weights (R, k)) -> (R, out)`` evaluates each token
    only on its ``k`` chosen experts; the ``R·k`` assignments are sorted by expert first. Three
    dispatch strategies give the same result:

    - ``"grouped"``: ``torch.nn.functional.grouped_mm`` over the jagged per-expert groups — one kernel
      per layer, no padding; needs ``in`` and ``hidden`` to be multiples of 16 bytes (4 fp32 values);
    - ``"padded"``: an ``(E, capacity, in)`` buffer and two ``baddbmm`` — as fast when routing is
      balanced, wasteful when it is skewed;
    - ``"loop"``: one ``addmm`` pair per expert on exactly its tokens.

    ``"auto"`` (default) uses ``grouped`` when supported, else ``padded`` unless the padding would more
    than double the work, else ``loop``. (CPU, E=16, k=2, 256 tokens, D=256, hidden 512, 191 outputs,
    forward+backward: grouped ≈ padded < loop when balanced; grouped ≈ loop ≪ padded when skewed.)
    """

    def __init__(
        self, num_experts: int, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if num_experts < 1 or hidden < 1:
            raise ValueError(f"num_experts and hidden must be >= 1, got {num_experts} and {hidden}")
        self.num_experts = num_experts
        self.w1 = nn.Parameter(torch.empty(num_experts, in_dim, hidden))
        self.b1 = nn.Parameter(torch.empty(num_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, out_dim))
        self.b2 = nn.Parameter(torch.empty(num_experts, out_dim))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s default initialisation, per expert: U(±1/√fan_in) for weights and biases."""
        for weight, bias in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def no_weight_decay(self) -> set[str]:
        """The experts' biases (stored as ``(E, ·)`` matrices): no weight decay, like any bias."""
        return {"b1", "b2"}

    def grouped_supported(self, x: Tensor) -> bool:
        """Can ``torch.nn.functional.grouped_mm`` run these shapes (16-byte aligned rows, one dtype)?"""
        align = 16 // x.element_size()
        return (
            hasattr(F, "grouped_mm")
            and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and x.dtype == self.w1.dtype
            and self.w1.shape[1] % align == 0
            and self.w1.shape[2] % align == 0
        )

    def forward(self, x: Tensor, expert_index: Tensor, weights: Tensor, dispatch: str = "auto") -> Tensor:
        if dispatch not in DISPATCH_MODES:
            raise ValueError(f"dispatch must be one of {', '.join(DISPATCH_MODES)}, got '{dispatch}'")
        routed, k = expert_index.shape
        out = x.new_zeros(routed, self.w2.shape[2])
        if routed == 0:
            return out
        flat_expert = expert_index.reshape(-1)
        order = flat_expert.argsort(stable=True)  # assignments grouped by expert
        token = torch.arange(routed, device=x.device).repeat_interleave(k)[order]
        sorted_expert = flat_expert[order]
        sorted_weight = weights.reshape(-1)[order].to(x.dtype).unsqueeze(1)
        counts = torch.bincount(flat_expert, minlength=self.num_experts)
        if dispatch == "auto":
            if self.grouped_supported(x):
                dispatch = "grouped"
            else:
                balanced = self.num_experts * int(counts.max()) <= 2 * routed * k
                dispatch = "padded" if balanced else "loop"
        elif dispatch == "grouped" and not self.grouped_supported(x):
            raise ValueError(
                "dispatch='grouped' needs torch.nn.functional.grouped_mm, one dtype and in/hidden sizes that "
                "are multiples of 16 bytes; use 'padded' or 'loop'"
            )
        run = {"grouped": self._grouped, "padded": self._padded, "loop": self._loop}[dispatch]
        y = run(x.index_select(0, token), sorted_expert, counts)
        return out.index_add(0, token, y * sorted_weight)

    def _grouped(self, xs: Tensor, sorted_expert: Tensor, counts: Tensor) -> Tensor:
        offsets = torch.cumsum(counts, 0).to(torch.int32)
        hidden = F.grouped_mm(xs, self.w1, offs=offsets) + self.b1.index_select(0, sorted_expert)
        hidden = self.dropout(F.gelu(hidden))
        out_dim = self.w2.shape[2]
        pad = -out_dim % (16 // xs.element_size())  # the backward pass needs 16-byte aligned rows too
        w2 = F.pad(self.w2, (0, pad)) if pad else self.w2
        y = F.grouped_mm(hidden, w2, offs=offsets)
        return (y[:, :out_dim] if pad else y) + self.b2.index_select(0, sorted_expert)

    def _padded(self, xs: Tensor, sorted_expert: Tensor, counts: Tensor) -> Tensor:
        capacity = int(counts.max())
        starts = torch.cumsum(counts, 0) - counts
        slot = sorted_expert * capacity + torch.arange(xs.shape[0], device=xs.device) - starts[sorted_expert]
        buffer = xs.new_zeros(self.num_experts * capacity, xs.shape[1]).index_copy(0, slot, xs)
        buffer = buffer.view(self.num_experts, capacity, -1)
        hidden = self.dropout(F.gelu(torch.baddbmm(self.b1.unsqueeze(1), buffer, self.w1)))
        y = torch.baddbmm(self.b2.unsqueeze(1), hidden, self.w2)
        return y.reshape(self.num_experts * capacity, -1).index_select(0, slot)

    def _loop(self, xs: Tensor, sorted_expert: Tensor, counts: Tensor) -> Tensor:
        pieces = xs.split(counts.tolist())
        w1, b1, w2, b2 = self.w1.unbind(0), self.b1.unbind(0), self.w2.unbind(0), self.b2.unbind(0)
        return torch.cat(
            [
                torch.addmm(b2[e], self.dropout(F.gelu(torch.addmm(b1[e], piece, w1[e]))), w2[e])
                for e, piece in enumerate(pieces)
                if piece.shape[0]
            ]
        )


def load_balance_loss(probs: Tensor, top1: Tensor) -> Tensor:
    """``E · Σ_e f_e · P_e`` for router probabilities ``probs (R, E)`` and top-1 choices ``top1 (R,)``."""
    num_experts = probs.shape[-1]
    fraction = F.one_hot(top1, num_experts).to(probs.dtype).mean(0)
    return num_experts * (fraction * probs.mean(0)).sum()


def router_z_loss(router_logits: Tensor) -> Tensor:
    """``mean_r (logsumexp_e z_{r,e})²`` for router logits ``(R, E)``."""
    return torch.logsumexp(router_logits, dim=-1).pow(2).mean()
