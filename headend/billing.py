"""Billing arithmetic for the head-end.

Flat price for now:  cost(E_wh) = E_wh * price_mu_per_kwh // 1000  and a
charge is cost(new) - cost(old), so charging a kWh in one step or in a
thousand gives the same total (chunk-invariant). This is the one place to
switch to concentrator.tariff (the board's own arithmetic) later.
"""


def cost_mu(energy_wh, price_mu_per_kwh):
    return energy_wh * price_mu_per_kwh // 1000


def charge_mu(tariff, old_wh, new_wh, old_bands=None, new_bands=None, ts=None):
    """Money (mu, >= 0) for the consumption between two cumulative readings."""
    price = tariff.price_mu_per_kwh if tariff is not None else 0
    return cost_mu(new_wh, price) - cost_mu(old_wh, price)


def tariff_spec(tariff):
    """The `spec` pushed to boards in a `tariff` message, or None when the
    tariff has none (the board then keeps its configured tariff)."""
    if tariff is None or not tariff.spec:
        return None
    return tariff.spec
