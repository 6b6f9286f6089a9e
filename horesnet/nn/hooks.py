"""Block hooks: the one interface through which lesions, gradient routing and drop-path change what flows through
a scheme block, from outside the block (docs/design.md, "Block hooks").

A :class:`~horesnet.nn.SchemeBlock` calls its ``hook`` (None: no hook) once per target before it combines that
target's inputs -- each increment ``i`` (0-based, before unit ``i`` runs) and then ``OUTPUT = "y"`` (the output):

    got = hook(block, target, base, k)

``base`` is the block input x for increment 0, the shortcut s_x otherwise (None in a plain block, and for ``"y"``
when the block serves as a nested unit); ``k`` lists the increments computed so far (None: not computed). The
hook returns the ``(base, k)`` to combine -- the same objects, or gated/masked ones -- or None to switch
increment ``target`` off (k_i = 0 everywhere it is used; its unit is not run).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

OUTPUT = "y"  # the target of the block's output, after the increments 0, 1, ..., s-1


class BlockHook:
    """Base class: passes everything through except the increments in ``off``, which it switches off.

    ``off`` is also what tools that reason about a block without running it (path counting) read.
    """

    off: frozenset[int] = frozenset()

    def __call__(self, block, target, base, k):
        return None if target in self.off else (base, k)


class SwitchOff(BlockHook):
    """Switch off the increments ``off`` (0-based): k_i = 0 and unit i is not run (a lesion)."""

    def __init__(self, off):
        self.off = frozenset(off)

    def __repr__(self) -> str:
        return f"SwitchOff({sorted(self.off)})"


@contextmanager
def hooked(hooks: Mapping) -> Iterator[None]:
    """Give each block of ``hooks`` (``{block: hook or None}``) that hook for the duration of the ``with`` body,
    then restore the hooks they had, even on error."""
    previous = {block: block.hook for block in hooks}
    try:
        for block, hook in hooks.items():
            block.hook = hook
        yield
    finally:
        for block, hook in previous.items():
            block.hook = hook
