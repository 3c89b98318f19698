"""Constants of the fast float32 math that both renderers share.

Numba has no SVML here, so library ``sin``/``exp`` would be scalar calls that block
vectorisation. The kernels (``kernels.py``) and the numpy reference (``reference.py``)
instead evaluate the same polynomial approximations, step for step in float32, so the two
renderers agree bit for bit and differ from exact math only by the approximation error,
which ``tests/test_render.py`` measures (well below 1/255 of each function's range):

- ``sin``/``cos``: reduction by multiples of pi (Cody-Waite, two parts) to [-pi/2, pi/2],
  odd Taylor polynomial to degree 9; arguments are clamped to +-1e4 first (float32 holds
  no phase information beyond that).
- ``exp``: ``2**n * p(r)`` with ``r`` in [-ln2/2, ln2/2], Taylor to degree 6, ``2**n`` built
  from the exponent bits; arguments clamped to [-87, 88].
- ``gauss`` (``exp(-x^2)``): ``x^2`` clamped at :data:`GAUSS_LIMIT`, so that its tails stop
  at about 4e-18 instead of running into float32's subnormal range (below 1.2e-38), where
  every product with them takes a slow microcode path on x86 CPUs: a trained generator
  whose units saturate rendered 3x slower before this clamp.
- ``log``: exponent from the bits, mantissa centred on [sqrt(1/2), sqrt(2)], atanh series.
- ``atan``: octant reduction to [0, 1], then ``t -> (t - 1) / (t + 1)`` above tan(pi/8),
  odd Taylor polynomial to degree 15.
"""

from __future__ import annotations

import numpy as np

f32 = np.float32

ZERO = f32(0.0)
HALF = f32(0.5)
ONE = f32(1.0)
TWO = f32(2.0)
THREE = f32(3.0)
FOUR = f32(4.0)
SIX = f32(6.0)
FIVE = f32(5.0)
BYTE_MAX = f32(255.0)
FLOAT_MAX = f32(np.finfo(np.float32).max)

PI = f32(np.pi)
HALF_PI = f32(np.pi / 2)
QUARTER_PI = f32(np.pi / 4)
INV_PI = f32(1 / np.pi)
#: pi split so that ``q * PI_HI`` is exact for |q| < 2**15 (PI_HI has 8 significant bits).
PI_HI = f32(3.140625)
PI_LO = f32(np.pi - 3.140625)
TRIG_LIMIT = f32(1e4)
SIN_C3 = f32(-1 / 6)
SIN_C5 = f32(1 / 120)
SIN_C7 = f32(-1 / 5040)
SIN_C9 = f32(1 / 362880)

LOG2E = f32(1 / np.log(2))
#: ln 2 split so that ``n * LN2_HI`` is exact for |n| < 2**8.
LN2_HI = f32(0.693145751953125)
LN2_LO = f32(np.log(2) - 0.693145751953125)
EXP_LO = f32(-87.0)
EXP_HI = f32(88.0)
EXP_C2 = f32(1 / 2)
EXP_C3 = f32(1 / 6)
EXP_C4 = f32(1 / 24)
EXP_C5 = f32(1 / 120)
EXP_C6 = f32(1 / 720)
FLOAT_BIAS = 127
MANTISSA_BITS = 23

#: Arguments of ``tanh`` and ``sigmoid`` are clamped here (the functions are flat beyond).
TANH_LIMIT = f32(9.0)
SIGMOID_LIMIT = f32(30.0)
#: Largest ``x^2`` of the Gaussian ``exp(-x^2)`` (``exp(-40)`` is about 4e-18: flat beyond).
GAUSS_LIMIT = f32(40.0)

LN2 = f32(np.log(2))
SQRT2 = f32(np.sqrt(2))
LOG_C3 = f32(1 / 3)
LOG_C5 = f32(1 / 5)
LOG_C7 = f32(1 / 7)
LOG_C9 = f32(1 / 9)
MANTISSA_MASK = 0x007FFFFF
ONE_BITS = 0x3F800000

TAN_PI_8 = f32(np.tan(np.pi / 8))
ATAN_C3 = f32(-1 / 3)
ATAN_C5 = f32(1 / 5)
ATAN_C7 = f32(-1 / 7)
ATAN_C9 = f32(1 / 9)
ATAN_C11 = f32(-1 / 11)
ATAN_C13 = f32(1 / 13)
ATAN_C15 = f32(-1 / 15)

#: Protected operations: divisors at most this far from 0 count as 1; log floors |a| here.
DIV_EPS = f32(1e-3)
LOG_EPS = f32(1e-6)

#: Value noise: lattice cells per unit of input, and the clamp on scaled inputs.
NOISE_FREQ = f32(4.0)
NOISE_LIMIT = f32(1e6)
NOISE_UNIT = f32(2.0 / (1 << 24))
HASH_MASK = 0xFFFFFFFF
HASH_A = 0x27D4EB2D
HASH_B = 0x165667B1
HASH_C = 0x2C1B3C6D
HASH_D = 0x297A2D39
