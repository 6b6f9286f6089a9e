"""From a composed Hydra config to the arguments of ``build_model`` and of ``pytorch_lightning.Trainer``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from ..models import MODEL_KEYS, build_model


def model_kwargs(cfg: DictConfig) -> dict:
    """The ``build_model`` options found at the top level of ``cfg``."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return {k: container[k] for k in MODEL_KEYS if k in container}


# keys of the trainer group that horesnet reads itself (not pytorch_lightning.Trainer arguments)
OWN_TRAINER_KEYS = ("channels_last", "checkpoint_every_n_steps")


def trainer_kwargs(cfg: DictConfig) -> dict:
    """The ``pytorch_lightning.Trainer`` arguments of ``cfg.trainer`` (null values and horesnet's own keys left out)."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    return {k: v for k, v in trainer.items() if v is not None and k not in OWN_TRAINER_KEYS}


def model_from_config(cfg: DictConfig):
    return build_model(**model_kwargs(cfg))


def plain(value):
    """An OmegaConf list or dict as a plain Python one (None and scalars unchanged)."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
