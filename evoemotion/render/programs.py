"""Compiled program batches: the padded arrays a genotype hands to the Numba kernels.

A genotype's ``compile(genomes)`` returns one of these; :func:`evoemotion.render.render`
picks the kernel by the program's type. Two forms cover every genotype so far:

- :class:`TreeProgram`: postfix stack programs (expression trees). The three channel trees
  of a genome run one after the other and leave their values on the stack bottom.
- :class:`GraphProgram`: node programs (CPPNs). Slots ``0..n_inputs-1`` hold the inputs;
  each later slot is a node whose value is its activation of the weighted sum of earlier
  slots (topological order); three slots are the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evoemotion.render.ops import INPUT_CODES, OP_ANGLE, OP_R


@dataclass(frozen=True)
class TreeProgram:
    """A batch of postfix programs.

    Attributes:
        ops: int32 (N, L) opcodes, padded with 0 past each program's length.
        args: float32 (N, L) constants of ``OP_CONST`` instructions.
        lengths: int32 (N,) instructions per program.
        depth: stack slots the deepest program needs.
    """

    ops: np.ndarray
    args: np.ndarray
    lengths: np.ndarray
    depth: int

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def pack(cls, programs: Sequence[tuple[Sequence[int], Sequence[float], int]]) -> TreeProgram:
        """Pad ``(opcodes, constants, stack depth)`` per genome into one batch."""
        n = len(programs)
        width = max([len(ops) for ops, _, _ in programs], default=1)
        ops = np.zeros((n, width), np.int32)
        args = np.zeros((n, width), np.float32)
        lengths = np.zeros(n, np.int32)
        for i, (codes, consts, _) in enumerate(programs):
            ops[i, : len(codes)] = codes
            args[i, : len(consts)] = consts
            lengths[i] = len(codes)
        depth = max([d for _, _, d in programs], default=3)
        return cls(ops=ops, args=args, lengths=lengths, depth=max(depth, 3))

    def uses(self, opcode: int) -> bool:
        """Whether any program reads the terminal ``opcode``."""
        mask = np.arange(self.ops.shape[1]) < self.lengths[:, None]
        return bool(np.any((self.ops == opcode) & mask))

    @property
    def needs_r(self) -> bool:
        """Whether any program reads ``r``."""
        return self.uses(OP_R)

    @property
    def needs_angle(self) -> bool:
        """Whether any program reads ``angle``."""
        return self.uses(OP_ANGLE)


@dataclass(frozen=True)
class GraphSpec:
    """One genome's node program before padding.

    Attributes:
        activations: activation code of each computed node, in evaluation order.
        incoming: per computed node, its ``(source slot, weight)`` pairs.
        outputs: the three slots read as colour channels.
    """

    activations: Sequence[int]
    incoming: Sequence[Sequence[tuple[int, float]]]
    outputs: Sequence[int]


@dataclass(frozen=True)
class GraphProgram:
    """A batch of node programs in compressed-row form.

    Attributes:
        inputs: int32 (n_inputs,) input codes (see :data:`~evoemotion.render.ops.INPUTS`).
        act: int32 (N, M) activation code per slot (input slots unused).
        ptr: int32 (N, M + 1) slot ``k``'s incoming edges are ``ptr[k]:ptr[k + 1]``.
        src: int32 (N, E) source slot per edge.
        weight: float32 (N, E) weight per edge.
        n_slots: int32 (N,) slots used per genome.
        outputs: int32 (N, 3) output slots.
    """

    inputs: np.ndarray
    act: np.ndarray
    ptr: np.ndarray
    src: np.ndarray
    weight: np.ndarray
    n_slots: np.ndarray
    outputs: np.ndarray

    def __len__(self) -> int:
        return len(self.n_slots)

    @classmethod
    def pack(cls, inputs: Sequence[str], specs: Sequence[GraphSpec]) -> GraphProgram:
        """Pad the node programs of a batch into arrays."""
        n_in = len(inputs)
        n = len(specs)
        slots = max([n_in + len(s.activations) for s in specs], default=n_in)
        edges = max([sum(len(inc) for inc in s.incoming) for s in specs], default=0)
        act = np.zeros((n, slots), np.int32)
        ptr = np.zeros((n, slots + 1), np.int32)
        src = np.zeros((n, max(edges, 1)), np.int32)
        weight = np.zeros((n, max(edges, 1)), np.float32)
        n_slots = np.zeros(n, np.int32)
        outputs = np.zeros((n, 3), np.int32)
        for i, spec in enumerate(specs):
            k = n_in + len(spec.activations)
            act[i, n_in:k] = spec.activations
            counts = [len(inc) for inc in spec.incoming]
            ptr[i, n_in + 1 : k + 1] = np.cumsum(counts, dtype=np.int32)
            ptr[i, k + 1 :] = ptr[i, k]
            flat = [edge for inc in spec.incoming for edge in inc]
            src[i, : len(flat)] = [s for s, _ in flat]
            weight[i, : len(flat)] = [w for _, w in flat]
            n_slots[i] = k
            outputs[i] = spec.outputs
        codes = np.array([INPUT_CODES[name] for name in inputs], np.int32)
        return cls(codes, act, ptr, src, weight, n_slots, outputs)
