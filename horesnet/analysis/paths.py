"""Paths of the unraveled network (Veit et al. 2016, Sec. 3 and 4.2), for every scheme.

A block's paths are the skip, or a chain of increments i1 < ... < im with A[i(t+1), i(t)] != 0 that ends at an
increment with b[im] != 0; a nested unit contributes the chains of its inner block. A block's path polynomial
P(z) counts its paths by length (units on the path); the network's is the product over blocks. Euler blocks give
1 + z, so an Euler network gives binomial coefficients; a classic RK4 block gives 1 + 4z + 3z^2 + 2z^3 + z^4.
``weighted=True`` weights a path by the product of its coefficients (h*A along the chain, h*b at its end).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from ..errors import ConfigError
from ..nn import NestedUnit, ODEBlock, SchemeBlock
from ..nn.multistep import MultistepBlock


def poly_mul(p: list, q: list) -> list:
    out = [0] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        if a:
            for j, b in enumerate(q):
                out[i + j] += a * b
    return out


def poly_add(p: list, q: list) -> list:
    return [a + b for a, b in itertools.zip_longest(p, q, fillvalue=0)]


def block_polynomial(block: SchemeBlock, weighted: bool = False, skip: bool | None = None) -> list:
    """Path polynomial of one scheme block (ascending coefficients); ``skip=False`` drops the skip path."""
    h = float(block.step.detach() if block.learn_step else block.step) if weighted else 1.0
    A, b = block.scheme.A, block.scheme.b
    chains = []  # chains[i]: polynomial of chains that end at increment i (None: switched off)
    for i, active in enumerate(block.active):
        if not active:
            chains.append(None)
            continue
        into = [1]  # entering from the block input
        for j in range(i):
            if A[i][j] != 0 and chains[j] is not None:
                into = poly_add(into, [(h * A[i][j] if weighted else 1) * c for c in chains[j]])
        unit = block.unit(i)
        inner = block_polynomial(unit.block, weighted, skip=False) if isinstance(unit, NestedUnit) else [0, 1]
        chains.append(poly_mul(inner, into))
    total = [1 if (block.shortcut is not None if skip is None else skip) else 0]
    for i, c in enumerate(chains):
        if c is not None and b[i] != 0:
            total = poly_add(total, [(h * b[i] if weighted else 1) * x for x in c])
    return total


def _scheme_blocks(model):
    for address, block, _ in model.blocks():
        if isinstance(block, ODEBlock):
            raise ConfigError(f"path lengths are defined for scheme blocks; {address} is a continuous ODE block "
                              "(block='ode') whose paths are not countable.")
        yield address, block


def multistep_polynomial(block: MultistepBlock, weighted: bool = False) -> list:
    """Path polynomial of a multistep block: its paths run from the stage's first state x_0 to x_T through the
    carried history, each step n joining the paths into x_(n-j) (an edge alpha_j, no unit) and those through unit
    n-j (an edge h*beta_j, one unit): P_0 = 1, P_(n+1) = sum_j alpha_j P_(n-j) + z sum_j h beta_j P_(n-j), with
    every non-zero coefficient 1 unless ``weighted`` (per-channel coefficients: their mean); a switched-off unit has
    no paths. Momentum's P_T counts the skip path once and grows with the history, unlike Euler's (1 + z)^T."""
    active = block.active
    polys = [[1]]
    for n, (a, c) in enumerate(block.coefficients.numeric_steps()):
        total = [0]
        for coefficients, units in ((a, 0), (c, 1)):  # alpha_j: no unit on the edge; h*beta_j: one unit
            for j in range(coefficients.shape[0]):
                if coefficients[j].any() and (not units or active[n - j]):
                    w = float(coefficients[j].mean()) if weighted else 1
                    total = poly_add(total, [0] * units + [w * x for x in polys[n - j]])
        polys.append(total)
    return polys[-1]


def path_lengths(model, weighted: bool = False) -> list:
    """Number (or total weight) of paths of each length 0, 1, 2, ... (units on the path) of the whole network."""
    total = [1]
    for _, block in _scheme_blocks(model):
        polynomial = multistep_polynomial if isinstance(block, MultistepBlock) else block_polynomial
        total = poly_mul(total, polynomial(block, weighted))
    while len(total) > 1 and total[-1] == 0:
        total.pop()
    return total


# ---------------------------------------------------------------- enumerating and sampling single paths
@dataclass(frozen=True)
class BlockPath:
    """One path through a block: its length and the gradient route it needs, per (possibly inner) block."""

    length: int
    routes: tuple[tuple[SchemeBlock, tuple], ...]  # (block, edges) pairs


def block_paths(block: SchemeBlock, skip: bool | None = None) -> list[BlockPath]:
    """Every path through ``block`` (skip first), with the route edges that select it."""
    A, b = block.scheme.A, block.scheme.b
    ends: list[list[BlockPath]] = []  # ends[i]: chains ending at increment i (edges up to and incl. unit i)
    for i, active in enumerate(block.active):
        if not active:
            ends.append([])
            continue
        unit = block.unit(i)
        inner = block_paths(unit.block, skip=False) if isinstance(unit, NestedUnit) else [BlockPath(1, ())]
        starts = [BlockPath(0, ((block, (("x", i),)),))]
        for j in range(i):
            if A[i][j] != 0:
                starts += [BlockPath(p.length, _add_edge(p.routes, block, (j, i))) for p in ends[j]]
        ends.append([BlockPath(s.length + u.length, s.routes + u.routes) for s in starts for u in inner])
    paths = [BlockPath(0, ((block, (("x", "y"),)),))] if (block.shortcut is not None if skip is None else skip) else []
    for i, chain in enumerate(ends):
        if b[i] != 0:
            paths += [BlockPath(p.length, _add_edge(p.routes, block, (i, "y"))) for p in chain]
    return paths


def _add_edge(routes, block, edge):
    out, done = [], False
    for blk, edges in routes:
        if blk is block and not done:
            edges, done = edges + (edge,), True
        out.append((blk, edges))
    return tuple(out) if done else tuple(out) + ((block, (edge,)),)


class PathSampler:
    """Uniform sampling of single paths of a given length through the whole network."""

    def __init__(self, model):
        blocks = list(_scheme_blocks(model))
        multistep = [a for a, blk in blocks if isinstance(blk, MultistepBlock)]
        if multistep:
            raise ConfigError(multistep_reason(multistep))
        self.by_length = []  # per block: {length: its paths of that length}
        for _, blk in blocks:
            groups: dict[int, list[BlockPath]] = {}
            for p in block_paths(blk):
                groups.setdefault(p.length, []).append(p)
            self.by_length.append(groups)
        self.suffix = [[1]]  # suffix[b][l]: number of ways blocks b.. can make length l
        for groups in reversed(self.by_length):
            poly = [len(groups.get(length, ())) for length in range(max(groups) + 1)]
            self.suffix.insert(0, poly_mul(poly, self.suffix[0]))
        self.counts = self.suffix[0]

    def sample(self, length: int, rng: random.Random) -> dict:
        """A uniformly drawn path of ``length``: ``{block: {edge: True}}`` routes for every scheme block."""
        if not 0 <= length < len(self.counts) or self.counts[length] == 0:
            raise ConfigError(f"the network has no path of length {length}.")
        routes, left = {}, length
        for b, groups in enumerate(self.by_length):
            rest = self.suffix[b + 1]
            options = [(l, len(ps) * rest[left - l]) for l, ps in groups.items()
                       if 0 <= left - l < len(rest) and rest[left - l]]
            pick = rng.choices([l for l, _ in options], weights=[n for _, n in options])[0]
            path = rng.choice(groups[pick])
            for blk, edges in path.routes:
                routes.setdefault(blk, set()).update(edges)
            left -= pick
        return routes


def multistep_reason(addresses: list[str]) -> str:
    """Why single paths are not sampled through multistep blocks (the effective-path study skips them)."""
    return (f"single paths are sampled through Runge-Kutta blocks; the multistep blocks at {', '.join(addresses)} "
            "join paths through their carried history, which the gradient routing does not cover (study=paths gives "
            "their exact path-length distribution)")
