"""Random draws for the evidence: the random-entry baseline and the bootstrap, as compiled kernels.

Randomness. Every draw is reproducible from one integer seed and independent of the number of
threads: :func:`draw_keys` turns the seed into one 64-bit key per draw with numpy's ``default_rng``,
and inside the kernels the ``j``-th pick of a draw is a pure function of its key and ``j`` (the
SplitMix64 finalizer of ``key + j * golden``, a counter-based generator). A pick in a pool of ``m``
items is ``(r >> 32) * m >> 32`` (Lemire's multiply-shift on the top 32 bits): an item's chance is
off by at most ``m / 2**32`` of itself (under 0.1% for 4 million items), far below what 200 draws
can resolve. Drawing this way lets every thread run its own draws with no shared generator state and
no generator calls from Python: the 200-draw baseline costs about a nanosecond per pick. The
bootstrap is the dearer part (1,000 resamples of every bucket: about 1.7 billion picks on 24 x 72,000
bars, 2-5 s), bound by cache misses into a bucket's values.

The baseline (:func:`baseline_means`): ``pools`` hold, per group (a symbol and a side), the R of
entering that side at each of the symbol's usable bars; ``counts[b, g]`` is how many signals bucket
``b`` has in group ``g``. Each draw picks, with replacement, that many bars from each group's pool,
so a draw has the bucket's per-symbol counts and its direction mix; its value is the mean R of the
picks. :func:`baseline_rows` lists one draw's picks (the same picks, for tests and inspection).

The bootstrap (:func:`bootstrap_means`): for each bucket's R values, ``replicates`` resamples of the
same size with replacement, each summarized by its mean.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_ONE = np.uint64(1)


def _njit(fn: Any, parallel: bool = False) -> Any:
    return numba.njit(cache=True, error_model="numpy", parallel=parallel)(fn)


def _mix_py(z: Any) -> Any:  # pragma: no cover - compiled
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


_mix = _njit(_mix_py)


def _pick_py(key: Any, j: Any, m: int) -> int:  # pragma: no cover - compiled
    r = _mix(key + j * _GOLDEN)
    return int(((r >> _S32) * np.uint64(m)) >> _S32)


_pick = _njit(_pick_py)


def _bucket_key_py(key: Any, b: int) -> Any:  # pragma: no cover - compiled
    return _mix(key ^ _mix((np.uint64(b) + _ONE) * _GOLDEN))


_bucket_key = _njit(_bucket_key_py)


def _means_kernel(
    keys: UIntArray,
    counts: IntArray,
    offsets: IntArray,
    pool_r: FloatArray,
    pool_start: IntArray,
    sums: FloatArray,
) -> None:  # pragma: no cover - compiled
    # Group-major: one group's pool (a symbol's bars on one side, ~0.5 MB) stays in the core's cache
    # while every draw of every bucket picks from it; draw-major order missed the cache on most picks.
    buckets, groups = counts.shape
    for g in numba.prange(groups):
        lo = pool_start[g]
        m = pool_start[g + 1] - lo
        for d in range(keys.shape[0]):
            for b in range(buckets):
                key = _bucket_key(keys[d], b)
                j = np.uint64(offsets[b, g])
                total = 0.0
                for _ in range(counts[b, g]):
                    total += pool_r[lo + _pick(key, j, m)]
                    j += _ONE
                sums[g, b, d] = total


_means = _njit(_means_kernel, parallel=True)


def _rows_kernel(
    key: np.uint64, counts: IntArray, pool_rows: IntArray, pool_start: IntArray, out: IntArray
) -> None:  # pragma: no cover - compiled
    key = np.uint64(key)
    j = np.uint64(0)
    w = 0
    for g in range(counts.shape[0]):
        lo = pool_start[g]
        m = pool_start[g + 1] - lo
        for _ in range(counts[g]):
            out[w] = pool_rows[lo + _pick(key, j, m)]
            j += _ONE
            w += 1


_rows = _njit(_rows_kernel)


def _bootstrap_kernel(
    values: FloatArray, starts: IntArray, keys: UIntArray, replicates: int, out: FloatArray
) -> None:  # pragma: no cover - compiled
    buckets = starts.shape[0] - 1
    for job in numba.prange(buckets * replicates):
        b = job // replicates
        rep = job % replicates
        lo = starts[b]
        n = starts[b + 1] - lo
        if n == 0:
            out[b, rep] = np.nan
            continue
        key = _bucket_key(keys[b], rep)
        total = 0.0
        for j in range(n):
            total += values[lo + _pick(key, np.uint64(j), n)]
        out[b, rep] = total / n


_bootstrap = _njit(_bootstrap_kernel, parallel=True)


def draw_keys(seed: int, n: int) -> UIntArray:
    """``n`` 64-bit keys from numpy's ``default_rng(seed)``: one per draw (or per bucket)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)


def _check_pools(counts: IntArray, pool_start: IntArray) -> None:
    empty = np.diff(pool_start) == 0
    if np.any((counts > 0) & (empty[None, :] if counts.ndim == 2 else empty)):
        raise ValueError("a group with draws to make has an empty pool")


def baseline_means(keys: UIntArray, counts: IntArray, pool_r: FloatArray, pool_start: IntArray) -> FloatArray:
    """The mean R of every draw (columns, one per key) for every bucket (rows of ``counts``).

    ``counts`` is buckets x groups; group ``g``'s pool is ``pool_r[pool_start[g]:pool_start[g + 1]]``.
    A bucket without signals gives NaN.
    """
    c = np.ascontiguousarray(counts, dtype=np.int64)
    start = np.ascontiguousarray(pool_start, dtype=np.int64)
    _check_pools(c, start)
    # A pick's counter runs over the bucket's groups in order (what baseline_rows lists).
    offsets = np.ascontiguousarray(np.cumsum(c, axis=1) - c)
    sums = np.empty((c.shape[1], c.shape[0], keys.shape[0]))
    pools = np.ascontiguousarray(pool_r, np.float64)
    _means(np.ascontiguousarray(keys, dtype=np.uint64), c, offsets, pools, start, sums)
    n = c.sum(axis=1).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums.sum(axis=0) / np.where(n > 0, n, 1.0), np.nan)


def baseline_rows(
    key: np.uint64, bucket: int, counts: IntArray, pool_rows: IntArray, pool_start: IntArray
) -> IntArray:
    """The rows one draw (``key``, a :func:`draw_keys` key) picks for ``bucket``: ``counts[g]`` rows from
    each group ``g``'s pool, in group order. The same picks :func:`baseline_means` averages."""
    c = np.ascontiguousarray(counts, dtype=np.int64)
    start = np.ascontiguousarray(pool_start, dtype=np.int64)
    _check_pools(c, start)
    out = np.empty(int(c.sum()), dtype=np.int64)
    _rows(
        np.uint64(_bucket_key(np.uint64(key), bucket)),
        c,
        np.ascontiguousarray(pool_rows, np.int64),
        start,
        out,
    )
    return out


def bootstrap_means(values: FloatArray, starts: IntArray, keys: UIntArray, replicates: int) -> FloatArray:
    """``replicates`` bootstrap means of each bucket's values (``values[starts[b]:starts[b + 1]]``),
    bucket ``b`` drawn from ``keys[b]``: buckets x replicates, NaN rows for empty buckets."""
    s = np.ascontiguousarray(starts, dtype=np.int64)
    out = np.empty((s.shape[0] - 1, replicates))
    _bootstrap(
        np.ascontiguousarray(values, np.float64), s, np.ascontiguousarray(keys, np.uint64), replicates, out
    )
    return out
