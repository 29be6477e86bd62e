"""The certified reference for the few neurons that no float bound can decide.

The spike time that certified precision promises (design note, "What is certified")
is ``T = ceil(L ln(1 + A))`` (0 for ``A <= 0``) of the *exact* pre-activation
``A = sum_i w_i g_i + b``: the float64 weights and bias, the float64 spike values
``g_i = exp(t_i * (1/L))`` as the G-DNN computes them, the products and the sum
without rounding, and the level test ``L ln(1 + A) <= t`` decided exactly.

Here that is done for a handful of neurons at a time:

* every product ``w g`` is split into two float64 numbers ``p + e`` exactly
  (Dekker's TwoProduct, Veltkamp splitting; exact without overflow or underflow);
* :func:`math.fsum` (Shewchuk's exact summation) gives ``S``, the correctly
  rounded sum, and then ``R``, the correctly rounded remainder ``A - S``: ``S + R``
  is ``A`` to about 2**-106 relative;
* the level test compares ``L ln(1 + S + R)`` with integers in :mod:`decimal`
  at 50 digits; when that is too close to call (``A`` within ~1e-40 of a
  boundary), ``A`` is summed as an exact :class:`fractions.Fraction` and the
  test repeated with more digits.  ``A = 0`` exactly gives ``T = 0``.

:func:`exact_times_at` applies it to chosen neurons of a layer, from their receptive
fields.
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

import torch
from torch import Tensor

from ..coding import spike_value
from .layers import SpikingSynapse
from .receptive import ReceptiveFields, _pool_fields, _weights

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's constant for float64
_DIGITS = 50
_MAX_DIGITS = 3200


def two_product(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(p, e)`` with ``p = fl(a b)`` and ``p + e = a b`` exactly (float64, no overflow)."""
    p = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    a_hi = ca - (ca - a)
    b_hi = cb - (cb - b)
    a_lo, b_lo = a - a_hi, b - b_hi
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


def exact_spike_times(
    weights: Tensor, values: Tensor, bias: Tensor, L: float, divisor: Tensor | None = None
) -> Tensor:
    """Exact ``T`` of ``m`` neurons: ``A_k = (sum_i weights[k, i] values[k, i] + bias[k]) /
    divisor[k]`` (float64 inputs; ``divisor`` for average pooling, default 1).

    Returns float64 integer values, shape ``(m,)``.
    """
    w = weights.detach().double().cpu()
    v = values.detach().double().cpu()
    p, e = two_product(w, v)
    terms = torch.cat([p, e, bias.detach().double().cpu()[:, None]], dim=1).tolist()
    divisors = [1] * len(terms) if divisor is None else [int(d) for d in divisor.tolist()]
    out = [float(_level(row, d, L)) for row, d in zip(terms, divisors)]
    return torch.tensor(out, dtype=torch.float64, device=values.device)


def _level(terms: list[float], divisor: int, L: float) -> int:
    """``ceil(L ln(1 + sum(terms) / divisor))`` decided exactly (0 when the sum is <= 0)."""
    if any(not math.isfinite(x) for x in terms):
        raise ArithmeticError("a product overflowed float64: the exact test needs finite terms")
    s = math.fsum(terms)
    r = math.fsum([*terms, -s])  # the remainder, correctly rounded
    if s < 0 or (s == 0 and r <= 0):
        if s == 0 and r == 0:  # possibly exactly zero: settle it exactly
            exact = sum((Fraction(x) for x in terms), Fraction(0))
            if exact > 0:
                return _decide(exact / divisor, L)
        return 0
    with decimal.localcontext() as ctx:
        ctx.prec = _DIGITS
        a = (decimal.Decimal(s) + decimal.Decimal(r)) / divisor
        t = decided(a, L, _DIGITS, slack=2.0**-100)
    if t is not None:
        return t
    exact = sum((Fraction(x) for x in terms), Fraction(0)) / divisor
    return _decide(exact, L)


def _decide(a: Fraction, L: float) -> int:
    """The level of an exact rational ``a > 0``, with as many digits as it takes."""
    digits = _DIGITS
    while digits <= _MAX_DIGITS:
        with decimal.localcontext() as ctx:
            ctx.prec = digits
            value = decimal.Decimal(a.numerator) / decimal.Decimal(a.denominator)
            t = decided(value, L, digits, slack=0.0)
        if t is not None:
            return t
        digits *= 4
    raise ArithmeticError(f"cannot decide the level of {float(a)!r} at L={L!r}")


def decided(a: decimal.Decimal, L: float, digits: int, slack: float) -> int | None:
    """``ceil(L ln(1 + a))`` if the ``digits``-digit computation decides it, else None.

    ``slack`` is the relative uncertainty of ``a`` itself (0 for an exact value).
    """
    if a <= 0:
        return 0 if a < 0 or slack == 0 else None
    x = decimal.Decimal(L) * (1 + a).ln()
    # Error of x: ~10 units in the last digit from the arithmetic, plus a's own
    # uncertainty times d x / d a = L / (1 + a) <= L.
    err = x.copy_abs() * decimal.Decimal(10) ** (8 - digits) + decimal.Decimal(L * slack) * a
    t = math.ceil(x)
    if x - (t - 1) > err and t - x > err:
        return int(t)
    return None


def exact_times_at(layer: SpikingSynapse, t_in: Tensor, where: Tensor) -> Tensor:
    """The reference ``T`` of the neurons at ``where`` (index rows) of ``layer`` on the input
    times ``t_in``, as float64 values."""
    L = layer.L
    if layer.kind == "avgpool":
        values, divisor = _pool_fields(layer, t_in, where)
        bias = torch.zeros(where.shape[0], dtype=torch.float64, device=values.device)
        return exact_spike_times(torch.ones_like(values), values, bias, L, divisor)
    rows = _weights(layer, t_in.device)["rows64"]
    fields = ReceptiveFields(layer, t_in, fill=-math.inf)  # padding: G = exp(-inf) = 0
    values = spike_value(fields.at(where), L, torch.float64)
    chosen = rows.index_select(0, where[:, 1])
    return exact_spike_times(chosen[:, :-1], values, chosen[:, -1], L)
