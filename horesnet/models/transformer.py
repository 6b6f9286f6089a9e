"""``arch=transformer``: pre-norm Transformer stacks whose residual functions any scheme groups (docs/transformers.md).

The network is embedding (token ids or vectors) + positional encoding (learned or sinusoidal), one stage of scheme
blocks over the units of :mod:`horesnet.models.transformer_layout`, a final LayerNorm and a head: per token for a
causal decoder (language modelling), after mean pooling or a class token for an encoder. With ``block=euler`` and
``layout=alternate`` (or ``layer``) it is exactly a stack of ``nn.TransformerEncoderLayer(norm_first=True)``.
It answers the analysis tools as the ResNet does (``blocks()``, ``units()``, addresses ``s1.b3.u2``) and timm's
model API where it applies (``forward_features``, ``forward_head``, ``reset_classifier``, ``forward_intermediates``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import SchemeBlock, get_unit
from ..nn.multistep import MultistepBlock
from ..nn.transformer import TransformerUnitOptions
from ..schemes import get_scheme
from . import multistep
from .factory import FAMILIES, register_family
from .resnet import Stage, UnitInfo, _block_units
from .transformer_layout import plan_transformer

DEFAULT_CONTEXT = 128  # positions when neither the config nor the data says (build_model outside fit)
POOLS = ("avg", "token", "")


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos positions (Vaswani et al. 2017, Sec. 3.5), added to the embeddings."""

    def __init__(self, context: int, dim: int):
        super().__init__()
        pos = torch.arange(context, dtype=torch.float64)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
        table = torch.zeros(context, dim, dtype=torch.float64)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
        self.register_buffer("table", table.float(), persistent=False)

    def forward(self, x):
        return x + self.table[: x.shape[1]].to(x.dtype)


