"""The MLP heads of many layers (and seeds) as one module: one forward/backward/step trains all of them.

`StackedHeads` holds K = members independent copies of the paper's head
    Linear(in, 128) - LayerNorm - ReLU - Linear(128, 64) - LayerNorm - ReLU - Linear(64, 32) - LayerNorm - ReLU - Linear(32, C)
with every weight stacked on a leading member axis, so K small matrix products become one batched
product (`torch.baddbmm`). Member k only ever sees its own slice, so it is mathematically the same as
a separately built `BioHead`; `member_state_dict(k)` exports slice k with exactly the state-dict keys
of `hf_bio.modeling_bio.BioHead` (contract 3): `blocks.{i}.0.weight/bias` (Linear),
`blocks.{i}.1.weight/bias` (LayerNorm) and `classifier.weight/bias`.

`StackedAdam` is `torch.optim.Adam` (same update, same defaults) with a learning rate per member and a
mask of members that still train, because each layer keeps its own ReduceLROnPlateau schedule and its
own early stopping while all layers share one parameter tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class StackedHeads(nn.Module):
    """K independent MLP heads evaluated together.

    Args:
        num_members: K, the number of heads (e.g. layers x seeds).
        in_dim: input size (the pooled feature size, 1536 for mean+std of a base model).
        hidden_sizes: sizes of the hidden Linear-LayerNorm-ReLU blocks; the paper's are (128, 64, 32).
        num_labels: C, the number of classes.
        layer_norm_eps: epsilon of every LayerNorm (nn.LayerNorm's default).
        init_seeds: one integer per member; member k is initialised from `torch.Generator().manual_seed(init_seeds[k])`
            exactly as `nn.Linear`/`nn.LayerNorm` would initialise it, so a member's start does not depend on
            how many other members are stacked with it. Default: 0..K-1.
    """

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        hidden_sizes: Sequence[int] = (128, 64, 32),
        num_labels: int = 2,
        layer_norm_eps: float = 1e-5,
        init_seeds: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if num_members < 1 or in_dim < 1 or num_labels < 1 or any(h < 1 for h in hidden_sizes):
            raise ValueError(
                f"num_members ({num_members}), in_dim ({in_dim}), num_labels ({num_labels}) and hidden_sizes "
                f"({tuple(hidden_sizes)}) must all be positive"
            )
        self.num_members, self.in_dim, self.num_labels = num_members, in_dim, num_labels
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.layer_norm_eps = layer_norm_eps
        sizes = (in_dim, *self.hidden_sizes)
        # Weights are stored [K, in, out] (nn.Linear's transposed) so baddbmm and its backward need no copies.
        self.block_weights = nn.ParameterList(nn.Parameter(torch.empty(num_members, a, b)) for a, b in zip(sizes, sizes[1:], strict=False))
        self.block_biases = nn.ParameterList(nn.Parameter(torch.empty(num_members, b)) for b in sizes[1:])
        self.norm_weights = nn.ParameterList(nn.Parameter(torch.ones(num_members, b)) for b in sizes[1:])
        self.norm_biases = nn.ParameterList(nn.Parameter(torch.zeros(num_members, b)) for b in sizes[1:])
        self.classifier_weight = nn.Parameter(torch.empty(num_members, sizes[-1], num_labels))
        self.classifier_bias = nn.Parameter(torch.empty(num_members, num_labels))
        seeds = list(range(num_members)) if init_seeds is None else [int(s) for s in init_seeds]
        if len(seeds) != num_members:
            raise ValueError(f"init_seeds has {len(seeds)} entries, expected one per member ({num_members})")
        self.reset_parameters(seeds)

    @torch.no_grad()
    def reset_parameters(self, init_seeds: Sequence[int]) -> None:
        linears = [*zip(self.block_weights, self.block_biases, strict=True), (self.classifier_weight, self.classifier_bias)]
        for k, seed in enumerate(init_seeds):
            generator = torch.Generator().manual_seed(seed)
            for weight, bias in linears:
                fan_in, fan_out = weight.shape[1], weight.shape[2]
                # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
                # drawn in nn.Linear's [out, in] order, then the bias from the same bound.
                w = torch.empty(fan_out, fan_in)
                nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
                weight[k].copy_(w.t())
                bound = 1 / math.sqrt(fan_in)
                bias[k].copy_(torch.empty(fan_out).uniform_(-bound, bound, generator=generator))
            for norm_weight, norm_bias in zip(self.norm_weights, self.norm_biases, strict=True):
                norm_weight[k].fill_(1.0)
                norm_bias[k].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [K, B, in_dim] (member k's inputs) -> logits [K, B, num_labels]."""
        if x.ndim != 3 or x.shape[0] != self.num_members or x.shape[2] != self.in_dim:
            raise ValueError(f"expected input [K={self.num_members}, B, {self.in_dim}], got {tuple(x.shape)}")
        h = x
        for weight, bias, norm_weight, norm_bias in zip(
            self.block_weights, self.block_biases, self.norm_weights, self.norm_biases, strict=True
        ):
            h = torch.baddbmm(bias.unsqueeze(1), h, weight)
            h = F.layer_norm(h, h.shape[-1:], eps=self.layer_norm_eps) * norm_weight.unsqueeze(1) + norm_bias.unsqueeze(1)
            h = F.relu(h)
        return torch.baddbmm(self.classifier_bias.unsqueeze(1), h, self.classifier_weight)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k as a `BioHead` state dict (keys `blocks.{i}.0.weight`, ..., `classifier.bias`), detached copies."""
        state: dict[str, torch.Tensor] = {}
        for i, (w, b, nw, nb) in enumerate(
            zip(self.block_weights, self.block_biases, self.norm_weights, self.norm_biases, strict=True)
        ):
            state[f"blocks.{i}.0.weight"] = w[k].t().contiguous()
            state[f"blocks.{i}.0.bias"] = b[k].clone()
            state[f"blocks.{i}.1.weight"] = nw[k].clone()
            state[f"blocks.{i}.1.bias"] = nb[k].clone()
        state["classifier.weight"] = self.classifier_weight[k].t().contiguous()
        state["classifier.bias"] = self.classifier_bias[k].clone()
        return {name: t.detach().cpu() for name, t in state.items()}


class StackedAdam(torch.optim.Optimizer):
    """Adam over stacked parameters whose first axis is the member, with a learning rate per member.

    The update is `torch.optim.Adam`'s (no weight decay, no amsgrad): for member k,
    m = beta1*m + (1-beta1)*g; v = beta2*v + (1-beta2)*g^2; p -= lr_k/(1-beta1^t_k) * m / (sqrt(v)/sqrt(1-beta2^t_k) + eps).
    `member_lr` [K] is set by the per-member plateau schedule; members with `active[k] == False` are frozen
    (their parameters, moments and step count do not change).

    Args:
        params: parameters with shape [K, ...].
        num_members: K.
        lr: initial learning rate of every member.
        betas, eps: as in torch.optim.Adam.
    """

    def __init__(self, params, num_members: int, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        self.num_members = num_members
        for group in self.param_groups:
            for p in group["params"]:
                if p.shape[0] != num_members:
                    raise ValueError(f"StackedAdam: parameter of shape {tuple(p.shape)} lacks the member axis of size {num_members}")
        self.member_lr = torch.full((num_members,), float(lr), dtype=torch.float64)
        self.active = torch.ones(num_members, dtype=torch.bool)
        self._use_fused = hasattr(torch, "_fused_adam_")

    def _member_runs(self, steps: torch.Tensor) -> dict[tuple[float, float], list[slice]]:
        """Active members grouped by (learning rate, step count), each group as contiguous index ranges.

        Usually every member is active with the same rate and step: one range covering the whole stack, so the
        fused kernel below runs once per parameter tensor instead of once per member.
        """
        runs: dict[tuple[float, float], list[slice]] = {}
        previous: tuple[tuple[float, float], int] | None = None
        lrs, counts = self.member_lr.tolist(), steps.tolist()
        for k in self.active.nonzero().flatten().tolist():
            key = (lrs[k], counts[k])
            if previous == (key, k - 1):  # extends the current range
                runs[key][-1] = slice(runs[key][-1].start, k + 1)
            else:
                runs.setdefault(key, []).append(slice(k, k + 1))
            previous = (key, k)
        return runs

    def _fused_step(self, params: list[torch.Tensor], group: dict) -> bool:
        """torch's fused Adam kernel (what `Adam(fused=True)` runs: one pass over p, grad, m, v), one call per
        distinct (learning rate, step) over all parameters' member ranges. Returns False where it is unavailable."""
        if not self._use_fused or any(p.dtype != torch.float32 for p in params):
            return False
        steps = self.state[params[0]]["step"]  # already incremented for the active members
        if any(not torch.equal(self.state[p]["step"], steps) for p in params[1:]):
            return False  # parameters stepped apart (a grad was missing once): the per-tensor path handles it
        beta1, beta2 = group["betas"]
        states = [self.state[p] for p in params]
        applied = False
        try:
            for (lr, step), ranges in self._member_runs(steps).items():
                step_tensor = torch.tensor(step, dtype=torch.float32, device=params[0].device)
                torch._fused_adam_(
                    [p[r] for p in params for r in ranges], [p.grad[r] for p in params for r in ranges],
                    [s["exp_avg"][r] for s in states for r in ranges], [s["exp_avg_sq"][r] for s in states for r in ranges],
                    [], [step_tensor] * (len(params) * len(ranges)),
                    lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False,
                )
                applied = True
        except (TypeError, RuntimeError, NotImplementedError):
            if applied:
                raise
            self._use_fused = False  # this torch build's kernel differs: use the plain tensor ops from now on
            return False
        return True

    def state_dict(self):
        state = super().state_dict()
        state["member_lr"] = self.member_lr.clone()
        state["active"] = self.active.clone()
        return state

    def load_state_dict(self, state_dict) -> None:
        state_dict = dict(state_dict)
        self.member_lr = state_dict.pop("member_lr").clone()
        self.active = state_dict.pop("active").clone()
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        active = self.active.to(torch.float64)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros(self.num_members, dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += active
            if not params or self._fused_step(params, group):
                continue
            for p in params:
                state = self.state[p]
                t = state["step"].clamp_min(1.0)
                shape = (-1,) + (1,) * (p.ndim - 1)
                keep = self.active.to(p.device).view(shape)
                grad = p.grad
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                if bool(self.active.all()):  # the common case: in place, no extra copies
                    exp_avg.lerp_(grad, 1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                else:
                    exp_avg.copy_(torch.where(keep, exp_avg.lerp(grad, 1 - beta1), exp_avg))
                    exp_avg_sq.copy_(torch.where(keep, exp_avg_sq * beta2 + (1 - beta2) * grad * grad, exp_avg_sq))
                step_size = (self.member_lr * active / (1 - beta1**t)).to(p.device, p.dtype).view(shape)
                bc2_sqrt = torch.sqrt(1 - beta2**t).to(p.device, p.dtype).view(shape)
                # torch.optim.Adam: p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps), with few temporaries
                denom = exp_avg_sq.sqrt().div_(bc2_sqrt).add_(group["eps"])
                p.sub_(exp_avg.div(denom).mul_(step_size))
        return loss
