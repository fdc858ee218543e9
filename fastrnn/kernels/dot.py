"""np.dot's BLAS calls, compiled into the caller: a gemv on a part of 2-d arrays without
making views, and a matrix product into a given array.

The kernels run without reference counts (kernels.jit), and there np.dot(a, b, out)
does not compile (it returns out, an array that Numba's check does not see as one its
function was given). These intrinsics compute the pointers and shapes np.dot hands to
BLAS and call the same routines (Numba's numba_xxgemv and the like, scipy's BLAS), so
the results are the same to the bit. The gemvs take parts of their arrays by index
rather than as views, as each step of a single stream needs: W[r0:r1], X[r], out[r].

The arrays are 2-d, of one dtype (float32 or float64): C-contiguous for the gemvs,
and for gemm's out, C or F for gemm's operands (a C array or its transpose). Shapes are
not checked: the callers' are right by construction.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import call_xxdot, call_xxgemm, call_xxgemv, ensure_blas


def _typed(out, W, X):
    arrays = (out, W, X)
    return (all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
                for a in arrays)
            and out.dtype == W.dtype == X.dtype
            and out.dtype in (types.float32, types.float64))


def _gemv(context, builder, dtype, do_trans, m_layout, m_shapes, m_data, v_size,
          v_data, out_data, out_size):
    """np.dot's gemv (numba.np.linalg.dot_3_vm) from its pointers and shapes: out zeroed
    where the vector or the matrix's leading dimension is empty, as there."""
    m_type = types.Array(dtype, 2, m_layout)
    lda = m_shapes[1] if m_layout == "C" else m_shapes[0]
    zero = context.get_constant(types.intp, 0)
    empty = builder.or_(builder.icmp_signed("==", v_size, zero),
                        builder.icmp_signed("==", lda, zero))
    with builder.if_else(empty, likely=False) as (then, otherwise):
        with then:
            size = context.get_abi_sizeof(context.get_value_type(dtype))
            cgutils.memset(builder, out_data,
                           builder.mul(out_size, context.get_constant(types.intp, size)), 0)
        with otherwise:
            call_xxgemv(context, builder, do_trans, m_type, m_shapes, m_data, v_data,
                        out_data)


def _part_gemv(by_rows):
    """The typing and code of gemv_rows (by_rows) or gemv_cols: the arrays' parts as
    pointers, the matrix as np.dot would see W[i0:i1] or W[i0:i1].T."""
    def typer(typingctx, out, o, W, i0, i1, X, x):
        if not _typed(out, W, X):
            return None

        def codegen(context, builder, sig, args):
            ensure_blas()
            tout, _, tW, _, _, tX, _ = sig.args
            aout = context.make_array(tout)(context, builder, args[0])
            aW = context.make_array(tW)(context, builder, args[2])
            aX = context.make_array(tX)(context, builder, args[5])
            o, i0, i1, x = args[1], args[3], args[4], args[6]
            cols = builder.extract_value(aW.shape, 1)
            zero = context.get_constant(types.intp, 0)
            n = builder.sub(i1, i0)
            a = cgutils.get_item_pointer(context, builder, tW, aW, [i0, zero])
            if by_rows:  # a C-ordered (n, K) matrix: BLAS's transposed gemv, as np.dot
                v = cgutils.get_item_pointer(context, builder, tX, aX, [x, zero])
                y = cgutils.get_item_pointer(context, builder, tout, aout, [o, i0])
                _gemv(context, builder, tW.dtype, True, "C", (n, cols), a, cols, v, y, n)
            else:  # W[i0:i1].T, an F-ordered (R, n) matrix: BLAS's plain gemv, as np.dot
                v = cgutils.get_item_pointer(context, builder, tX, aX, [x, i0])
                y = cgutils.get_item_pointer(context, builder, tout, aout, [o, zero])
                _gemv(context, builder, tW.dtype, False, "F", (cols, n), a, n, v, y, cols)
            return context.get_dummy_value()

        return types.void(out, types.intp, W, types.intp, types.intp, X, types.intp), codegen
    return typer


_rows, _cols = _part_gemv(True), _part_gemv(False)


@intrinsic
def gemv_rows(typingctx, out, o, W, r0, r1, X, x):
    """out[o, r0:r1] = W[r0:r1] @ X[x]; W: (R, K). np.dot(W[r0:r1], X[x], out[o, r0:r1])."""
    return _rows(typingctx, out, o, W, r0, r1, X, x)


@intrinsic
def gemv_cols(typingctx, out, o, W, k0, k1, X, x):
    """out[o, :R] = W[k0:k1].T @ X[x, k0:k1]; W: (K, R).
    np.dot(W[k0:k1].T, X[x, k0:k1], out[o, :R])."""
    return _cols(typingctx, out, o, W, k0, k1, X, x)


@intrinsic
def gemm(typingctx, out, A, B):
    """out (M, N) = A (M, K) @ B (K, N); np.dot(A, B, out) (numba.np.linalg.dot_3_mm)
    without its shape checks: out zeroed when a dimension is empty, a dot or a gemv
    when A has one row or B one column, else BLAS's gemm."""
    arrays = (out, A, B)
    if not (all(isinstance(a, types.Array) and a.ndim == 2 for a in arrays)
            and out.layout == "C" and A.layout in "CF" and B.layout in "CF"
            and out.dtype == A.dtype == B.dtype
            and out.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        ensure_blas()
        tout, tA, tB = sig.args
        aout, aA, aB = (context.make_array(t)(context, builder, a)
                        for t, a in zip(sig.args, args))
        A_shapes = cgutils.unpack_tuple(builder, aA.shape)
        B_shapes = cgutils.unpack_tuple(builder, aB.shape)
        out_shapes = cgutils.unpack_tuple(builder, aout.shape)
        (m, k), n = A_shapes, B_shapes[1]
        zero = context.get_constant(types.intp, 0)
        one = context.get_constant(types.intp, 1)
        empty = builder.or_(builder.icmp_signed("==", k, zero),
                            builder.or_(builder.icmp_signed("==", m, zero),
                                        builder.icmp_signed("==", n, zero)))
        with builder.if_else(empty, likely=False) as (then, otherwise):
            with then:
                cgutils.memset(builder, aout.data, builder.mul(aout.itemsize, aout.nitems),
                               0)
            with otherwise:
                row = builder.icmp_signed("==", m, one)
                with builder.if_else(builder.icmp_signed("==", n, one)) as (vec, mat):
                    with vec:
                        with builder.if_else(row) as (vv, mv):
                            with vv:
                                call_xxdot(context, builder, False, tA.dtype, k, aA.data,
                                           aB.data, aout.data)
                            with mv:
                                call_xxgemv(context, builder, tA.layout == tout.layout,
                                            tA, A_shapes, aA.data, aB.data, aout.data)
                    with mat:
                        with builder.if_else(row) as (vm, mm):
                            with vm:
                                call_xxgemv(context, builder, tB.layout != tout.layout,
                                            tB, B_shapes, aB.data, aA.data, aout.data)
                            with mm:
                                call_xxgemm(context, builder, tA, A_shapes, aA.data, tB,
                                            B_shapes, aB.data, tout, out_shapes, aout.data)
        return context.get_dummy_value()

    return types.void(out, A, B), codegen
