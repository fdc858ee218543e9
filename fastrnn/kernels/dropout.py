"""Dropout between layers: masks from a splitmix64 generator whose state is an array
(saved in checkpoints, so resume stays exact), and the masks applied.

The dropout probability `drop` reaches the kernels as a float, or as None where there is
no dropout (one layer, or dropout 0): then Numba compiles none of the code below. A
model trained with dropout is read without it (validation, sampling) with drop 0.0, so
that the same compiled steps serve both.
"""
import numpy as np
from numba import types
from numba.extending import overload

from .jit import jit, returns_view
from .products import SMALL
from .team import after, close, first, items, span


@jit
def next_uniform(rng):
    """A float in [0, 1) from a splitmix64 generator whose state is rng[0] (uint64)."""
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def dropout_masks(masks, rng, p):
    """masks (..., H): 0 with probability p, else 1 / (1 - p) (inverted dropout)."""
    flat = masks.reshape(-1)
    keep = 1.0 / (1.0 - p)
    for i in range(flat.size):
        flat[i] = keep if next_uniform(rng) >= p else 0.0


def _none(drop):
    return isinstance(drop, types.NoneType)


def new_masks(masks, rng, drop, team):
    """dropout_masks as one item of the team (the generator is sequential)."""


@overload(new_masks)
def _new_masks(masks, rng, drop, team):
    if _none(drop):
        return lambda masks, rng, drop, team: None

    def impl(masks, rng, drop, team):
        i = first(team, 1)
        if i >= 0:
            dropout_masks(masks, rng, drop)
            after(team, 1, i)
        close(team, 1)
    return impl


def layer_input(out, hs, l, T, drop, masks, team):
    """The input of layer l >= 1 over all steps as (T*B, H) rows: the states of layer
    l-1, through its dropout mask (written into out, (L-1, T, B, H)) with dropout."""


@returns_view(layer_input)
def _layer_input(out, hs, l, T, drop, masks, team):
    if _none(drop):
        return lambda out, hs, l, T, drop, masks, team: _below(hs, l, T)

    def impl(out, hs, l, T, drop, masks, team):
        _, _, B, H = hs.shape
        below = _below(hs, l, T)
        if drop == 0.0:  # (read without dropout)
            return below
        rows = out[l - 1].reshape(-1, H)[:T * B]
        m = masks[l - 1].reshape(-1, H)
        n = items(team, T * B, T * B * H, SMALL)
        i = first(team, n)
        while i >= 0:
            r0, r1 = span(i, n, T * B, 1)
            for r in range(r0, r1):
                for j in range(H):
                    rows[r, j] = below[r, j] * m[r, j]
            i = after(team, n, i)
        close(team, n)
        return rows
    return impl


def saved_layer_input(xin, hs, l, T, drop):
    """The rows layer_input returned for layer l in the forward pass."""


@returns_view(saved_layer_input)
def _saved_layer_input(xin, hs, l, T, drop):
    if _none(drop):
        return lambda xin, hs, l, T, drop: _below(hs, l, T)

    def impl(xin, hs, l, T, drop):
        return xin[l - 1].reshape(-1, hs.shape[3])[:T * hs.shape[2]]
    return impl


def _below(hs, l, T):
    """The states of layer l-1 over steps 1..T as (T*B, H) rows."""


@returns_view(_below)
def _below_impl(hs, l, T):
    def impl(hs, l, T):
        _, _, B, H = hs.shape
        return hs[l - 1].reshape(-1, H)[B:(T + 1) * B]
    return impl


def mask_gradient(rows, mask, drop, team):
    """rows (R, H) *= the first R rows of mask (T, B, H): dropout's backward."""


@overload(mask_gradient)
def _mask_gradient(rows, mask, drop, team):
    if _none(drop):
        return lambda rows, mask, drop, team: None

    def impl(rows, mask, drop, team):
        R, H = rows.shape
        m = mask.reshape(-1, H)
        n = items(team, R, R * H, SMALL)
        i = first(team, n)
        while i >= 0:
            r0, r1 = span(i, n, R, 1)
            for r in range(r0, r1):
                for j in range(H):
                    rows[r, j] *= m[r, j]
            i = after(team, n, i)
        close(team, n)
    return impl
