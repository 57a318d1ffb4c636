"""ONNX converters: tensor ops TVM lacks (BitCast, Det, Col2Im, TensorScatter, DeformConv).

Shapes are static, so everything that depends only on shapes (index tables,
sampling grids, masks) is computed with numpy at import and becomes a
constant.  Data-dependent gathers are written as ``take`` of rows of a 2-D
table (the form the device's embedding op accepts) with a trailing zero row
standing in for "no element" (out-of-image samples, padding): the result is
exact and never reads out of bounds, whatever the run-time values.
"""
from __future__ import annotations

import itertools

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import (
    OnnxOpConverter, UnsupportedForm, _const, _const_ints, _dtype, _onnx_dtype_name, _shape,
)


def _work_dtype(dtype: str) -> str:
    """float64 stays float64; float32 and the half types are computed in float32."""
    return "float64" if dtype == "float64" else "float32"


def _cast(bb, x, dtype: str):
    return x if _dtype(x) == dtype else bb.normalize(relax.op.astype(x, dtype))


def _with_zero_row(bb, table, rows: int, cols: int):
    """``table`` viewed as ``[rows, cols]`` with a zero row appended: row index ``rows``
    gathers zeros (``take(.., index, axis=0)`` then has shape ``index.shape + [cols]``)."""
    table = bb.normalize(relax.op.reshape(table, [rows, cols]))
    zero = _const(np.zeros((1, cols)), _dtype(table))
    return bb.normalize(relax.op.concat([table, zero], axis=0))


# --------------------------------------------------------------------------
# BitCast
# --------------------------------------------------------------------------


def _bit_width(dtype: str) -> int:
    """Storage width in bits (ONNX's bool is one byte); sub-byte and complex types are refused."""
    if dtype == "bool":
        return 8
    try:
        bits = tvm.DataType(dtype).bits
    except ValueError:
        bits = 0
    if bits < 8:
        raise UnsupportedForm(f"BitCast: dtype {dtype} is not supported (sub-byte and complex types are not)")
    return bits


def _is_integer(dtype: str) -> bool:
    return dtype == "bool" or dtype.startswith(("int", "uint"))


class BitCast(OnnxOpConverter):
    """BitCast (opset 26): the input's bits reinterpreted as ``to`` (same width).

    * a constant input is folded with numpy's ``view``;
    * between integer types (and bool) of one width, ``astype`` is already the
      identity on bits (two's complement wrap; a bool byte reads as ``x != 0``),
      and stays an ordinary Relax op;
    * otherwise (a float on either side) ``R.memory.view`` with the new dtype:
      Relax's zero-copy reinterpretation, lowered by ``tvm.compile`` for the host.
    """

    @classmethod
    def _impl_v26(cls, bb, inputs, attr, params):
        x = inputs[0]
        src, dst = _dtype(x), _onnx_dtype_name(int(attr["to"]))
        if _bit_width(src) != _bit_width(dst):
            raise UnsupportedForm(f"BitCast: attribute to={dst} is {_bit_width(dst)} bits wide but the input "
                             f"({src}) is {_bit_width(src)}: BitCast needs equal widths")
        value = _tvm_onnx.get_constant(x, params)
        if isinstance(value, tvm.ir.GenericConst):
            array = np.ascontiguousarray(value.value.numpy())
            return relax.const(array.view(np.dtype(dst)), dst)
        if _is_integer(src) and _is_integer(dst):
            return relax.op.astype(x, dst)
        return relax.op.memory.view(x, dtype=dst)


# --------------------------------------------------------------------------
# Det
# --------------------------------------------------------------------------


def _pivot(bb, a, m: int, k: int):
    """Per matrix of ``a`` (``[batch, m, m]``), the row ``i >= k`` with the largest ``|a[i, k]|``,
    the first on ties (as LAPACK's ``idamax``): ``[batch, 1]`` int64.  Spelled with max /
    equal / where / min, which the device runs, rather than argmax, which it does not
    (a NaN column matches nothing and picks row m - 1)."""
    column = bb.normalize(relax.op.abs(relax.op.strided_slice(a, [1, 2], [k, k], [m, k + 1])))  # [batch, m-k, 1]
    top = relax.op.max(column, axis=1, keepdims=True)
    rows = _const(np.arange(k, m).reshape(1, m - k, 1), "int64")
    candidates = relax.op.where(relax.op.equal(column, top), rows, _const(m - 1, "int64"))
    return bb.normalize(relax.op.min(bb.normalize(candidates), axis=1))