class LearnedPositions(nn.Module):
    def __init__(self, context: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(context, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


class Transformer(nn.Module):
    """A pre-norm Transformer whose residual functions are the units of scheme blocks (one stage, ``s1``)."""

    def __init__(self, embed: nn.Module, pos: nn.Module, blocks: list[nn.Module], final: nn.Module, dim: int,
                 num_classes: int, layout, config: dict, causal: bool, global_pool: str, context: int,
                 dropout: float = 0.0):
        super().__init__()
        self.embed, self.pos, self.drop = embed, pos, nn.Dropout(dropout)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if global_pool == "token" else None
        self.stages = nn.Sequential(Stage(*blocks))
        self.final = final
        self.num_features = self.head_hidden_size = dim
        self.num_classes, self.causal, self.global_pool, self.context = num_classes, causal, global_pool, context
        self.fc = nn.Linear(dim, num_classes) if num_classes else nn.Identity()
        self.layout, self.config = layout, dict(config)

    # ------------------------------------------------------------------ forward
    def forward_stem(self, x):
        """Embedding (+ class token) + positions: ``(batch, tokens, d_model)``."""
        tokens = x.shape[1] + (self.cls_token is not None)
        if tokens > self.context:
            raise ConfigError(f"a sequence of {x.shape[1]} tokens does not fit this model's context of "
                              f"{self.context} positions.")
        h = self.embed(x)
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1).to(h.dtype), h], dim=1)
        return self.drop(self.pos(h))

    def forward_stages(self, x):
        return self.stages(x)

    def forward_final(self, x):
        return self.final(x)

    def forward_features(self, x):
        return self.final(self.stages(self.forward_stem(x)))

    def forward_head(self, x, pre_logits: bool = False):
        """Causal: logits per token ``(B, T, V)``; encoder: pooled (``avg`` over tokens, or the class token)."""
        if not self.causal and self.global_pool == "avg":
            x = x.mean(dim=1)
        elif not self.causal and self.global_pool == "token":
            x = x[:, 0]
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------ structure (analysis tools)
    def blocks(self):
        for bi, (block, spec) in enumerate(zip(self.stages[0], self.layout.stages[0].blocks, strict=True), 1):
            yield f"s1.b{bi}", block, spec

    def units(self):
        for address, block, spec in self.blocks():
            if isinstance(block, MultistepBlock):  # one unit per step: s1.b1.u1 .. s1.b1.uT
                for i, unit in enumerate(block.units, 1):
                    yield f"{address}.u{i}", unit, UnitInfo(1, 1, i, block.scheme.name, False, False, path=(i,))
                continue
            yield from _block_units(address, block, 1, int(address.split(".b")[1]), spec, ())

    @property
    def nfe(self) -> int:
        return 0

    @property
    def learnable_steps(self) -> list[nn.Parameter]:
        return [m.step for m in self.modules() if isinstance(m, SchemeBlock | MultistepBlock) and m.learn_step]

    def learned_coefficients(self) -> dict[str, dict]:
        """``{block address: {name: value}}`` of the multistep block's learned coefficients (lm's k), as now."""
        return {address: block.coefficients.values() for address, block, _ in self.blocks()
                if isinstance(block, MultistepBlock) and block.coefficients.family is not None}

    # ------------------------------------------------------------------ timm's model API
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ConfigError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}.")
        if global_pool is not None:
            if global_pool not in POOLS or (global_pool == "token") != (self.cls_token is not None):
                raise ConfigError(f"global_pool={global_pool!r}: this network pools by "
                                  f"{'its class token' if self.cls_token is not None else 'avg'} (or '' for none).")
            self.global_pool = global_pool
        self.num_classes = num_classes
        device = next(self.parameters()).device
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes else nn.Identity()
        if num_classes >= 2:
            self.config["num_classes"] = num_classes

    @property
    def feature_info(self) -> list[dict]:
        """One tap per block output after the embedding (tap 0), as ``forward_intermediates`` returns them."""
        return [dict(num_chs=self.num_features, reduction=1, module="pos")] + [
            dict(num_chs=self.num_features, reduction=1, module=f"stages.0.{i}") for i in range(len(self.stages[0]))]

    def forward_intermediates(self, x, indices=None, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NLC", intermediates_only: bool = False, level: str = "block"):
        """The taps ``indices`` (None: all; an int n: the last n; a list) -- tap 0 the embedded input, tap i the
        output of block i (``level="stage"``: the embedding and the one stage's output) -- and, unless
        ``intermediates_only``, the final features. ``norm`` applies the final LayerNorm to every tap."""
        from .contract import LEVELS, take_indices

        if output_fmt != "NLC":
            raise ConfigError(f"output_fmt={output_fmt!r}: Transformer features are 'NLC' (batch, tokens, d_model).")
        if level not in LEVELS:
            raise ConfigError(f"level={level!r} is not valid; valid levels: {', '.join(LEVELS)}.")
        blocks = list(self.stages[0])
        count = 1 + (1 if level == "stage" else len(blocks))
        taken, last = take_indices(count, indices)
        h = self.forward_stem(x)
        out = [self.final(h) if norm else h] if 0 in taken else []
        stop = len(blocks) if level == "stage" and last == 1 else last
        run = blocks[: stop if (stop_early or intermediates_only) else len(blocks)]
        for tap, block in enumerate(run, 1):
            h = block(h)
            if (tap if level == "block" else (1 if tap == len(blocks) else -1)) in taken:
                out.append(self.final(h) if norm else h)
        if intermediates_only:
            return out
        return (self.final(h) if len(run) == len(blocks) else h), out

    def set_grad_checkpointing(self, enable: bool = True, stages=None) -> None:
        """Recompute each unit's activations in backward (``stages``: None or [1], the one stage)."""
        if stages not in (None, 1, [1], (1,)):
            raise ConfigError(f"grad_checkpointing stages={stages!r}: a Transformer stack has one stage, 1.")
        for block in self.stages[0]:
            if isinstance(block, MultistepBlock) and enable:
                raise ConfigError("grad_checkpointing: a multistep stage of a Transformer stack is not recomputed; "
                                  "train it without grad_checkpointing.")
            block.recompute_units = bool(enable)

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n in ("pos.weight", "cls_token") or n.endswith(".step")}

    def extra_repr(self) -> str:
        return f"causal={self.causal}, context={self.context}, layout={self.layout.layout}"


