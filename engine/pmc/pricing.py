"""Option pricing models, vectorised over numpy arrays (float64).

* ``black_scholes`` — Black-Scholes-Merton with a continuous dividend yield (European; with
  q = r it is Black-76 for options on futures).
* ``crr_binomial`` — the textbook Cox-Ross-Rubinstein tree (u = e^(sigma sqrt dt), d = 1/u),
  European or American, over a batch of contracts at once: one array of shape [n, steps + 1]
  rolled back ``steps`` times.
* ``american_prices`` — CRR for large batches (theo generation). Theory of operation: a CRR
  value is homogeneous in (S, K), so contracts that share (T, r, q, sigma, call/put) share one
  value function of log-moneyness y = ln(S/K). For each such group one CRR lattice on a fixed
  grid y_j = c + j * sigma sqrt(dt) is rolled back (every grid node at time 0 is the root of an
  exact CRR tree), American and European side by side. The early-exercise premium
  (American - European, both from the same lattice) is smooth in y and is interpolated at each
  contract's y, then added to the closed-form Black-Scholes European price: the control variate
  technique (Hull, *Options, Futures, and Other Derivatives*), which also cancels most of the
  tree's discretisation error. Cost is per group, not per contract: a chain of 50 strikes x 11
  spot scenarios costs one lattice.

All inputs broadcast to one shape [n]; T in years, rates and yields continuous, sigma annual.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

DEFAULT_STEPS = 100
MIN_SIGMA = 1e-6
_SQRT_2PI = 2.506628274631
_GRID_SIGMAS = 4.5  # the lattice covers log-moneyness within this many sigma*sqrt(T) (+ margin)
_GRID_MARGIN = 0.02
_MAX_CHUNK_CELLS = 4_000_000  # CRR per-contract trees
_LATTICE_CHUNK_CELLS = 131_072  # grouped lattices: a chunk stays in the CPU cache


def norm_cdf(x: ArrayLike) -> FloatArray:
    """Standard normal CDF to double precision (Hart 1968 / West 2005), any shape.

    Built symmetric so N(x) + N(-x) == 1 up to one rounding (put-call parity holds exactly).
    The far-tail branch (|x| >= 7.07) is evaluated only where it is needed.
    """
    v = np.asarray(x, dtype=np.float64)
    a = np.abs(v)
    e = np.exp(-0.5 * a * a)
    num = 3.52624965998911e-02 * a + 0.700383064443688
    for c in (6.37396220353165, 33.912866078383, 112.079291497871, 221.213596169931):
        num *= a
        num += c
    num *= a
    num += 220.206867912376
    den = 8.83883476483184e-02 * a + 1.75566716318264
    for c in (16.064177579207, 86.7807322029461, 296.564248779674, 637.333633378831):
        den *= a
        den += c
    den *= a
    den += 793.826512519948
    den *= a
    den += 440.413735824752
    tail = e * num
    tail /= den
    far = a >= 7.07106781186547
    if far.any():
        af = a[far]
        f = af + 0.65
        f = af + 4.0 / f
        f = af + 3.0 / f
        f = af + 2.0 / f
        f = af + 1.0 / f
        tail[far] = np.where(af > 37.0, 0.0, e[far] / f / _SQRT_2PI)
    out: FloatArray = np.where(v > 0, 1.0 - tail, tail)
    return out


def _with_flags(
    values: tuple[ArrayLike, ...], flags: tuple[ArrayLike, ...]
) -> tuple[list[FloatArray], list[BoolArray]]:
    """Broadcast float inputs and boolean flags together; every result has shape [n]."""
    arrays = np.broadcast_arrays(
        *[np.asarray(v, dtype=np.float64) for v in values],
        *[np.asarray(f, dtype=bool) for f in flags],
    )
    floats = [np.ascontiguousarray(a, dtype=np.float64).reshape(-1) for a in arrays[: len(values)]]
    bools = [np.ascontiguousarray(a, dtype=bool).reshape(-1) for a in arrays[len(values) :]]
    return floats, bools


def intrinsic(s: ArrayLike, k: ArrayLike, is_call: ArrayLike) -> FloatArray:
    """Exercise value now: max(S - K, 0) for calls, max(K - S, 0) for puts; shape [n]."""
    (s_, k_), (call,) = _with_flags((s, k), (is_call,))
    out: FloatArray = np.where(call, np.maximum(s_ - k_, 0.0), np.maximum(k_ - s_, 0.0))
    return out


def black_scholes(
    s: ArrayLike,
    k: ArrayLike,
    t: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
) -> FloatArray:
    """European option value, shape [n] (inputs broadcast). T <= 0 gives the intrinsic value."""
    (s_, k_, t_, r_, q_, sig), (call,) = _with_flags((s, k, t, r, q, sigma), (is_call,))
    live = t_ > 0
    tt = np.where(live, t_, 1.0)
    vol = np.maximum(sig, MIN_SIGMA) * np.sqrt(tt)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(s_ / k_) + (r_ - q_ + 0.5 * np.maximum(sig, MIN_SIGMA) ** 2) * tt) / vol
    d2 = d1 - vol
    df_s = s_ * np.exp(-q_ * tt)
    df_k = k_ * np.exp(-r_ * tt)
    n1 = norm_cdf(d1)
    n2 = norm_cdf(d2)
    call_v = df_s * n1 - df_k * n2
    put_v = df_k * (1.0 - n2) - df_s * (1.0 - n1)  # N(-d) = 1 - N(d): same rounding as parity
    value = np.where(call, call_v, put_v)
    out: FloatArray = np.where(live, value, intrinsic(s_, k_, call))
    return out


def crr_binomial(
    s: ArrayLike,
    k: ArrayLike,
    t: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    american: ArrayLike,
    steps: int = 200,
) -> FloatArray:
    """Textbook CRR tree value for each contract, shape [n] (chunks of contracts in memory).

    p = (e^((r-q) dt) - d) / (u - d); at each node of an American tree the value is the larger
    of continuation and exercise. T <= 0 gives the intrinsic value.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    (s_, k_, t_, r_, q_, sig), (call, amer) = _with_flags(
        (s, k, t, r, q, sigma), (is_call, american)
    )
    n = s_.shape[0]
    out = np.empty(n, dtype=np.float64)
    chunk = max(1, _MAX_CHUNK_CELLS // (steps + 1))
    j = np.arange(steps + 1, dtype=np.float64)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        tt = np.maximum(t_[sl], 1e-12)
        dt = tt / steps
        vol = np.maximum(sig[sl], MIN_SIGMA)
        u = np.exp(vol * np.sqrt(dt))
        d = 1.0 / u
        p = np.clip((np.exp((r_[sl] - q_[sl]) * dt) - d) / (u - d), 0.0, 1.0)
        disc = np.exp(-r_[sl] * dt)
        log_u = np.log(u)
        sign = np.where(call[sl], 1.0, -1.0)[:, None]
        strike = k_[sl][:, None]
        spot = s_[sl][:, None]
        # nodes at step i: S * u^(2j - i), j = 0..i
        values = np.maximum(sign * (spot * np.exp((2.0 * j - steps) * log_u[:, None]) - strike), 0)
        am = amer[sl][:, None]
        pp = p[:, None]
        dd = disc[:, None]
        for i in range(steps - 1, -1, -1):
            values = dd * (pp * values[:, 1 : i + 2] + (1.0 - pp) * values[:, : i + 1])
            if am.any():
                nodes = spot * np.exp((2.0 * j[: i + 1] - i) * log_u[:, None])
                exercise = np.maximum(sign * (nodes - strike), 0.0)
                values = np.where(am, np.maximum(values, exercise), values)
        out[sl] = values[:, 0]
    expired = t_ <= 0
    out[expired] = intrinsic(s_[expired], k_[expired], call[expired])
    return out


def group_rows(columns: list[FloatArray]) -> tuple[NDArray[np.intp], int]:
    """Group id [n] of rows equal in every column (columns [n] each), and the group count.

    One ``np.unique`` per column and a re-densified combined key: much faster than
    ``np.unique(axis=0)`` on a float matrix.
    """
    n = columns[0].shape[0]
    key = np.zeros(n, dtype=np.int64)
    count = 1
    for col in columns:
        values, codes = np.unique(col, return_inverse=True)
        key = key * values.shape[0] + codes.reshape(-1)
        uniq, inv = np.unique(key, return_inverse=True)
        key = inv.reshape(-1).astype(np.int64)
        count = uniq.shape[0]
    return key.astype(np.intp), count


def american_prices(
    s: ArrayLike,
    k: ArrayLike,
    t: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    steps: int = DEFAULT_STEPS,
) -> FloatArray:
    """American values for a large batch: grouped CRR lattices + control variate.

    ``s`` is [n] or [n, m] (m spot scenarios of the same contract, e.g. the base price and the 10
    moved prices); the other inputs are [n] (or scalars). Returns the shape of ``s``. See the
    module docstring. Calls without a dividend yield (q <= 0, r >= 0) are never exercised early,
    so they get the European value directly.
    """
    spot = np.asarray(s, dtype=np.float64)
    flat_out = spot.ndim <= 1
    spot2 = spot.reshape(-1, 1) if flat_out else spot
    n, m = spot2.shape
    (k_, t_, r_, q_, sig), (call,) = _with_flags(
        (
            np.broadcast_to(np.asarray(k, dtype=np.float64), (n,)),
            t,
            r,
            q,
            sigma,
        ),
        (is_call,),
    )
    k_, t_, r_, q_, sig = (np.broadcast_to(a, (n,)) for a in (k_, t_, r_, q_, sig))
    call = np.broadcast_to(call, (n,))
    sig = np.maximum(sig, MIN_SIGMA)

    def rep(a: NDArray[np.generic]) -> NDArray[np.generic]:
        return np.repeat(a, m) if m > 1 else np.asarray(a)

    flat_spot = spot2.reshape(-1)
    euro = black_scholes(flat_spot, rep(k_), rep(t_), rep(r_), rep(q_), rep(sig), rep(call))
    need = (t_ > 0) & ~(call & (q_ <= 0) & (r_ >= 0))
    out = euro.reshape(n, m).copy()
    idx = np.flatnonzero(need)
    if idx.size:
        inv, n_groups = group_rows(
            [t_[idx], r_[idx], q_[idx], sig[idx], call[idx].astype(np.float64)]
        )
        groups = np.empty((n_groups, 5), dtype=np.float64)
        groups[inv] = np.column_stack(
            [t_[idx], r_[idx], q_[idx], sig[idx], call[idx].astype(np.float64)]
        )
        y = np.log(spot2[idx] / k_[idx, None]).reshape(-1)  # [len(idx) * m]
        inv_m = np.repeat(inv, m) if m > 1 else inv
        premium = _lattice_premium(groups, inv_m, y, steps).reshape(idx.size, m)
        out[idx] += k_[idx, None] * premium
    floor = np.where(
        (t_ > 0)[:, None],
        intrinsic(flat_spot, rep(k_), rep(call)).reshape(n, m),
        -np.inf,
    )
    result: FloatArray = np.maximum(out, floor)
    return result.reshape(-1) if flat_out else result


def _lattice_premium(
    groups: FloatArray, inv: NDArray[np.intp], y: FloatArray, steps: int
) -> FloatArray:
    """Early-exercise premium per unit strike at log-moneyness ``y`` [m] (group ``inv`` [m]).

    ``groups`` [G, 5] holds (T, r, q, sigma, is_call) of each group.
    """
    n_groups = groups.shape[0]
    t = groups[:, 0]
    r = groups[:, 1]
    q = groups[:, 2]
    sig = groups[:, 3]
    call = groups[:, 4] > 0.5
    dt = t / steps
    step = sig * np.sqrt(dt)  # grid spacing in log-moneyness
    cap = _GRID_SIGMAS * sig * np.sqrt(t) + _GRID_MARGIN
    y_lo = np.full(n_groups, np.inf)
    y_hi = np.full(n_groups, -np.inf)
    np.minimum.at(y_lo, inv, y)
    np.maximum.at(y_hi, inv, y)
    y_lo = np.maximum(y_lo, -cap)
    y_hi = np.minimum(y_hi, cap)
    y_hi = np.maximum(y_hi, y_lo)
    center = 0.5 * (y_lo + y_hi)
    half = np.ceil(0.5 * (y_hi - y_lo) / step).astype(np.int64) + 1  # core nodes each side
    u = np.exp(step)
    d = 1.0 / u
    p = np.clip((np.exp((r - q) * dt) - d) / (u - d), 0.0, 1.0)
    disc = np.exp(-r * dt)
    premium_at = np.zeros(y.shape[0], dtype=np.float64)
    order = np.argsort(half, kind="stable")
    start = 0
    while start < n_groups:
        width_max = int(half[order[min(n_groups, start + 1) - 1]])
        # grow the chunk while the padded lattice stays within the memory budget
        stop = start + 1
        while stop < n_groups:
            w = int(half[order[stop]])
            if (stop + 1 - start) * (2 * (w + steps) + 1) > _LATTICE_CHUNK_CELLS:
                break
            width_max = w
            stop += 1
        members = order[start:stop]
        _roll_back_chunk(
            members,
            width_max,
            steps,
            center,
            step,
            p,
            disc,
            call,
            inv,
            y,
            premium_at,
        )
        start = stop
    return premium_at


def _roll_back_chunk(
    members: NDArray[np.intp],
    width: int,
    steps: int,
    center: FloatArray,
    step: FloatArray,
    p: FloatArray,
    disc: FloatArray,
    call: BoolArray,
    inv: NDArray[np.intp],
    y: FloatArray,
    premium_at: FloatArray,
) -> None:
    """Roll back American and European lattices for groups ``members``; fill their premiums."""
    g = members.shape[0]
    total = width + steps
    offsets = np.arange(-total, total + 1, dtype=np.float64)  # node index j
    grid = center[members][:, None] + offsets[None, :] * step[members][:, None]  # [g, 2T+1]
    spot = np.exp(grid)
    sign = np.where(call[members], 1.0, -1.0)[:, None]
    exercise = np.maximum(sign * (spot - 1.0), 0.0)
    # discounted probabilities; the lattices shrink by one node each side per step and are
    # updated in place in two buffers (no temporaries on this, the hottest loop)
    up = (p[members] * disc[members])[:, None]
    down = ((1.0 - p[members]) * disc[members])[:, None]
    cols = exercise.shape[1]
    am = exercise.copy()
    eu = exercise.copy()
    tmp = np.empty_like(am)
    for i in range(1, steps + 1):
        w = cols - 2 * i
        for lattice in (am, eu):
            np.multiply(lattice[:, 2 : w + 2], up, out=tmp[:, :w])
            np.multiply(lattice[:, :w], down, out=lattice[:, :w])
            np.add(lattice[:, :w], tmp[:, :w], out=lattice[:, :w])
        np.maximum(am[:, :w], exercise[:, i : cols - i], out=am[:, :w])
    width_out = cols - 2 * steps
    premium = am[:, :width_out] - eu[:, :width_out]  # [g, 2 * width + 1], j = -width..width
    # interpolate each contract of these groups
    slot = np.full(center.shape[0], -1, dtype=np.int64)
    slot[members] = np.arange(g)
    mine = np.flatnonzero(slot[inv] >= 0)
    if mine.size == 0:
        return
    rows = slot[inv[mine]]
    grp = members[rows]
    pos = (y[mine] - center[grp]) / step[grp] + width
    pos = np.clip(pos, 0.0, 2.0 * width)
    lo = np.minimum(np.floor(pos).astype(np.int64), 2 * width - 1)
    frac = pos - lo
    flat = premium.reshape(-1)
    base = rows * (2 * width + 1)
    premium_at[mine] = (1.0 - frac) * flat[base + lo] + frac * flat[base + lo + 1]