def _swap_rows(bb, a, batch: int, m: int, k: int, p):
    """Rows ``k`` and ``p[b]`` of every matrix ``a[b]`` (``[batch, m, m]``) exchanged:
    a row gather through ``take`` on the ``[batch * m, m]`` table."""
    rows = _const(np.arange(m).reshape(1, m), "int64")
    perm = relax.op.where(relax.op.equal(rows, _const(k, "int64")), p,
                          relax.op.where(relax.op.equal(rows, p), _const(k, "int64"), rows))
    index = bb.normalize(relax.op.add(perm, _const(np.arange(batch).reshape(batch, 1) * m, "int64")))
    flat = bb.normalize(relax.op.reshape(a, [batch * m, m]))
    return bb.normalize(relax.op.take(flat, index, axis=0))


def _eliminate_below(bb, a, m: int, k: int, dtype: str):
    """Gaussian elimination step: ``row_i -= (a[i, k] / a[k, k]) * row_k`` for ``i > k``.
    A zero pivot (the whole column below is zero, the matrix singular) divides by 1
    instead, leaving the rows as they are; the zero pivot already makes det 0."""
    pivot_row = bb.normalize(relax.op.strided_slice(a, [1], [k], [k + 1]))  # [batch, 1, m]
    pivot = bb.normalize(relax.op.strided_slice(pivot_row, [2], [k], [k + 1]))  # [batch, 1, 1]
    pivot = relax.op.where(relax.op.equal(pivot, _const(0, dtype)), _const(1, dtype), pivot)
    column = relax.op.strided_slice(a, [2], [k], [k + 1])  # [batch, m, 1]
    below = _const((np.arange(m) > k).reshape(m, 1), dtype)
    factor = bb.normalize(relax.op.multiply(relax.op.divide(column, pivot), below))
    return bb.normalize(relax.op.subtract(a, relax.op.multiply(factor, pivot_row)))


