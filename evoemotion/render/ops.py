"""The vocabulary shared by genotypes, compilers and kernels: opcodes, activations, inputs.

Expression trees compile to postfix programs of the opcodes below; CPPNs compile to node
programs whose nodes carry an activation code. The numbers are part of the compiled program
format only (genome files store names, never codes).
"""

from __future__ import annotations

#: Coordinates a genome can read, in the order of their codes. ``x`` runs from -1 (left) to
#: 1 (right) across the width, ``y`` from 1 (top) to -1 (bottom) across the height, ``r`` is
#: the distance from the centre, ``angle`` is ``atan2(y, x) / pi`` in [-1, 1] and ``bias`` is
#: the constant 1 (CPPN inputs only).
INPUTS: tuple[str, ...] = ("x", "y", "r", "angle", "bias")
INPUT_CODES: dict[str, int] = {name: code for code, name in enumerate(INPUTS)}

# Tree opcodes: terminals first, then functions grouped by arity (the kernel tests ranges).
OP_X, OP_Y, OP_R, OP_ANGLE, OP_CONST = 0, 1, 2, 3, 4
FIRST_UNARY, FIRST_BINARY, FIRST_TERNARY = 10, 20, 40

#: Terminal opcodes by coordinate name.
TERMINAL_OPS: dict[str, int] = {"x": OP_X, "y": OP_Y, "r": OP_R, "angle": OP_ANGLE}

#: Tree functions: name -> (opcode, arity). Semantics (float32, see ``reference.py``):
#: ``div`` and ``mod`` treat a divisor with ``|b| <= 1e-3`` as 1; ``log`` is
#: ``log(max(|a|, 1e-6))``; ``sqrt`` is ``sqrt(|a|)``; ``atan2`` is ``atan2(a, b) / pi``;
#: ``noise`` is smooth value noise on a lattice of spacing 1/4 in [-1, 1]; ``ifpos`` is
#: ``b if a > 0 else c``; ``lerp`` blends ``a`` to ``b`` by ``t`` mapped from [-1, 1] to
#: [0, 1] and clamped.
FUNCTIONS: dict[str, tuple[int, int]] = {
    "neg": (10, 1),
    "abs": (11, 1),
    "sin": (12, 1),
    "cos": (13, 1),
    "tanh": (14, 1),
    "sqrt": (15, 1),
    "log": (16, 1),
    "add": (20, 2),
    "sub": (21, 2),
    "mul": (22, 2),
    "div": (23, 2),
    "mod": (24, 2),
    "min": (25, 2),
    "max": (26, 2),
    "atan2": (27, 2),
    "noise": (28, 2),
    "ifpos": (40, 3),
    "lerp": (41, 3),
}

#: CPPN node activations, in the order of their codes. ``gauss`` is ``exp(-x^2)`` and
#: ``sigmoid`` is ``1 / (1 + exp(-x))``.
ACTIVATIONS: tuple[str, ...] = ("identity", "sin", "cos", "gauss", "sigmoid", "tanh", "abs")
ACTIVATION_CODES: dict[str, int] = {name: code for code, name in enumerate(ACTIVATIONS)}

#: Output colour spaces: the three channels are (R, G, B) or (H, S, V).
COLOR_SPACES: tuple[str, ...] = ("rgb", "hsv")
