"""The residual functions of a pre-norm Transformer layer, as units (docs/transformers.md).

A pre-norm layer is two residual functions stacked by addition, ``x += Attn(LN(x)); x += MLP(LN(x))``: forward
Euler with alternating units. The units here are those branches only -- the skip is the scheme block's -- so any
Runge-Kutta scheme can stack them (``arch=transformer``, ``horesnet/models/transformer.py``):

- :class:`AttentionUnit` ``Attn(LN(x))``: multi-head self-attention (causal or not) of the normalised input;
- :class:`MLPUnit` ``MLP(LN(x))``: two linear layers around an activation;
- :class:`LayerUnit` ``G(x) = layer(x) - x = A(x) + M(x + A(x))``: one whole layer's residual function, the unit
  of "RK over whole layers" (the ODE Transformer, Li et al. ACL 2022), computed without the subtraction.

Each keeps the parameter names of ``torch.nn.TransformerEncoderLayer`` where one exists (``norm``/``norm1``...),
so that weights copy across (:func:`copy_from_torch_layer`). Inputs are ``(batch, tokens, d_model)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .units import register_unit

ACTIVATIONS = ("gelu", "relu")


@dataclass(frozen=True)
class TransformerUnitOptions:
    """What a transformer unit factory is told besides its width (``in_channels`` = ``out_channels`` = d_model)."""

    heads: int = 4
    mlp_ratio: float = 4.0
    causal: bool = False
    dropout: float = 0.0
    activation: str = "gelu"
    eps: float = 1e-5


def _keeps_shape(unit: nn.Module, in_shape) -> tuple:
    """A transformer unit's output shape (its ``out_shape``): that of its input, (B, T, d_model)."""
    return in_shape


class AttentionUnit(nn.Module):
    """``Attn(LN(x))``: pre-norm multi-head self-attention, the attention branch of a Transformer layer."""

    out_shape = _keeps_shape

    def __init__(self, dim: int, heads: int, causal: bool = False, dropout: float = 0.0, eps: float = 1e-5):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"d_model={dim} is not divisible by heads={heads}.")
        self.heads, self.causal, self.dropout = heads, causal, dropout
        self.in_channels = self.out_channels = dim
        self.stride = 1
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.qkv = nn.Linear(dim, 3 * dim)  # = TransformerEncoderLayer.self_attn.in_proj_weight / in_proj_bias
        self.proj = nn.Linear(dim, dim)     # = self_attn.out_proj
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))

    def zero_init_last(self) -> None:
        """The output projection starts at zero: the unit outputs 0 and its block starts as the identity."""
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def extra_repr(self) -> str:
        return f"attention, d_model={self.in_channels}, heads={self.heads}, causal={self.causal}"


class MLPUnit(nn.Module):
    """``MLP(LN(x))``: the feed-forward branch of a Transformer layer (d -> ratio*d -> d)."""

    out_shape = _keeps_shape

    def __init__(self, dim: int, mlp_ratio: float = 4.0, activation: str = "gelu", dropout: float = 0.0,
                 eps: float = 1e-5):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation={activation!r} is not one of {', '.join(ACTIVATIONS)}.")
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.in_channels = self.out_channels = dim
        self.stride, self.activation = 1, activation
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, hidden)   # = TransformerEncoderLayer.linear1
        self.fc2 = nn.Linear(hidden, dim)   # = linear2
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        h = self.fc1(self.norm(x))
        h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
        return self.drop(self.fc2(self.drop(h)))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def extra_repr(self) -> str:
        return f"mlp, d_model={self.in_channels}, hidden={self.fc1.out_features}, {self.activation}"


