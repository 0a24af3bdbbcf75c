"""Splitting an integer amount (mu, Wh) among weighted parts so that the
shares add up to the amount exactly (the largest-remainder method).

The rule, for `total` split by integer weights w_i (W = Σ w_i):

1. each part gets floor(total × w_i / W);
2. the remainder R = total − Σ floors (0 <= R < number of parts with w_i > 0)
   goes one unit each to the R parts with the largest fractional part
   (total × w_i mod W), ties broken by the part's key, smallest first
   (apportionment keys are (unit id, account id, from)).

Integers only: no part ever gets a fraction, the result does not depend on
the order the parts were given in, and a part of weight 0 gets 0."""


def largest_remainder(total, parts):
    """parts: [(key, weight)] with integer weights >= 0 and distinct,
    comparable keys -> {key: share}, Σ shares == total when Σ weights > 0
    (else every share is 0)."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError("total must be an integer >= 0")
    weights = {}
    for key, w in parts:
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ValueError("weights must be integers >= 0")
        if key in weights:
            raise ValueError("duplicate part %r" % (key,))
        weights[key] = w
    whole = sum(weights.values())
    if whole == 0:
        return {k: 0 for k in weights}
    out, rems = {}, []
    for key, w in weights.items():
        q, r = divmod(total * w, whole)
        out[key] = q
        if w:
            rems.append((-r, key))
    rest = total - sum(out.values())
    rems.sort()
    for _r, key in rems[:rest]:
        out[key] += 1
    return out
