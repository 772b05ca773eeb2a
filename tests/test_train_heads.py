"""StackedHeads == L separately built BioHead-shaped heads; StackedAdam == torch.optim.Adam per member."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hf_bio.heads import StackedAdam, StackedHeads


class ReferenceHead(nn.Module):
    """The BioHead structure of contract 3, built independently for the test."""

    def __init__(self, in_dim: int, hidden_sizes: tuple[int, ...], num_labels: int) -> None:
        super().__init__()
        sizes = (in_dim, *hidden_sizes)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()) for a, b in zip(sizes, sizes[1:], strict=False)
        )
        self.classifier = nn.Linear(sizes[-1], num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.classifier(x)


def _references(heads: StackedHeads) -> list[ReferenceHead]:
    refs = []
    for k in range(heads.num_members):
        ref = ReferenceHead(heads.in_dim, heads.hidden_sizes, heads.num_labels)
        ref.load_state_dict(heads.member_state_dict(k), strict=True)  # exactly the contract's keys
        refs.append(ref)
    return refs


def test_forward_equals_separate_heads():
    heads = StackedHeads(4, in_dim=24, hidden_sizes=(16, 8, 6), num_labels=5, init_seeds=[3, 1, 4, 1])
    x = torch.randn(4, 7, 24)
    out = heads(x)
    assert out.shape == (4, 7, 5)
    for k, ref in enumerate(_references(heads)):
        torch.testing.assert_close(out[k], ref(x[k]), rtol=1e-5, atol=1e-6)
    # members 1 and 3 share an init seed: identical weights regardless of their position in the stack
    torch.testing.assert_close(heads.member_state_dict(1), heads.member_state_dict(3))


def test_init_matches_nn_linear_default_distribution():
    heads = StackedHeads(2, in_dim=400, hidden_sizes=(300,), num_labels=3)
    w = heads.member_state_dict(0)["blocks.0.0.weight"]
    bound = 1 / 400**0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert abs(float(w.std()) - bound / 3**0.5) < 0.05 * bound  # U(-b, b) has std b / sqrt(3)
    assert not torch.equal(w, heads.member_state_dict(1)["blocks.0.0.weight"])


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "tensor-ops"])
def test_training_steps_equal_separate_adam(fused):
    """Several Adam steps on the stacked heads == each reference head trained alone with torch Adam."""
    torch.manual_seed(0)
    heads = StackedHeads(3, in_dim=12, hidden_sizes=(10, 8), num_labels=4, init_seeds=[0, 1, 2])
    refs = _references(heads)
    opt = StackedAdam(heads.parameters(), 3, lr=1e-2)
    opt._use_fused = fused and hasattr(torch, "_fused_adam_")
    ref_opts = [torch.optim.Adam(r.parameters(), lr=1e-2) for r in refs]
    opt.member_lr[2] = 1e-3  # a member whose plateau schedule already reduced its learning rate
    for g in ref_opts[2].param_groups:
        g["lr"] = 1e-3
    for step in range(5):
        x, y = torch.randn(3, 9, 12), torch.randint(0, 4, (3, 9))
        if step == 3:
            opt.active[1] = False  # member 1 early-stopped: frozen from here on
        loss = nn.functional.cross_entropy(heads(x).permute(0, 2, 1), y, reduction="none").mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, (ref, ref_opt) in enumerate(zip(refs, ref_opts, strict=True)):
            if k == 1 and step >= 3:
                continue
            ref_opt.zero_grad()
            nn.functional.cross_entropy(ref(x[k]), y[k]).backward()
            ref_opt.step()
    for k, ref in enumerate(refs):
        torch.testing.assert_close(heads.member_state_dict(k), ref.state_dict(), rtol=1e-4, atol=1e-6)
