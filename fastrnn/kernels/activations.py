"""Activations of one float: tanh and the logistic function, and exp's safe range.

In float64 each is the C library's (min-char-rnn's arithmetic); in float32 tanh is a
rational function that LLVM can vectorise, within 3.4e-7 relative of the exact value,
and the logistic function goes through it.
"""
import numpy as np
from numba import types
from numba.extending import overload


def tanh(x):
    """tanh of one float: the C library's in float64; in float32 a rational function
    that LLVM can vectorise, within 3.4e-7 relative of the exact value."""
    return np.tanh(x)


@overload(tanh)
def _tanh_overload(x):
    if x == types.float32:
        return _tanh_float32
    return lambda x: np.tanh(x)


def _tanh_float32(x):
    # x P(x^2) / Q(x^2), P and Q of degree 4, fitted to tanh on [0, 9] for relative
    # error (scripts/fit_tanh.py): within 3.4e-7 relative of the exact value in float32
    # arithmetic. From |x| = 9 on, where tanh is 1 to float32 precision, it is +-1, and
    # the quotient never passes 1; NaN passes through.
    c = min(max(x, np.float32(-9.0)), np.float32(9.0))
    s = c * c
    p = ((((np.float32(1.3149253e-08) * s + np.float32(2.0454300e-05)) * s
           + np.float32(3.4860078e-03)) * s + np.float32(1.3372960e-01)) * s
         + np.float32(9.9999999e-01))
    q = ((((np.float32(7.6904260e-07) * s + np.float32(3.2700598e-04)) * s
           + np.float32(2.5840497e-02)) * s + np.float32(4.6706282e-01)) * s
         + np.float32(1.0))
    r = min(max(c * p / q, np.float32(-1.0)), np.float32(1.0))
    if c >= np.float32(9.0):
        r = np.float32(1.0)
    elif c <= np.float32(-9.0):
        r = np.float32(-1.0)
    return r


def exp_limit(x):
    """The largest |x| for which exp(x) is comfortably finite and nonzero in x's type."""
    return 700.0


@overload(exp_limit)
def _exp_limit_overload(x):
    if x == types.float32:
        return lambda x: np.float32(80.0)
    return lambda x: 700.0


def sigmoid(x):
    """The logistic function of one float; float32 goes through the fast tanh."""
    return 1.0 / (1.0 + np.exp(-x))


@overload(sigmoid)
def _sigmoid_overload(x):
    if x == types.float32:
        def impl(x):
            half = np.float32(0.5)
            return half + half * tanh(half * x)
        return impl
    return lambda x: 1.0 / (1.0 + np.exp(-x))
