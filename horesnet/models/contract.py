"""The timm model contract of :class:`~horesnet.models.ResNet` (docs/model_api.md).

Researchers who come from timm call ``reset_classifier``, ``get_classifier``, ``forward_intermediates``,
``prune_intermediate_layers``, ``set_grad_checkpointing``, ``no_weight_decay``, ``group_matcher`` and read
``num_classes``, ``num_features``, ``feature_info`` and ``pretrained_cfg``; every horesnet network answers them
with timm's signatures and meanings, whatever its scheme. Feature taps are the stem output (index 0) and the output
of every stage (``level="stage"``, timm's taps) or of every block (``level="block"``, what the analysis tools use).
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..nn.block import SchemeBlock
from ..nn.multistep_coefficients import is_scheme_parameter

LEVELS = ("stage", "block")
# per-channel input statistics (RGB, in [0, 1]) of the training sets the two families are usually trained on
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
GLOBAL_POOLS = ("avg", "")


def family_cfg(arch: str, in_chans: int = 3, reduction: int | None = None) -> dict:
    """The input a network of family ``arch`` expects (timm's pretrained_cfg keys): 32x32 CIFAR images with
    CIFAR-10's statistics, or 224x224 ImageNet crops with ImageNet's; 0.5 per channel for grey images."""
    imagenet = arch == "imagenet"
    size = 224 if imagenet else 32
    reduction = reduction or (32 if imagenet else 4)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else (CIFAR10_MEAN, CIFAR10_STD)
    if in_chans != 3:  # grey images (MNIST-like): one statistic per channel
        mean, std = (0.5,) * in_chans, (0.5,) * in_chans
    return dict(input_size=(in_chans, size, size), pool_size=(size // reduction, size // reduction),
                interpolation="bilinear", crop_pct=0.875 if imagenet else 1.0, mean=mean, std=std,
                first_conv="stem.0", classifier="fc")


def check_head(num_classes, global_pool) -> None:
    """A ConfigError unless ``num_classes`` (>= 0) and ``global_pool`` (``GLOBAL_POOLS``) make a head."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ConfigError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}.")
    if global_pool not in GLOBAL_POOLS:
        raise ConfigError(f"global_pool={global_pool!r} is not supported; valid: 'avg', '' (none).")
    if num_classes and not global_pool:
        raise ConfigError(f"global_pool='' (no pooling) needs num_classes=0: the linear head of {num_classes} "
                          "classes takes pooled features (timm refuses this combination too).")


def take_indices(count: int, indices=None) -> tuple[list[int], int]:
    """timm's rule for which feature taps to return: None = all ``count``, an int n = the last n, a list = those
    (negative from the end). Returns (sorted absolute indices, the largest). A bad index is a ConfigError."""
    if indices is None:
        indices = count
    if isinstance(indices, int) and not isinstance(indices, bool):
        if not 0 < indices <= count:
            raise ConfigError(f"indices={indices} (the last n taps) must be in 1..{count}.")
        taken = list(range(count - indices, count))
    else:
        taken = []
        for i in indices:
            if not -count <= i < count:
                raise ConfigError(f"feature index {i} is out of range: this network has {count} taps "
                                  f"(0..{count - 1}, or -{count}..-1 from the end).")
            taken.append(i % count)
        if not taken:
            raise ConfigError("indices=[] takes no feature tap; give None (all), an int n (the last n) or a list.")
    return sorted(set(taken)), max(taken)


def checkpoint_stages(stages, count: int) -> tuple[int, ...]:
    """The 1-based stage numbers ``stages`` names (None: all ``count``), checked."""
    if stages is None:
        return tuple(range(1, count + 1))
    items = [stages] if isinstance(stages, int) else stages
    try:
        items = list(items)
    except TypeError:
        items = None
    if not items or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= count for s in items):
        raise ConfigError(f"grad_checkpointing stages={stages!r} is not valid: give 1-based stage numbers from 1 to "
                          f"{count} (this network has {count} stages), e.g. [1, 2], or None for all.")
    return tuple(sorted(set(items)))


