# Local credit of one meter and the relay decision that follows from it.
#
# The head-end is authoritative: it pushes (balance, reference energy). The
# board's estimate between syncs is
#     credit = balance - (cost(energy now) - cost(reference energy))
# priced on cumulative energy, so it never drifts with the polling rhythm.


def flat_cost(price_mu_per_kwh, energy_wh):
    # cumulative cost in mu of energy_wh at a flat price (floor)
    return energy_wh * price_mu_per_kwh // 1000


class Credit:
    def __init__(self):
        self.balance = None   # mu at e_ref; None until the first sync
        self.e_ref = 0        # Wh
        self.price = 0        # mu per kWh (flat)
        self.e_now = None     # last cumulative energy seen

    def sync(self, balance, e_ref):
        self.balance = balance
        self.e_ref = e_ref

    def set_price(self, price):
        self.price = price

    def update(self, energy_wh):
        self.e_now = energy_wh

    def known(self):
        return self.balance is not None

    def value(self):
        # local credit in mu, or None while never synced
        if self.balance is None:
            return None
        e = self.e_now if self.e_now is not None else self.e_ref
        if e < self.e_ref:
            e = self.e_ref
        return self.balance - (flat_cost(self.price, e) - flat_cost(self.price, self.e_ref))

    def to_state(self):
        return [self.balance, self.e_ref, self.price]

    def from_state(self, s):
        if isinstance(s, list) and len(s) == 3:
            self.balance, self.e_ref, self.price = s


def relay_wanted(credit, closed_now):
    # -> True (close), False (open) or None (leave as it is).
    v = credit.value()
    if v is None:
        return None
    if v <= 0:
        return False if closed_now else None
    return None if closed_now else True
