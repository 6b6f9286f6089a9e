"""A tiny reader for Weights & Biases offline run files (``offline-run-*/run-*.wandb``), for the tests.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, a 2-byte magic, a 1-byte version), then 32 KiB
blocks of records, each ``crc32 (4 bytes) | length (2, little-endian) | type (1)`` followed by ``length`` bytes;
type FULL=1 holds a whole record, FIRST=2 / MIDDLE=3 / LAST=4 are the pieces of one spread over blocks. A block
tail shorter than a record header is zero padding. Each reassembled record is a protobuf
``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: str | Path) -> Iterator[bytes]:
    """The payload of every record in a ``.wandb`` file, in order."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {data[:7]!r})")
    pos, pieces = HEADER, None
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer: zero padding
            pos += left
            continue
        _crc, length, rtype = struct.unpack("<IHB", data[pos:pos + HEADER])
        if rtype == 0 and length == 0:  # pre-allocated zeros: skip to the next block
            pos += left
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if rtype == FULL:
            yield chunk
        elif rtype == FIRST:
            pieces = [chunk]
        elif rtype == MIDDLE and pieces is not None:
            pieces.append(chunk)
        elif rtype == LAST and pieces is not None:
            yield b"".join(pieces + [chunk])
            pieces = None
        else:
            raise ValueError(f"{path}: unexpected record type {rtype} at byte {pos}")


def records(path: str | Path):
    """Every record as a parsed ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    for raw in raw_records(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        yield rec


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(path: str | Path, wait_s: float = 30.0) -> dict:
    """``{"history": [row dicts], "summary": {...}, "config": {...}, "run": {id, project, group, name, job_type},
    "kinds": set of record kinds}``.

    ``path`` is a ``.wandb`` file or an ``offline-run-*`` folder holding one. W&B's service process may still be
    writing the file after ``finish()`` returned (seen on a loaded machine): the file is read again, for up to
    ``wait_s`` seconds, until it holds its ``run`` and ``exit`` records.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            out = _read_run(path)
            if {"run", "exit"} <= out["kinds"] or time.monotonic() > deadline:
                return out
        except ValueError:  # a record still being written
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _read_run(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.wandb"))
        if len(files) != 1:
            raise ValueError(f"{path} holds {len(files)} .wandb files, expected 1")
        path = files[0]
    out = {"history": [], "summary": {}, "config": {}, "kinds": set(), "run": {}}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        out["kinds"].add(kind)
        if kind == "history":
            out["history"].append({_key(it): json.loads(it.value_json) for it in rec.history.item})
        elif kind == "summary":
            for it in rec.summary.update:
                out["summary"][_key(it)] = json.loads(it.value_json)
        elif kind == "config":
            for it in rec.config.update:
                out["config"][_key(it)] = json.loads(it.value_json)
        elif kind == "run":
            out["run"] = {"id": rec.run.run_id, "project": rec.run.project, "group": rec.run.run_group,
                          "name": rec.run.display_name, "job_type": rec.run.job_type}
            for it in rec.run.config.update:
                out["config"][_key(it)] = json.loads(it.value_json)
    return out