class Det(OnnxOpConverter):
    """Det (opset 11/22) of ``[..., M, M]``: LU factorisation with partial pivoting, unrolled
    over the static M (what numpy / LAPACK ``getrf`` do): per column the row with the
    largest magnitude is swapped up (each swap flips the sign), the rows below are
    eliminated, and det = sign * prod(diagonal).  Computed in float32 (float64 kept)."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x = inputs[0]
        shape = _shape(x)
        m, outer = shape[-1], shape[:-2]
        batch = int(np.prod(outer, dtype=np.int64))
        dtype = _work_dtype(_dtype(x))
        a = bb.normalize(relax.op.reshape(_cast(bb, x, dtype), [batch, m, m]))
        sign = _const(np.ones((batch, 1)), dtype)
        for k in range(m - 1):
            p = _pivot(bb, a, m, k)
            a = _swap_rows(bb, a, batch, m, k, p)
            swapped = relax.op.not_equal(p, _const(k, "int64"))
            sign = bb.normalize(relax.op.multiply(
                sign, relax.op.where(swapped, _const(-1, dtype), _const(1, dtype))))
            a = _eliminate_below(bb, a, m, k, dtype)
        diagonal = relax.op.sum(relax.op.multiply(a, _const(np.eye(m), dtype)), axis=2)  # [batch, m]
        det = relax.op.multiply(relax.op.prod(bb.normalize(diagonal), axis=1), relax.op.reshape(sign, [batch]))
        det = bb.normalize(relax.op.reshape(det, outer))
        return _cast(bb, det, _dtype(x))


# --------------------------------------------------------------------------
# Col2Im
# --------------------------------------------------------------------------


def _window_coords(out, kernel, strides, pads, dilations) -> np.ndarray:
    """``coords[i, k, p]``: coordinate along spatial dim i of kernel position k of sliding
    window p (``out`` windows per dim), ``p_i * stride_i - pad_begin_i + k_i * dilation_i``."""
    d = len(out)
    kernel_pos = np.stack(np.unravel_index(np.arange(np.prod(kernel)), kernel))  # [d, K]
    out_pos = np.stack(np.unravel_index(np.arange(np.prod(out)), out))  # [d, P]
    col = lambda v: np.asarray(v).reshape(d, 1, 1)  # noqa: E731
    return out_pos[:, None, :] * col(strides) - col(pads[:d]) + kernel_pos[:, :, None] * col(dilations)


def _fold_index(image, block, dilations, pads, strides, blocks) -> np.ndarray:
    """Gather table of a fold: ``index[r, p]`` is the r-th column entry (``k * L + l`` for
    kernel position k of block l) that lands on image pixel p, or ``K * L`` (the zero
    row) when fewer land there.  Entries keep their column order, as in the reference."""
    coord = _window_coords(blocks, block, strides, pads, dilations)  # [d, K, L]
    inside = np.all((coord >= 0) & (coord < np.reshape(image, (-1, 1, 1))), axis=0)  # [K, L]
    target = np.ravel_multi_index(tuple(np.where(inside, coord, 0)), image)[inside]
    source = np.arange(inside.size).reshape(inside.shape)[inside]
    order = np.argsort(target, kind="stable")
    target, source = target[order], source[order]
    pixels = int(np.prod(image))
    counts = np.bincount(target, minlength=pixels)
    rank = np.arange(target.size) - (np.cumsum(counts) - counts)[target]
    index = np.full((max(int(counts.max(initial=0)), 1), pixels), inside.size, dtype="int64")
    index[rank, target] = source
    return index


class Col2Im(OnnxOpConverter):
    """Col2Im (opset 18): the inverse of im2col, summing every column entry into the image
    pixel its kernel position and block land on (torch's ``fold``, N-D).

    Written as a gather: a constant table lists, for each pixel, the column entries that
    land on it (at most R), so out = sum over R of ``take(columns, table)``; this is exact
    (only real contributions are added) and uses device-friendly ops only."""

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        x = inputs[0]
        image = _const_ints(inputs[1], params, "Col2Im image_shape")
        block = _const_ints(inputs[2], params, "Col2Im block_shape")
        d = len(image)
        dilations = list(attr.get("dilations", [1] * d))
        pads = list(attr.get("pads", [0] * (2 * d)))
        strides = list(attr.get("strides", [1] * d))
        n, channels_k, length = _shape(x)
        k = int(np.prod(block))
        if channels_k % k:
            raise UnsupportedForm(f"Col2Im: input dim 1 ({channels_k}) is not a multiple of prod(block_shape) ({k})")
        blocks = [(image[i] + pads[i] + pads[d + i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
                  for i in range(d)]
        if int(np.prod(blocks)) != length:
            raise UnsupportedForm(f"Col2Im: input dim 2 is {length} but image_shape={image}, block_shape={block}, "
                             f"dilations={dilations}, pads={pads}, strides={strides} give {blocks} blocks")
        c = channels_k // k
        index = _const(_fold_index(image, block, dilations, pads, strides, blocks), "int64")
        columns = relax.op.permute_dims(relax.op.reshape(x, [n * c, k * length]), [1, 0])
        table = _with_zero_row(bb, bb.normalize(columns), k * length, n * c)
        picked = relax.op.take(table, index, axis=0)  # [R, P, n * c]
        summed = relax.op.permute_dims(relax.op.sum(picked, axis=0), [1, 0])
        return relax.op.reshape(bb.normalize(summed), [n, c, *image])


# --------------------------------------------------------------------------
# TensorScatter
# --------------------------------------------------------------------------


def _attr_str(attr, key: str, default: str) -> str:
    value = attr.get(key, default)
    return value.decode() if isinstance(value, bytes) else str(value)


class TensorScatter(OnnxOpConverter):
    """TensorScatter (opset 24): KV-cache write ``present[b, .., w[b] + s, ..] = update[b, .., s, ..]``
    along ``axis`` (modulo the cache length in ``circular`` mode).

    Written as a gather: each cache slot t of batch b reads update position
    ``j = t - w[b]`` (mod the length when circular) if ``0 <= j < S``, else keeps the
    past value.  Out-of-range write indices therefore never write out of bounds."""

    @classmethod
    def _impl_v24(cls, bb, inputs, attr, params):
        past, update, write = inputs[0], inputs[1], inputs[2]
        shape = _shape(past)
        rank = len(shape)
        axis = int(attr.get("axis", -2)) % rank
        mode = _attr_str(attr, "mode", "linear")
        if axis == 0:
            raise UnsupportedForm("TensorScatter: attribute axis=0 is the batch axis (the spec forbids it)")
        if mode not in ("linear", "circular"):
            raise UnsupportedForm(f"TensorScatter: attribute mode={mode!r} (expected 'linear' or 'circular')")
        batch, length, seq = shape[0], shape[axis], _shape(update)[axis]
        pre, post = int(np.prod(shape[1:axis])), int(np.prod(shape[axis + 1:]))
        if write is None:
            write = _const(np.zeros(batch), "int64")
        write = bb.normalize(relax.op.reshape(_cast(bb, write, "int64"), [batch, 1]))
        j = bb.normalize(relax.op.subtract(_const(np.arange(length).reshape(1, length), "int64"), write))
        if mode == "circular":
            j = bb.normalize(relax.op.floor_mod(j, _const(length, "int64")))
        valid = relax.op.logical_and(relax.op.greater_equal(j, _const(0, "int64")),
                                     relax.op.less(j, _const(seq, "int64")))
        j = relax.op.clip(j, relax.prim_value(0), relax.prim_value(seq - 1))
        first_row = np.arange(batch * pre).reshape(batch, pre, 1) * seq
        rows = relax.op.add(_const(first_row, "int64"), relax.op.reshape(j, [batch, 1, length]))
        gathered = bb.normalize(relax.op.take(relax.op.reshape(update, [batch * pre * seq, post]),
                                              bb.normalize(rows), axis=0))
        gathered = bb.normalize(relax.op.reshape(gathered, shape))
        valid = relax.op.reshape(valid, [batch] + [1] * (axis - 1) + [length] + [1] * (rank - axis - 1))
        return relax.op.where(bb.normalize(valid), gathered, past)


# --------------------------------------------------------------------------
# DeformConv
# --------------------------------------------------------------------------


def _interpolate(bb, x, positions, size, groups: int):
    """Multilinear sample of ``x`` (``[N, groups, Cpg, *size]``) at ``positions`` (d tensors
    ``[N, groups, K, P]``, one per spatial dim, in pixels), zero outside the image
    (GridSample, align_corners=1, zero padding): ``[N, groups, K, P, Cpg]``.

    Each of the 2^d corners is one row gather from the ``[N * groups * pixels, Cpg]``
    table; corners outside the image read its zero row."""
    n, _, cpg = _shape(x)[:3]
    d, dtype = len(size), _dtype(x)
    pixels = int(np.prod(size))
    table = relax.op.permute_dims(relax.op.reshape(x, [n * groups, cpg, pixels]), [0, 2, 1])
    table = _with_zero_row(bb, bb.normalize(table), n * groups * pixels, cpg)
    first_row = _const((np.arange(n * groups) * pixels).reshape(n, groups, 1, 1), "int64")
    lows, fracs = [], []
    for i in range(d):
        # clamped so the int64 cast is defined; beyond [-2, size] no corner is inside anyway
        pos = bb.normalize(relax.op.clip(positions[i], relax.prim_value(-2.0), relax.prim_value(float(size[i]))))
        low = bb.normalize(relax.op.floor(pos))
        lows.append(bb.normalize(relax.op.astype(low, "int64")))
        fracs.append(bb.normalize(relax.op.subtract(pos, low)))
    strides = [int(np.prod(size[i + 1:])) for i in range(d)]
    total = None
    for corner in itertools.product((0, 1), repeat=d):
        weight, inside, flat = None, None, first_row
        for i, bit in enumerate(corner):
            coord = relax.op.add(lows[i], _const(bit, "int64")) if bit else lows[i]
            coord = bb.normalize(coord)
            w = fracs[i] if bit else relax.op.subtract(_const(1, dtype), fracs[i])
            ok = relax.op.logical_and(relax.op.greater_equal(coord, _const(0, "int64")),
                                      relax.op.less(coord, _const(size[i], "int64")))
            weight = w if weight is None else relax.op.multiply(weight, w)
            inside = ok if inside is None else relax.op.logical_and(inside, ok)
            flat = relax.op.add(flat, relax.op.multiply(coord, _const(strides[i], "int64")))
        row = relax.op.where(bb.normalize(inside), bb.normalize(flat), _const(n * groups * pixels, "int64"))
        picked = relax.op.take(table, bb.normalize(row), axis=0)  # [N, g, K, P, Cpg]
        term = bb.normalize(relax.op.multiply(picked, relax.op.expand_dims(bb.normalize(weight), -1)))
        total = term if total is None else bb.normalize(relax.op.add(total, term))
    return total


class DeformConv(OnnxOpConverter):
    """DeformConv (opset 19/22), N-D: each kernel tap samples the input at its regular
    position plus a learned per-output-position offset (multilinear interpolation, zero
    outside), scaled by the optional mask; the samples are then contracted with the
    weights like a grouped convolution (a matmul per group), plus the optional bias.

    Channels split into ``offset_group`` contiguous groups, each with its own offsets
    and mask; offsets are laid out ``[N, offset_group, *kernel, d, *out]`` (the pair
    order is (dim 0, dim 1, ...)), the mask ``[N, offset_group, *kernel, *out]``."""

    @classmethod
    def _impl_v19(cls, bb, inputs, attr, params):
        x, w, offset, bias, mask = inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]
        out_dtype = _dtype(x)
        dtype = _work_dtype(out_dtype)
        n, c, *size = _shape(x)
        oc, cg, *kernel = _shape(w)
        d, out = len(size), _shape(offset)[2:]
        kernel = list(attr.get("kernel_shape", kernel))
        group, offset_group = int(attr.get("group", 1)), int(attr.get("offset_group", 1))
        if c != cg * group or oc % group or c % offset_group:
            raise UnsupportedForm(f"DeformConv: X has {c} channels, W is {[oc, cg, *kernel]}, group={group}, "
                             f"offset_group={offset_group}: channels must divide into the groups")
        taps, points = int(np.prod(kernel)), int(np.prod(out))
        base = _window_coords(out, kernel, list(attr.get("strides", [1] * d)), list(attr.get("pads", [0] * 2 * d)),
                              list(attr.get("dilations", [1] * d)))
        offset = bb.normalize(relax.op.reshape(_cast(bb, offset, dtype), [n, offset_group, taps, d, points]))
        positions = [bb.normalize(relax.op.add(relax.op.take(offset, _const(i, "int64"), axis=3),
                                               _const(base[i], dtype))) for i in range(d)]
        xg = relax.op.reshape(_cast(bb, x, dtype), [n, offset_group, c // offset_group, *size])
        samples = _interpolate(bb, bb.normalize(xg), positions, size, offset_group)  # [N, og, K, P, Cpg]
        if mask is not None:
            mask = relax.op.reshape(_cast(bb, mask, dtype), [n, offset_group, taps, points, 1])
            samples = bb.normalize(relax.op.multiply(samples, mask))
        columns = relax.op.permute_dims(samples, [0, 1, 4, 2, 3])  # [N, og, Cpg, K, P]
        columns = relax.op.reshape(columns, [n, group, cg * taps, points])
        weight = relax.op.reshape(_cast(bb, w, dtype), [group, oc // group, cg * taps])
        y = relax.op.reshape(relax.op.matmul(weight, bb.normalize(columns)), [n, oc, *out])
        if bias is not None:
            y = relax.op.add(y, relax.op.reshape(_cast(bb, bias, dtype), [1, oc] + [1] * d))
        return _cast(bb, bb.normalize(y), out_dtype)


class Einsum(OnnxOpConverter):
    """Einsum as ``R.einsum`` (TVM emits an opaque TIR function the partitioner cannot place)."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        eq = attr["equation"]
        eq = eq.decode() if isinstance(eq, bytes) else eq
        return relax.op.einsum(list(inputs), eq.replace(" ", ""))


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "Einsum": Einsum,
    "BitCast": BitCast,
    "Det": Det,
    "Col2Im": Col2Im,
    "TensorScatter": TensorScatter,
    "DeformConv": DeformConv,
}
