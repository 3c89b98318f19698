"""Numba kernels: the stack machine for expression trees and the CPPN node evaluator.

Both kernels split the work into tasks of one genome times one tile of ``TILE`` pixels
(consecutive in row-major order) and run the tasks in parallel (``prange``). Inside a task,
instructions (or nodes) are the outer loop and the tile's pixels the inner loop, so every
instruction is one vectorisable loop over whole-tile "registers". Scratch memory is one
stack (or node table) of tiles per task, whatever the image size.

The math mirrors :mod:`evoemotion.render.reference` operation for operation, in float32
with the polynomial approximations of :mod:`evoemotion.render.approx`; keep them in step.
Only numpy, numba and the constant tables of ``approx``/``ops`` are imported here. Kernels
are compiled with ``cache=True``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from evoemotion.render.approx import (
    ATAN_C3,
    ATAN_C5,
    ATAN_C7,
    ATAN_C9,
    ATAN_C11,
    ATAN_C13,
    ATAN_C15,
    BYTE_MAX,
    DIV_EPS,
    EXP_C2,
    EXP_C3,
    EXP_C4,
    EXP_C5,
    EXP_C6,
    EXP_HI,
    EXP_LO,
    FIVE,
    FLOAT_BIAS,
    FLOAT_MAX,
    FOUR,
    GAUSS_LIMIT,
    HALF,
    HALF_PI,
    HASH_A,
    HASH_B,
    HASH_C,
    HASH_D,
    HASH_MASK,
    INV_PI,
    LN2,
    LN2_HI,
    LN2_LO,
    LOG2E,
    LOG_C3,
    LOG_C5,
    LOG_C7,
    LOG_C9,
    LOG_EPS,
    MANTISSA_BITS,
    MANTISSA_MASK,
    NOISE_FREQ,
    NOISE_LIMIT,
    NOISE_UNIT,
    ONE,
    ONE_BITS,
    PI,
    PI_HI,
    PI_LO,
    QUARTER_PI,
    SIGMOID_LIMIT,
    SIN_C3,
    SIN_C5,
    SIN_C7,
    SIN_C9,
    SIX,
    SQRT2,
    TAN_PI_8,
    TANH_LIMIT,
    THREE,
    TRIG_LIMIT,
    TWO,
    ZERO,
)
from evoemotion.render.ops import (
    ACTIVATION_CODES,
    FIRST_BINARY,
    FIRST_TERNARY,
    FIRST_UNARY,
    FUNCTIONS,
    INPUT_CODES,
    OP_ANGLE,
    OP_CONST,
    OP_R,
)

# IEEE division (x / 0 -> inf, as in numpy) instead of Python's ZeroDivisionError check,
# which would block vectorisation.
_jit = njit(cache=True, error_model="numpy")
_jit_parallel = njit(cache=True, error_model="numpy", parallel=True)
# Scalar math is inlined into the pixel loops at Numba IR level, so LLVM sees whole loops.
_inline = njit(error_model="numpy", inline="always")

#: Pixels per task: the length of one vector register.
TILE = 256

# Opcodes and activation codes as plain ints (Numba freezes them as constants).
_R, _ANGLE, _CONST = OP_R, OP_ANGLE, OP_CONST
_NEG, _ABS, _SIN, _COS, _TANH, _SQRT, _LOG = (
    FUNCTIONS[f][0] for f in ("neg", "abs", "sin", "cos", "tanh", "sqrt", "log")
)
_ADD, _SUB, _MUL, _DIV, _MOD, _MIN, _MAX, _ATAN2, _NOISE = (
    FUNCTIONS[f][0] for f in ("add", "sub", "mul", "div", "mod", "min", "max", "atan2", "noise")
)
_IFPOS, _LERP = FUNCTIONS["ifpos"][0], FUNCTIONS["lerp"][0]
# "identity" needs no code: ``_activate`` leaves such nodes as they are.
_ASIN, _ACOS, _GAUSS, _SIGMOID, _ATANH, _AABS = (
    ACTIVATION_CODES[a] for a in ("sin", "cos", "gauss", "sigmoid", "tanh", "abs")
)
_BIAS = INPUT_CODES["bias"]


# ----------------------------------------------------------------------------- fast math


@_inline
def clamp(x, lo, hi):
    """Clamp to [lo, hi]; NaN becomes ``lo``."""
    x = x if x > lo else lo
    return x if x < hi else hi


@_inline
def _sin_reduced(r):
    r2 = r * r
    return r + r * r2 * (SIN_C3 + r2 * (SIN_C5 + r2 * (SIN_C7 + r2 * SIN_C9)))


@_inline
def fsin(x):
    """Fast float32 sine."""
    x = clamp(x, -TRIG_LIMIT, TRIG_LIMIT)
    q = np.floor(x * INV_PI + HALF)
    s = _sin_reduced((x - q * PI_HI) - q * PI_LO)
    odd = q - TWO * np.floor(q * HALF)
    return s - TWO * odd * s


@_inline
def fcos(x):
    """Fast float32 cosine."""
    x = clamp(x, -TRIG_LIMIT, TRIG_LIMIT)
    k = np.floor(x * INV_PI)
    q = k + HALF
    s = _sin_reduced((x - q * PI_HI) - q * PI_LO)
    odd = k - TWO * np.floor(k * HALF)
    return (TWO * odd - ONE) * s


@_inline
def fexp(x):
    """Fast float32 exponential."""
    x = clamp(x, EXP_LO, EXP_HI)
    n = np.floor(x * LOG2E + HALF)
    r = (x - n * LN2_HI) - n * LN2_LO
    p = ONE + r * (ONE + r * (EXP_C2 + r * (EXP_C3 + r * (EXP_C4 + r * (EXP_C5 + r * EXP_C6)))))
    scale = np.int32((np.int32(n) + FLOAT_BIAS) << MANTISSA_BITS).view(np.float32)
    return p * scale


@_inline
def ftanh(x):
    """Fast float32 hyperbolic tangent."""
    e = fexp(TWO * clamp(x, -TANH_LIMIT, TANH_LIMIT))
    return (e - ONE) / (e + ONE)


@_inline
def fsigmoid(x):
    """Fast float32 logistic function."""
    return ONE / (ONE + fexp(-clamp(x, -SIGMOID_LIMIT, SIGMOID_LIMIT)))


@_inline
def flog_abs(x):
    """Fast float32 ``log(max(|x|, 1e-6))``."""
    a = clamp(abs(x), LOG_EPS, FLOAT_MAX)
    bits = np.float32(a).view(np.int32)
    e = (bits >> MANTISSA_BITS) - FLOAT_BIAS
    m = np.int32((bits & MANTISSA_MASK) | ONE_BITS).view(np.float32)
    if m > SQRT2:
        m = m * HALF
        e = e + 1
    f = (m - ONE) / (m + ONE)
    f2 = f * f
    poly = ONE + f2 * (LOG_C3 + f2 * (LOG_C5 + f2 * (LOG_C7 + f2 * LOG_C9)))
    return np.float32(e) * LN2 + TWO * f * poly


@_inline
def fatan2pi(y, x):
    """Fast float32 ``atan2(y, x) / pi``."""
    ax = abs(x)
    ay = abs(y)
    swap = ay > ax
    big_side = ay if swap else ax
    small_side = ax if swap else ay
    t = small_side / (big_side if big_side > ZERO else ONE)
    far = t > TAN_PI_8
    u = (t - ONE) / (t + ONE) if far else t
    u2 = u * u
    a = u + u * u2 * (
        ATAN_C3
        + u2
        * (
            ATAN_C5
            + u2 * (ATAN_C7 + u2 * (ATAN_C9 + u2 * (ATAN_C11 + u2 * (ATAN_C13 + u2 * ATAN_C15))))
        )
    )
    if far:
        a = a + QUARTER_PI
    if swap:
        a = HALF_PI - a
    if x < ZERO:
        a = PI - a
    if y < ZERO:
        a = -a
    return a * INV_PI


@_inline
def _hash(i, j):
    h = (i * HASH_A + j * HASH_B) & HASH_MASK
    h = ((h ^ (h >> 15)) * HASH_C) & HASH_MASK
    h = ((h ^ (h >> 13)) * HASH_D) & HASH_MASK
    h = h ^ (h >> 16)
    return np.float32(h & 0xFFFFFF) * NOISE_UNIT - ONE


@_inline
def fnoise(a, b):
    """Smooth 2-D value noise in [-1, 1]."""
    u = clamp(a * NOISE_FREQ, -NOISE_LIMIT, NOISE_LIMIT)
    v = clamp(b * NOISE_FREQ, -NOISE_LIMIT, NOISE_LIMIT)
    fu = np.floor(u)
    fv = np.floor(v)
    du = u - fu
    dv = v - fv
    su = du * du * (THREE - TWO * du)
    sv = dv * dv * (THREE - TWO * dv)
    i = np.int64(fu)
    j = np.int64(fv)
    h00 = _hash(i, j)
    h10 = _hash(i + 1, j)
    h01 = _hash(i, j + 1)
    h11 = _hash(i + 1, j + 1)
    top = h00 + (h10 - h00) * su
    bottom = h01 + (h11 - h01) * su
    return top + (bottom - top) * sv


@_inline
def _safe_divisor(b):
    return b if abs(b) > DIV_EPS else ONE


# ------------------------------------------------------------------ tiles and colour


@_jit
def _fill_coords(xs, ys, p0, m, need_r, need_angle, coords):
    """Write x, y (and r, angle, bias) of pixels ``p0..p0+m`` (row-major) into ``coords``."""
    width = xs.shape[0]
    row = p0 // width
    col = p0 - row * width
    for p in range(m):
        coords[0, p] = xs[col]
        coords[1, p] = ys[row]
        col += 1
        if col == width:
            col = 0
            row += 1
    if need_r:
        for p in range(m):
            x = coords[0, p]
            y = coords[1, p]
            coords[2, p] = np.sqrt(x * x + y * y)
    if need_angle:
        for p in range(m):
            coords[3, p] = fatan2pi(coords[1, p], coords[0, p])
    for p in range(m):
        coords[_BIAS, p] = ONE


@_inline
def _unit(v, lo, scale):
    v = v if abs(v) <= FLOAT_MAX else ZERO
    return clamp((v - lo) * scale, ZERO, ONE)


@_inline
def _hsv_channel(n, h6, s, v):
    k = n + h6
    k = k if k < SIX else k - SIX
    m = k if k < FOUR - k else FOUR - k
    return v - v * s * clamp(m, ZERO, ONE)


@_jit
def _write_pixels(c0, c1, c2, m, lo, scale, hsv, out, p0):
    """Map channel tiles to uint8 RGB pixels ``out[p0:p0+m]``."""
    for p in range(m):
        t0 = _unit(c0[p], lo, scale)
        t1 = _unit(c1[p], lo, scale)
        t2 = _unit(c2[p], lo, scale)
        if hsv:
            h6 = t0 * SIX
            t0, t1, t2 = (
                _hsv_channel(FIVE, h6, t1, t2),
                _hsv_channel(THREE, h6, t1, t2),
                _hsv_channel(ONE, h6, t1, t2),
            )
        out[p0 + p, 0] = np.uint8(t0 * BYTE_MAX + HALF)
        out[p0 + p, 1] = np.uint8(t1 * BYTE_MAX + HALF)
        out[p0 + p, 2] = np.uint8(t2 * BYTE_MAX + HALF)


# ------------------------------------------------------------------------ tree kernel


@_jit
def _push(op, const, coords, dst, m):
    if op == _CONST:
        for p in range(m):
            dst[p] = const
    else:
        for p in range(m):
            dst[p] = coords[op, p]


@_jit
def _unary(op, a, m):
    if op == _NEG:
        for p in range(m):
            a[p] = -a[p]
    elif op == _ABS:
        for p in range(m):
            a[p] = abs(a[p])
    elif op == _SIN:
        for p in range(m):
            a[p] = fsin(a[p])
    elif op == _COS:
        for p in range(m):
            a[p] = fcos(a[p])
    elif op == _TANH:
        for p in range(m):
            a[p] = ftanh(a[p])
    elif op == _SQRT:
        for p in range(m):
            a[p] = np.sqrt(abs(a[p]))
    elif op == _LOG:
        for p in range(m):
            a[p] = flog_abs(a[p])


@_jit
def _binary(op, a, b, m):
    """``b[:] = op(a, b)``: ``a`` is the first argument (stack top)."""
    if op == _ADD:
        for p in range(m):
            b[p] = a[p] + b[p]
    elif op == _SUB:
        for p in range(m):
            b[p] = a[p] - b[p]
    elif op == _MUL:
        for p in range(m):
            b[p] = a[p] * b[p]
    elif op == _DIV:
        for p in range(m):
            b[p] = a[p] / _safe_divisor(b[p])
    elif op == _MOD:
        for p in range(m):
            d = _safe_divisor(b[p])
            b[p] = a[p] - d * np.floor(a[p] / d)
    elif op == _MIN:
        for p in range(m):
            b[p] = a[p] if a[p] < b[p] else b[p]
    elif op == _MAX:
        for p in range(m):
            b[p] = a[p] if a[p] > b[p] else b[p]
    elif op == _ATAN2:
        for p in range(m):
            b[p] = fatan2pi(a[p], b[p])
    elif op == _NOISE:
        for p in range(m):
            b[p] = fnoise(a[p], b[p])


@_jit
def _ternary(op, a, b, c, m):
    """``c[:] = op(a, b, c)``: ``a`` is the first argument (stack top)."""
    if op == _IFPOS:
        for p in range(m):
            c[p] = b[p] if a[p] > ZERO else c[p]
    elif op == _LERP:
        for p in range(m):
            s = clamp((c[p] + ONE) * HALF, ZERO, ONE)
            c[p] = a[p] + (b[p] - a[p]) * s


@_jit_parallel
def render_trees(
    ops, args, lengths, depth, xs, ys, p_start, p_end, need_r, need_angle, lo, scale, hsv, out
):
    """Run postfix programs over pixels ``p_start..p_end`` and write uint8 RGB.

    Args:
        ops: int32 (N, L) opcodes; args: float32 (N, L) constants; lengths: int32 (N,).
        depth: stack slots needed.
        xs: float32 (W,) column coordinates; ys: float32 (H,) row coordinates.
        p_start, p_end: the band of row-major pixel indices to render.
        need_r, need_angle: whether to compute those coordinates.
        lo, scale: float32 output mapping ``(v - lo) * scale`` to [0, 1].
        hsv: whether the channels are hue, saturation, value.
        out: uint8 (N, H * W, 3) output, written in place.
    """
    n = ops.shape[0]
    n_tiles = (p_end - p_start + TILE - 1) // TILE
    for task in prange(n * n_tiles):
        g = task // n_tiles
        p0 = p_start + (task - g * n_tiles) * TILE
        m = min(TILE, p_end - p0)
        coords = np.empty((5, TILE), np.float32)
        stack = np.empty((depth, TILE), np.float32)
        _fill_coords(xs, ys, p0, m, need_r, need_angle, coords)
        sp = 0
        for i in range(lengths[g]):
            op = ops[g, i]
            if op < FIRST_UNARY:
                _push(op, args[g, i], coords, stack[sp], m)
                sp += 1
            elif op < FIRST_BINARY:
                _unary(op, stack[sp - 1], m)
            elif op < FIRST_TERNARY:
                _binary(op, stack[sp - 1], stack[sp - 2], m)
                sp -= 1
            else:
                _ternary(op, stack[sp - 1], stack[sp - 2], stack[sp - 3], m)
                sp -= 2
        _write_pixels(stack[0], stack[1], stack[2], m, lo, scale, hsv, out[g], p0)


# ------------------------------------------------------------------------ CPPN kernel


@_jit
def _activate(code, z, m):
    if code == _ASIN:
        for p in range(m):
            z[p] = fsin(z[p])
    elif code == _ACOS:
        for p in range(m):
            z[p] = fcos(z[p])
    elif code == _GAUSS:
        for p in range(m):
            z[p] = fexp(-min(z[p] * z[p], GAUSS_LIMIT))
    elif code == _SIGMOID:
        for p in range(m):
            z[p] = fsigmoid(z[p])
    elif code == _ATANH:
        for p in range(m):
            z[p] = ftanh(z[p])
    elif code == _AABS:
        for p in range(m):
            z[p] = abs(z[p])


@_jit_parallel
def render_graphs(
    inputs, act, ptr, src, weight, n_slots, outputs, xs, ys, p_start, p_end, lo, scale, hsv, out
):
    """Run CPPN node programs over pixels ``p_start..p_end`` and write uint8 RGB.

    Args:
        inputs: int32 (n_in,) input codes of the first slots.
        act, ptr, src, weight, n_slots, outputs: the arrays of a ``GraphProgram``.
        xs, ys, p_start, p_end, lo, scale, hsv, out: as for :func:`render_trees`.
    """
    n = act.shape[0]
    n_in = inputs.shape[0]
    n_tiles = (p_end - p_start + TILE - 1) // TILE
    need_r = False
    need_angle = False
    for k in range(n_in):
        need_r = need_r or inputs[k] == _R
        need_angle = need_angle or inputs[k] == _ANGLE
    for task in prange(n * n_tiles):
        g = task // n_tiles
        p0 = p_start + (task - g * n_tiles) * TILE
        m = min(TILE, p_end - p0)
        coords = np.empty((5, TILE), np.float32)
        values = np.empty((act.shape[1], TILE), np.float32)
        _fill_coords(xs, ys, p0, m, need_r, need_angle, coords)
        for k in range(n_in):
            values[k, :m] = coords[inputs[k], :m]
        for k in range(n_in, n_slots[g]):
            z = values[k]
            first = ptr[g, k]
            last = ptr[g, k + 1]
            if first == last:
                z[:m] = ZERO
            else:
                s = values[src[g, first]]
                w = weight[g, first]
                for p in range(m):
                    z[p] = w * s[p]
            # Four edges per pass over the tile (in order, so the sum rounds as one edge
            # at a time would): a quarter of the loads and stores of the running sum.
            e = first + 1
            while e + 4 <= last:
                s0, s1 = values[src[g, e]], values[src[g, e + 1]]
                s2, s3 = values[src[g, e + 2]], values[src[g, e + 3]]
                w0, w1, w2, w3 = weight[g, e], weight[g, e + 1], weight[g, e + 2], weight[g, e + 3]
                for p in range(m):
                    z[p] = (((z[p] + w0 * s0[p]) + w1 * s1[p]) + w2 * s2[p]) + w3 * s3[p]
                e += 4
            for rest in range(e, last):
                s = values[src[g, rest]]
                w = weight[g, rest]
                for p in range(m):
                    z[p] = z[p] + w * s[p]
            _activate(act[g, k], z, m)
        o = outputs[g]
        _write_pixels(values[o[0]], values[o[1]], values[o[2]], m, lo, scale, hsv, out[g], p0)
