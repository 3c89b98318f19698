"""Plain-numpy evaluators: the definition of every operation, and the renderers' reference.

Each function here computes in float32 with the same steps as the Numba kernels, so the
fast renderer can be checked against this slow, readable one (``tests/test_render.py``) and
timed against it (``benchmarks/render.py``). Genotypes describe their genomes to these
evaluators (prefix token lists, dense layers, node graphs) through
:meth:`~evoemotion.genotypes.base.Genotype.reference_channels`.

Non-finite values: inside a program, operations follow IEEE float32 arithmetic as written
below (the clamps inside ``sin``, ``exp``, ``log`` and ``noise`` send NaN to a clamp bound);
a channel value that is NaN or +-inf at the output becomes 0 before the colour mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from evoemotion.render import approx as A
from evoemotion.render.ops import FUNCTIONS

if TYPE_CHECKING:
    from evoemotion.genotypes.base import Genotype

Array = np.ndarray


def clamp(x: Array, lo: np.float32, hi: np.float32) -> Array:
    """Clamp to [lo, hi]; NaN becomes ``lo``."""
    x = np.where(x > lo, x, lo)
    return np.where(x < hi, x, hi)


def _sin_reduced(r: Array) -> Array:
    r2 = r * r
    return r + r * r2 * (A.SIN_C3 + r2 * (A.SIN_C5 + r2 * (A.SIN_C7 + r2 * A.SIN_C9)))


def fsin(x: Array) -> Array:
    """Fast float32 sine (see :mod:`evoemotion.render.approx`)."""
    x = clamp(x, -A.TRIG_LIMIT, A.TRIG_LIMIT)
    q = np.floor(x * A.INV_PI + A.HALF)
    s = _sin_reduced((x - q * A.PI_HI) - q * A.PI_LO)
    odd = q - A.TWO * np.floor(q * A.HALF)
    return s - A.TWO * odd * s


def fcos(x: Array) -> Array:
    """Fast float32 cosine: ``cos(x) = -(-1)**k sin(x - (k + 1/2) pi)``."""
    x = clamp(x, -A.TRIG_LIMIT, A.TRIG_LIMIT)
    k = np.floor(x * A.INV_PI)
    q = k + A.HALF
    s = _sin_reduced((x - q * A.PI_HI) - q * A.PI_LO)
    odd = k - A.TWO * np.floor(k * A.HALF)
    return (A.TWO * odd - A.ONE) * s


def fexp(x: Array) -> Array:
    """Fast float32 exponential; arguments clamped to [-87, 88]."""
    x = clamp(x, A.EXP_LO, A.EXP_HI)
    n = np.floor(x * A.LOG2E + A.HALF)
    r = (x - n * A.LN2_HI) - n * A.LN2_LO
    p = A.ONE + r * (
        A.ONE + r * (A.EXP_C2 + r * (A.EXP_C3 + r * (A.EXP_C4 + r * (A.EXP_C5 + r * A.EXP_C6))))
    )
    scale = ((n.astype(np.int32) + A.FLOAT_BIAS) << A.MANTISSA_BITS).view(np.float32)
    return p * scale


def ftanh(x: Array) -> Array:
    """Fast float32 hyperbolic tangent, from :func:`fexp`."""
    e = fexp(A.TWO * clamp(x, -A.TANH_LIMIT, A.TANH_LIMIT))
    return (e - A.ONE) / (e + A.ONE)


def fsigmoid(x: Array) -> Array:
    """Fast float32 logistic function ``1 / (1 + exp(-x))``."""
    return A.ONE / (A.ONE + fexp(-clamp(x, -A.SIGMOID_LIMIT, A.SIGMOID_LIMIT)))


def fgauss(x: Array) -> Array:
    """Fast float32 Gaussian bump ``exp(-x^2)``, ``x^2`` clamped at ``GAUSS_LIMIT``."""
    return fexp(-np.minimum(x * x, A.GAUSS_LIMIT))


def flog_abs(x: Array) -> Array:
    """Fast float32 ``log(max(|x|, 1e-6))`` (NaN counts as 0)."""
    a = clamp(np.abs(x), A.LOG_EPS, A.FLOAT_MAX)
    bits = a.view(np.int32)
    e = (bits >> A.MANTISSA_BITS) - A.FLOAT_BIAS
    m = ((bits & A.MANTISSA_MASK) | A.ONE_BITS).view(np.float32)
    big = m > A.SQRT2
    m = np.where(big, m * A.HALF, m)
    e = np.where(big, e + 1, e)
    f = (m - A.ONE) / (m + A.ONE)
    f2 = f * f
    poly = A.ONE + f2 * (A.LOG_C3 + f2 * (A.LOG_C5 + f2 * (A.LOG_C7 + f2 * A.LOG_C9)))
    return e.astype(np.float32) * A.LN2 + A.TWO * f * poly


def fatan2pi(y: Array, x: Array) -> Array:
    """Fast float32 ``atan2(y, x) / pi`` in [-1, 1]; ``(0, 0)`` gives 0."""
    ax = np.abs(x)
    ay = np.abs(y)
    swap = ay > ax
    big_side = np.where(swap, ay, ax)
    small_side = np.where(swap, ax, ay)
    t = small_side / np.where(big_side > A.ZERO, big_side, A.ONE)
    far = t > A.TAN_PI_8
    u = np.where(far, (t - A.ONE) / (t + A.ONE), t)
    u2 = u * u
    a = u + u * u2 * (
        A.ATAN_C3
        + u2
        * (
            A.ATAN_C5
            + u2
            * (
                A.ATAN_C7
                + u2 * (A.ATAN_C9 + u2 * (A.ATAN_C11 + u2 * (A.ATAN_C13 + u2 * A.ATAN_C15)))
            )
        )
    )
    a = np.where(far, a + A.QUARTER_PI, a)
    a = np.where(swap, A.HALF_PI - a, a)
    a = np.where(x < A.ZERO, A.PI - a, a)
    a = np.where(y < A.ZERO, -a, a)
    return a * A.INV_PI


def _hash(i: Array, j: Array) -> Array:
    h = (i * A.HASH_A + j * A.HASH_B) & A.HASH_MASK
    h = ((h ^ (h >> 15)) * A.HASH_C) & A.HASH_MASK
    h = ((h ^ (h >> 13)) * A.HASH_D) & A.HASH_MASK
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float32) * A.NOISE_UNIT - A.ONE


def fnoise(a: Array, b: Array) -> Array:
    """Smooth 2-D value noise in [-1, 1] with lattice spacing ``1 / NOISE_FREQ``."""
    u = clamp(a * A.NOISE_FREQ, -A.NOISE_LIMIT, A.NOISE_LIMIT)
    v = clamp(b * A.NOISE_FREQ, -A.NOISE_LIMIT, A.NOISE_LIMIT)
    fu = np.floor(u)
    fv = np.floor(v)
    du = u - fu
    dv = v - fv
    su = du * du * (A.THREE - A.TWO * du)
    sv = dv * dv * (A.THREE - A.TWO * dv)
    i = fu.astype(np.int64)
    j = fv.astype(np.int64)
    h00 = _hash(i, j)
    h10 = _hash(i + 1, j)
    h01 = _hash(i, j + 1)
    h11 = _hash(i + 1, j + 1)
    top = h00 + (h10 - h00) * su
    bottom = h01 + (h11 - h01) * su
    return top + (bottom - top) * sv


def _safe_divisor(b: Array) -> Array:
    return np.where(np.abs(b) > A.DIV_EPS, b, A.ONE)


def _div(a: Array, b: Array) -> Array:
    return a / _safe_divisor(b)


def _mod(a: Array, b: Array) -> Array:
    d = _safe_divisor(b)
    return a - d * np.floor(a / d)


def _lerp(a: Array, b: Array, t: Array) -> Array:
    s = clamp((t + A.ONE) * A.HALF, A.ZERO, A.ONE)
    return a + (b - a) * s


#: numpy definition of every tree function, by name (arguments in tree order).
TREE_FUNCTIONS: dict[str, Callable[..., Array]] = {
    "neg": lambda a: -a,
    "abs": np.abs,
    "sin": fsin,
    "cos": fcos,
    "tanh": ftanh,
    "sqrt": lambda a: np.sqrt(np.abs(a)),
    "log": flog_abs,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": _div,
    "mod": _mod,
    "min": lambda a, b: np.where(a < b, a, b),
    "max": lambda a, b: np.where(a > b, a, b),
    "atan2": fatan2pi,
    "noise": fnoise,
    "ifpos": lambda a, b, c: np.where(a > A.ZERO, b, c),
    "lerp": _lerp,
}

#: numpy definition of every CPPN activation, indexed by activation code.
ACTIVATION_FUNCTIONS: tuple[Callable[[Array], Array], ...] = (
    lambda a: a,
    fsin,
    fcos,
    fgauss,
    fsigmoid,
    ftanh,
    np.abs,
)


def axis(n: int) -> Array:
    """Pixel-centre coordinates of ``n`` pixels spanning [-1, 1], as float32.

    Computed in float64 and rounded once, so the centre shared by two resolutions (pixel
    ``j`` of ``n`` and pixel ``3j + 1`` of ``3n``) gets the same float32 value.
    """
    return ((2.0 * np.arange(n) + 1.0) / n - 1.0).astype(np.float32)


def coordinates(height: int, width: int) -> dict[str, Array]:
    """Every input of :data:`~evoemotion.render.ops.INPUTS` as a float32 (H, W) array."""
    x, y = np.meshgrid(axis(width), -axis(height))
    return {
        "x": x,
        "y": y,
        "r": np.sqrt(x * x + y * y),
        "angle": fatan2pi(y, x),
        "bias": np.ones_like(x),
    }


def eval_prefix(tokens: Sequence[str | float], coords: dict[str, Array]) -> Array:
    """Evaluate one expression tree given in prefix order.

    Args:
        tokens: function names, coordinate names or constants (floats), in prefix order.
        coords: the arrays of :func:`coordinates`.

    Returns:
        The tree's float32 value at every pixel.
    """
    stack: list[Array] = []
    shape = coords["x"].shape
    with np.errstate(all="ignore"):
        for token in reversed(tokens):
            if isinstance(token, str) and token in TREE_FUNCTIONS:
                arity = FUNCTIONS[token][1]
                args = [stack.pop() for _ in range(arity)]
                stack.append(TREE_FUNCTIONS[token](*args).astype(np.float32, copy=False))
            elif isinstance(token, str):
                stack.append(coords[token])
            else:
                stack.append(np.full(shape, token, dtype=np.float32))
    (value,) = stack
    return value


def apply_activation(code: int, z: Array) -> Array:
    """Apply the activation with code ``code`` to ``z`` (float32)."""
    with np.errstate(all="ignore"):
        return ACTIVATION_FUNCTIONS[code](z).astype(np.float32, copy=False)


def eval_layers(
    inputs: Sequence[str], layers: Sequence[tuple[Array, Array]], coords: dict[str, Array]
) -> Array:
    """Evaluate a dense feed-forward CPPN with matrix products.

    Args:
        inputs: input names, in the order of the first weight matrix's columns.
        layers: ``(weights (out, in) float32, activation codes (out,))`` per layer.
        coords: the arrays of :func:`coordinates`.

    Returns:
        float32 array (n_outputs, H, W).
    """
    shape = coords["x"].shape
    h = np.stack([coords[name].ravel() for name in inputs], axis=1)
    for weights, codes in layers:
        z = h @ weights.T
        for code in np.unique(codes):
            cols = codes == code
            z[:, cols] = apply_activation(int(code), z[:, cols])
        h = z
    return h.T.reshape((-1, *shape))


def eval_graph(
    inputs: Sequence[str],
    nodes: Sequence[tuple[int, int, Sequence[tuple[int, float]]]],
    outputs: Sequence[int],
    coords: dict[str, Array],
) -> Array:
    """Evaluate a CPPN graph node by node.

    Args:
        inputs: input names; input ``i`` has node id ``i``.
        nodes: ``(node id, activation code, [(source id, weight), ...])`` in topological
            order; a node's value is its activation of the weighted sum of its sources.
        outputs: the node ids of the three output channels.
        coords: the arrays of :func:`coordinates`.

    Returns:
        float32 array (len(outputs), H, W).
    """
    shape = coords["x"].shape
    values: dict[int, Array] = {i: coords[name] for i, name in enumerate(inputs)}
    with np.errstate(all="ignore"):
        for node_id, code, incoming in nodes:
            total = np.zeros(shape, np.float32)
            for k, (src, weight) in enumerate(incoming):
                term = np.float32(weight) * values[src]
                total = term if k == 0 else total + term
            values[node_id] = apply_activation(code, total)
    return np.stack([values[i] for i in outputs])


def unit_interval(v: Array, lo: np.float32, scale: np.float32) -> Array:
    """Map channel values to [0, 1]: non-finite -> 0, then ``(v - lo) * scale``, clamped."""
    v = np.where(np.abs(v) <= A.FLOAT_MAX, v, A.ZERO)
    return clamp((v - lo) * scale, A.ZERO, A.ONE)


def _hsv_channel(n: np.float32, h6: Array, s: Array, v: Array) -> Array:
    k = n + h6
    k = np.where(k < A.SIX, k, k - A.SIX)
    m = np.where(k < A.FOUR - k, k, A.FOUR - k)
    return v - v * s * clamp(m, A.ZERO, A.ONE)


def to_uint8(channels: Array, color_space: str, output_range: Sequence[float]) -> Array:
    """Map float32 channels (3, H, W) to a uint8 RGB image (H, W, 3).

    Args:
        channels: the three channel values.
        color_space: ``"rgb"`` or ``"hsv"`` (channels are hue, saturation, value).
        output_range: channel values mapped to 0 and 1 (then to 0 and 255).

    Returns:
        uint8 array (H, W, 3).
    """
    lo, scale = color_scale(output_range)
    with np.errstate(all="ignore"):
        t = [unit_interval(c, lo, scale) for c in channels]
        if color_space == "hsv":
            h6 = t[0] * A.SIX
            t = [_hsv_channel(n, h6, t[1], t[2]) for n in (A.FIVE, A.THREE, A.ONE)]
        return np.stack([(c * A.BYTE_MAX + A.HALF).astype(np.uint8) for c in t], axis=-1)


def color_scale(output_range: Sequence[float]) -> tuple[np.float32, np.float32]:
    """The float32 ``(lo, 1 / (hi - lo))`` both renderers map channel values with."""
    lo, hi = output_range
    return np.float32(lo), np.float32(1.0 / (hi - lo))


def render_reference(
    genotype: Genotype, genomes: Sequence[object] | Array, size: int | tuple[int, int]
) -> Array:
    """Render genomes with the numpy evaluators (slow; for tests and benchmarks).

    Args:
        genotype: the genotype the genomes belong to.
        genomes: a sequence of genomes (or an (n, solution_dim) array for flat kinds).
        size: side length, or ``(height, width)``.

    Returns:
        uint8 array (N, H, W, 3), equal to :func:`evoemotion.render.render` within 1/255.
    """
    height, width = (size, size) if isinstance(size, int) else size
    coords = coordinates(height, width)
    config = genotype.config
    images = np.empty((len(genomes), height, width, 3), np.uint8)
    for i, genome in enumerate(genomes):
        channels = genotype.reference_channels(genome, coords)
        images[i] = to_uint8(channels, config.color_space, config.output_range)
    return images