class TimmContract:
    """Mixed into ``ResNet``: needs ``stem``, ``stages``, ``final``, ``pool``, ``fc``, ``num_features`` and
    ``config``."""

    # ------------------------------------------------------------------ classifier
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh linear head with ``num_classes`` outputs (0: no head, ``forward`` returns the pooled features);
        ``global_pool`` ``"avg"`` (the default) or ``""`` (no pooling, ``forward_head`` returns the feature map)."""
        check_head(num_classes, self.global_pool if global_pool is None else global_pool)
        if global_pool is not None:
            self.global_pool = global_pool
        self.num_classes = num_classes
        device = self.fc.weight.device if isinstance(self.fc, nn.Linear) else None
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes else nn.Identity()
        if num_classes >= 2:
            self.config["num_classes"] = num_classes  # a checkpoint of this model rebuilds the new head

    def forward_head(self, x, pre_logits: bool = False):
        if self.global_pool:
            x = self.pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    # ------------------------------------------------------------------ feature taps
    @property
    def feature_info(self) -> list[dict]:
        """timm's per-tap description: ``num_chs``, ``reduction`` (input size / tap size) and ``module`` (the name
        of the module whose output the tap is) for the stem and every stage (the taps of ``level="stage"``)."""
        return self._tap_info("stage")

    def _tap_info(self, level: str) -> list[dict]:
        stride = self.config.get("stem_stride", 1) if self.config.get("arch") == "cifar" else 4
        info = [dict(num_chs=_channels(self.stem), reduction=stride, module="stem")]
        for si, stage in enumerate(self.stages):
            for bi, block in enumerate(stage):
                stride *= _stride(block)
                if level == "block" or bi == len(stage) - 1:
                    name = f"stages.{si}.{bi}" if level == "block" else f"stages.{si}"
                    info.append(dict(num_chs=_channels(block), reduction=stride, module=name))
        return info

    def _modules_to(self, level: str, last: int) -> list[nn.Module]:
        """The modules, one per tap, that run up to tap ``last`` (tap 0 = stem): stages or blocks."""
        if level == "stage":
            return list(self.stages)[:last]
        return [block for stage in self.stages for block in stage][:last]

    def forward_intermediates(self, x, indices=None, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False, level: str = "stage"):
        """timm's feature extraction: the outputs of the taps ``indices`` (None: all; an int n: the last n; a list)
        and, unless ``intermediates_only``, the final features (``forward_features``). ``stop_early`` stops after
        the last tap asked for. ``level="block"`` taps every block instead of every stage. ``norm`` is accepted
        for timm's signature and, as in timm's ResNet, changes nothing (taps are raw block outputs)."""
        if output_fmt != "NCHW":
            raise ConfigError(f"output_fmt={output_fmt!r}: horesnet networks give 'NCHW' feature maps only.")
        if level not in LEVELS:
            raise ConfigError(f"level={level!r} is not valid; valid levels: {', '.join(LEVELS)}.")
        count = 1 + (len(self.stages) if level == "stage" else sum(len(s) for s in self.stages))
        taken, last = take_indices(count, indices)
        modules = self._modules_to(level, last if (stop_early or intermediates_only) else count - 1)
        x = self.stem(x)
        out = [x] if 0 in taken else []
        for tap, module in enumerate(modules, 1):  # a stage runs its blocks itself (hooks on it fire)
            x = module(x) if level == "stage" else self.forward_block(module, x)
            if tap in taken:
                out.append(x)
        if intermediates_only:
            return out
        if len(modules) == count - 1:
            x = self.final(x)
        return x, out

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False, prune_head: bool = True,
                                  level: str = "stage") -> list[int]:
        """Drop everything after the last tap in ``indices`` (the stages or blocks become ``nn.Identity``; with
        ``prune_norm`` the final norm too; with ``prune_head`` the classifier, ``reset_classifier(0, "")``).
        Returns the absolute indices, as timm."""
        if level not in LEVELS:
            raise ConfigError(f"level={level!r} is not valid; valid levels: {', '.join(LEVELS)}.")
        count = 1 + (len(self.stages) if level == "stage" else sum(len(s) for s in self.stages))
        taken, last = take_indices(count, indices)
        tap = 0
        for si, stage in enumerate(self.stages):
            if level == "stage":
                tap += 1
                if tap > last:
                    self.stages[si] = type(stage)()  # an empty stage: passes its input on
                continue
            for bi in range(len(stage)):
                tap += 1
                if tap > last:
                    stage[bi] = nn.Identity()
        if prune_norm:
            self.final = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return taken

    # ------------------------------------------------------------------ training helpers
    def set_grad_checkpointing(self, enable: bool = True, stages=None) -> None:
        """Recompute activations in backward instead of keeping them (timm's method of this name; gradients and
        BatchNorm statistics equal the plain model's; docs/speed.md). A scheme block keeps only the input of each
        unit call, an ODE block only its input. ``stages``: the 1-based stages to checkpoint (None: all)."""
        chosen = checkpoint_stages(stages, len(self.stages)) if enable else ()
        for si, stage in enumerate(self.stages, 1):
            for block in stage:
                for module in block.modules():  # nested blocks inside units: their outer block does the work
                    if isinstance(module, SchemeBlock):
                        module.recompute_units = False
                unit_level = isinstance(block, SchemeBlock)
                if unit_level:
                    block.recompute_units = si in chosen
                block.recompute_block = si in chosen and not unit_level

    @property
    def grad_checkpointing(self) -> bool:
        """Whether any block recomputes its activations in backward (timm's attribute of this name)."""
        return any(getattr(block, "recompute_units", False) or getattr(block, "recompute_block", False)
                   for stage in self.stages for block in stage)

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters horesnet's default recipe trains without weight decay (timm's optimiser
        factory excludes them): every normalisation parameter, every learnable step h and every learned multistep
        coefficient."""
        from torch.nn.modules.batchnorm import _BatchNorm

        norms = (_BatchNorm, nn.GroupNorm, nn.LayerNorm)
        names = set()
        for mname, m in self.named_modules():
            if isinstance(m, norms):
                names.update(f"{mname}.{p}" for p, _ in m.named_parameters(recurse=False))
        names.update(n for n, _ in self.named_parameters() if is_scheme_parameter(n))
        return names

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups for layer-wise learning rates: the stem, then one group per stage (``coarse``)
        or per block."""
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)")

    # ------------------------------------------------------------------ pretrained_cfg
    @property
    def in_chans(self) -> int:
        """Image channels the stem takes (timm's attribute of this name)."""
        return self.stem[0].in_channels

    @property
    def pretrained_cfg(self) -> dict:
        """What a client needs to feed the network: input size, interpolation, crop, mean/std and the names of
        the first conv and the classifier (timm's keys). timm's builder sets it to the registered configuration
        (``horesnet.models.timm_models``); setting None goes back to the one computed from the network."""
        cfg = self.__dict__.get("_pretrained_cfg")
        return cfg if cfg is not None else self._own_cfg()

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg) -> None:
        self.__dict__["_pretrained_cfg"] = None if cfg is None else dict(cfg)

    def _own_cfg(self) -> dict:
        cfg = family_cfg(self.config.get("arch", "cifar"), self.in_chans, self.feature_info[-1]["reduction"])
        return dict(cfg, architecture=self.architecture, num_classes=self.num_classes,
                    tag=self.config.get("block", "euler"))

    @property
    def default_cfg(self) -> dict:  # timm's older name
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg) -> None:
        self.pretrained_cfg = cfg

    @property
    def architecture(self) -> str:
        """e.g. ``rk4_cifar56`` or ``euler_imagenet50``."""
        return f"{self.config.get('block', 'euler')}_{self.config.get('arch', 'cifar')}{self.layout.depth}"


def _channels(block: nn.Module) -> int:
    """Output channels of a stem (its conv) or a block (its first unit's, every unit of a block has the same)."""
    if isinstance(block, nn.Sequential | nn.ModuleList) and isinstance(block[0], nn.Conv2d):  # the stem
        return block[0].out_channels
    unit = _first_unit(block)
    return unit.out_channels


def _first_unit(block: nn.Module) -> nn.Module:
    unit = block.unit(0) if hasattr(block, "unit") else block.func.unit  # a scheme block or an ODE block
    while hasattr(unit, "block"):  # a nested unit: its inner block's first unit
        unit = unit.block.unit(0)
    return unit


def _stride(block: nn.Module) -> int:
    return getattr(_first_unit(block), "stride", 1)
