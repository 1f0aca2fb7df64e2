"""Small statistics shared by the runtime (the admin dashboard's KPIs) and the eval report, so both compute a
figure such as p95 latency with one formula; it lives in the runtime package because the runtime must not
depend on evals/."""

from __future__ import annotations


def percentile(values, q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