class LayerUnit(nn.Module):
    """``G(x) = layer(x) - x = A(x) + M(x + A(x))``: a whole pre-norm layer's residual function.

    Euler over these units is again the standard pre-norm Transformer; a higher-order scheme over them is the
    ODE Transformer done right: its released code takes the layer output *including* the layer's own residual
    adds as F, which weighs the identity path by 1 + sum(b_i) per block (2.5 per RK2 block, docs/transformers.md).
    """

    out_shape = _keeps_shape

    def __init__(self, dim: int, options: TransformerUnitOptions):
        super().__init__()
        self.in_channels = self.out_channels = dim
        self.stride = 1
        self.attn = AttentionUnit(dim, options.heads, options.causal, options.dropout, options.eps)
        self.mlp = MLPUnit(dim, options.mlp_ratio, options.activation, options.dropout, options.eps)

    def forward(self, x):
        a = self.attn(x)
        return a + self.mlp(x + a)

    def zero_init_last(self) -> None:
        self.attn.zero_init_last()
        self.mlp.zero_init_last()


def _options(name: str, options) -> TransformerUnitOptions:
    if not isinstance(options, TransformerUnitOptions):
        raise ConfigError(f"unit {name!r} is a Transformer residual function on (batch, tokens, d_model) inputs; "
                          "build it with arch=transformer (docs/transformers.md), not in a convolutional network.")
    return options


def _check_width(name: str, cin: int, cout: int, stride: int) -> None:
    if cin != cout or stride != 1:
        raise ConfigError(f"unit {name!r} keeps the width (d_model) and the token count; got {cin}->{cout}, "
                          f"stride {stride}.")


def _attn(cin, cout, stride, options):
    o = _options("attn", options)
    _check_width("attn", cin, cout, stride)
    return AttentionUnit(cin, o.heads, o.causal, o.dropout, o.eps)


def _mlp(cin, cout, stride, options):
    o = _options("mlp", options)
    _check_width("mlp", cin, cout, stride)
    return MLPUnit(cin, o.mlp_ratio, o.activation, o.dropout, o.eps)


def _layer(cin, cout, stride, options):
    _check_width("layer", cin, cout, stride)
    return LayerUnit(cin, _options("layer", options))


register_unit("attn", _attn, convs=1, cost=lambda c: (4 * c * c, 4 * c),
              description="Attn(LN(x)): pre-norm self-attention branch (arch=transformer)", zero_init_last=True)
register_unit("mlp", _mlp, convs=1, cost=lambda c: (8 * c * c, 5 * c),
              description="MLP(LN(x)): pre-norm feed-forward branch (arch=transformer)", zero_init_last=True)
register_unit("layer", _layer, convs=2, cost=lambda c: (12 * c * c, 9 * c),
              description="G(x) = layer(x) - x: a whole pre-norm Transformer layer's residual (arch=transformer)",
              zero_init_last=True)


@torch.no_grad()
def copy_from_torch_layer(attn: AttentionUnit, mlp: MLPUnit, layer: nn.TransformerEncoderLayer) -> None:
    """Copy one ``nn.TransformerEncoderLayer(norm_first=True)``'s weights into an attention and an MLP unit."""
    attn.norm.load_state_dict(layer.norm1.state_dict())
    attn.qkv.weight.copy_(layer.self_attn.in_proj_weight)
    attn.qkv.bias.copy_(layer.self_attn.in_proj_bias)
    attn.proj.load_state_dict(layer.self_attn.out_proj.state_dict())
    mlp.norm.load_state_dict(layer.norm2.state_dict())
    mlp.fc1.load_state_dict(layer.linear1.state_dict())
    mlp.fc2.load_state_dict(layer.linear2.state_dict())


@torch.no_grad()
def copy_to_torch_layer(attn: AttentionUnit, mlp: MLPUnit, layer: nn.TransformerEncoderLayer) -> None:
    """The reverse of :func:`copy_from_torch_layer`: an attention and an MLP unit into one torch layer."""
    layer.norm1.load_state_dict(attn.norm.state_dict())
    layer.self_attn.in_proj_weight.copy_(attn.qkv.weight)
    layer.self_attn.in_proj_bias.copy_(attn.qkv.bias)
    layer.self_attn.out_proj.load_state_dict(attn.proj.state_dict())
    layer.norm2.load_state_dict(mlp.norm.state_dict())
    layer.linear1.load_state_dict(mlp.fc1.state_dict())
    layer.linear2.load_state_dict(mlp.fc2.state_dict())