def _positions(kind: str, context: int, dim: int) -> nn.Module:
    return LearnedPositions(context, dim) if kind == "learned" else SinusoidalPositions(context, dim)


def build_transformer(c, global_pool: str = "avg") -> Transformer:
    """The network of a :class:`~horesnet.models.ModelConfig` with ``arch='transformer'``."""
    if c.width != 1:
        raise ConfigError(f"width={c.width:g} multiplies the conv families' widths; give arch=transformer its width "
                          "as d_model=... .")
    layout = plan_transformer(c.depth, c.block, c.layout, c.strict, c.inner, c.stages, c.entry, c.unit, c.tied)
    _refuse_multistep_options(c)
    causal = bool(c.causal)
    embed_kind = c.embed or "token"
    context = c.context or DEFAULT_CONTEXT
    pool = "" if causal else ("token" if c.pool == "token" else global_pool)
    if c.d_model % c.heads:
        raise ConfigError(f"d_model={c.d_model} is not divisible by heads={c.heads}.")
    if causal and global_pool not in ("avg", ""):
        raise ConfigError(f"global_pool={global_pool!r}: a causal decoder has a head per token and no pooling.")
    d = c.d_model
    options = TransformerUnitOptions(c.heads, float(c.mlp_ratio), causal, float(c.dropout), c.activation)
    if embed_kind == "token":
        vocab = c.vocab_size or c.num_classes
        embed = nn.Embedding(vocab, d)
    else:
        embed = nn.Linear(c.in_channels, d)
    units = iter(zip(layout.units, layout.steps, strict=True))
    blocks = []
    for spec in layout.stages[0].blocks:
        if spec.multistep:  # every unit, one per step; pre-norm: no after-add module
            modules = [get_unit(name).build(d, d, 1, options) for name, _ in (next(units) for _ in range(spec.units))]
            blocks.append(multistep.make_block(spec.scheme, modules, [nn.Identity() for _ in modules], c.step, c))
            continue
        scheme = get_scheme(spec.scheme)
        mine = [next(units) for _ in range(spec.units)]
        tied = c.tied and scheme.increments > 1
        modules = [get_unit(name).build(d, d, 1, options) for name, _ in (mine[:1] if tied else mine)]
        step = c.step * mine[0][1]
        blocks.append(SchemeBlock(scheme, modules, nn.Identity(), None, step, c.learn_step, tied))
    model = Transformer(embed, _positions(c.pos, context + (pool == "token"), d), blocks, nn.LayerNorm(d), d,
                        c.num_classes, layout, c.as_dict(), causal, pool, context + (pool == "token"),
                        float(c.dropout))
    _init_weights(model)
    if c.zero_init_last:
        for _, unit, _ in model.units():
            unit.zero_init_last()
    if c.drop_path_rate > 0:
        from .factory import _add_drop_path

        _add_drop_path(model, c.drop_path_rate)
    return model


def _refuse_multistep_options(c) -> None:
    """What a multistep Transformer stage does not do (yet): per-channel coefficients (they index dimension 1,
    the tokens of a ``(B, T, d_model)`` state) and reversible training (not checked on attention units)."""
    if c.coefficient_per_channel:
        raise ConfigError("coefficient_per_channel=true is built for conv stages (one coefficient per channel of "
                          "(B, C, H, W)); arch='transformer' learns one coefficient per stage: drop it.")
    if c.reversible:
        raise ConfigError("reversible=true is built for conv stages; arch='transformer' multistep stages train with "
                          "their activations kept: drop it.")


def _init_weights(model: nn.Module) -> None:
    """GPT-2's initialisation: linear and embedding weights N(0, 0.02), biases 0, LayerNorm 1/0."""
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


register_family("transformer", plan_transformer, build_transformer)
FAMILIES.lock_builtins()  # what is registered so far is horesnet's own: never replaced, never removed
