"""The adversary's perturbation ``delta_theta(x, t)``: a gradient field or a free field, from one MLP.

``form = "gradient"``: ``delta = grad_x phi_theta(x, t)`` with ``phi`` a scalar tanh MLP. The
gradient is written out layer by layer (the chain rule of the network, ``W_1^T (tanh' * (W_2^T
(... tanh' * v)))``), not asked of autograd: sampling cells evaluate it under ``inference_mode``
with no graph at all, and training differentiates through it with first-order autograd instead of
a double backward. ``form = "field"``: ``delta`` is the same MLP's ``d`` linear outputs.

Why a gradient form: a perturbation of the score that is a gradient, ``grad log(p e^phi) -
grad log p``, is the error of an estimate that is the score of *some* density, the case the
diffusion literature's bounds speak of; a free field can also rotate (a non-gradient part).

Time enters through the OU coefficients ``(e^{-t}, sqrt(1 - e^{-2t}))`` of the forward process,
concatenated to ``x``: both lie in [0, 1] for every t, so no scale has to be learned, and an
adversary trained against a Langevin sampler (t = 0 only) is a function of ``x`` alone.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

FORMS = ("gradient", "field")
TIME_FEATURES = 2


def time_features(t: float, n: int, like: Tensor) -> Tensor:
    """``[e^{-t}, sqrt(1 - e^{-2t})]`` repeated over ``n`` rows, in ``like``'s dtype and device."""
    values = torch.tensor([math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))], dtype=like.dtype, device=like.device)
    return values.expand(n, TIME_FEATURES)


class PerturbationMLP(nn.Module):
    """``delta_theta(x, t)`` of the given ``form`` (see the module docstring), unscaled.

    Parameters
    ----------
    dim : int
        Data dimension d.
    width : int
        Hidden width.
    depth : int
        Hidden tanh layers.
    form : {"gradient", "field"}
        ``grad_x phi`` of a scalar MLP, or the MLP's d outputs.
    """

    def __init__(self, dim: int, width: int, depth: int, form: str) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"parameter 'form' must be one of {', '.join(map(repr, FORMS))}, got {form!r}")
        self.dim, self.form = dim, form
        sizes = [dim + TIME_FEATURES] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        # gradient form: the output weights v of phi = v . h_L (a bias would not change grad phi)
        self.out = nn.Linear(width, 1 if form == "gradient" else dim, bias=form == "field")

    def forward(self, x: Tensor, t: float) -> Tensor:
        h = torch.cat([x, time_features(t, x.shape[0], x)], dim=1)
        activations = []
        for layer in self.hidden:
            h = torch.tanh(layer(h))
            activations.append(h)
        if self.form == "field":
            return self.out(h)
        # backward pass of phi written out: g_l = dphi/dh_{l-1} = ((g_{l+1}) * (1 - h_l^2)) W_l
        g = self.out.weight.expand(x.shape[0], -1)
        for layer, h_l in zip(reversed(self.hidden), reversed(activations)):
            g = (g * (1.0 - h_l * h_l)) @ layer.weight
        return g[:, : self.dim]

    def potential(self, x: Tensor, t: float) -> Tensor:
        """``phi_theta(x, t)`` ([n]) of the gradient form (what ``forward`` differentiates)."""
        if self.form != "gradient":
            raise ValueError("a 'field' perturbation has no potential")
        h = torch.cat([x, time_features(t, x.shape[0], x)], dim=1)
        for layer in self.hidden:
            h = torch.tanh(layer(h))
        return self.out(h)[:, 0]
