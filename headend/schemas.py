"""Request bodies of the REST API (pydantic). Money: int mu or an exact
decimal string; never a float."""
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from .ledger import LedgerError, parse_amount

MAX_MU = 10 ** 13   # 1e9 currency units: anything above is a typo


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteIn(_Body):
    name: StrictStr = Field(min_length=1, max_length=100)
    tz_offset_s: StrictInt = Field(default=28800, ge=-14 * 3600, le=14 * 3600)


class ConcentratorIn(_Body):
    site_id: StrictInt
    dev: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    key_hex: Optional[StrictStr] = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$",
                                         description="32-byte key as hex; generated when omitted")


class MeterIn(_Body):
    concentrator_id: StrictInt
    meter_id: StrictStr = Field(min_length=1, max_length=64)
    model: StrictStr = ""
    index: Optional[StrictInt] = Field(default=None, ge=0, le=255)
    account_id: Optional[StrictInt] = None
    opening_energy_wh: Optional[StrictInt] = Field(default=None, ge=0,
                                                   description="register at commissioning (Wh): billing baseline")


class MeterAccountIn(_Body):
    account_id: Optional[StrictInt]


class AccountIn(_Body):
    site_id: StrictInt
    tenant: StrictStr = Field(min_length=1, max_length=200)
    low_balance_threshold_mu: StrictInt = Field(default=0, ge=0, le=MAX_MU)
    tariff_id: Optional[StrictInt] = None


class TariffIn(_Body):
    """A tariff (or a new version of tariff `name` when it exists): a full
    version spec (docs/tariffs.md) or, for a flat tariff, price_mu_per_kwh."""
    site_id: StrictInt
    name: StrictStr = Field(min_length=1, max_length=100)
    kind: Optional[StrictStr] = Field(default=None, pattern="^flat$",
                                      description="legacy: only 'flat' (with price_mu_per_kwh)")
    price_mu_per_kwh: Optional[StrictInt] = Field(default=None, ge=0, le=10 ** 9)
    effective: StrictInt = Field(default=0, ge=0, description="Unix seconds from which it applies")
    spec: Optional[dict[str, Any]] = Field(default=None, description="one version spec (docs/tariffs.md)")
    site_default: bool = Field(default=True, description="the site's boards get this tariff")

    @model_validator(mode="after")
    def _one_price(self):
        if (self.spec is None) == (self.price_mu_per_kwh is None):
            raise ValueError("give exactly one of spec (a tariff version, docs/tariffs.md) or price_mu_per_kwh")
        return self


class TariffVersionIn(_Body):
    """A new version of an existing tariff, from `effective` on (normally a
    future local midnight)."""
    spec: Optional[dict[str, Any]] = None
    price_mu_per_kwh: Optional[StrictInt] = Field(default=None, ge=0, le=10 ** 9)
    effective: Optional[StrictInt] = Field(default=None, ge=0, description="Unix seconds (or in spec)")

    @model_validator(mode="after")
    def _one_price(self):
        if (self.spec is None) == (self.price_mu_per_kwh is None):
            raise ValueError("give exactly one of spec or price_mu_per_kwh")
        if self.effective is None and not (self.spec and "effective" in self.spec):
            raise ValueError("give 'effective' (Unix seconds) for the new version")
        return self


class _Actor(_Body):
    actor: StrictStr = Field(min_length=1, max_length=100, description="staff member who asks")

    @model_validator(mode="after")
    def _actor(self):
        if not self.actor.strip():
            raise ValueError("actor must not be blank")
        return self


class OverrideIn(_Actor):
    state: Literal["open", "closed", "auto"]
    until: Optional[StrictInt] = Field(default=None, ge=0, description="Unix seconds; required for open/closed")

    @model_validator(mode="after")
    def _until(self):
        if self.state != "auto" and self.until is None:
            raise ValueError("an override to %r needs 'until' (Unix seconds)" % self.state)
        return self


class RekeyIn(_Actor):
    force: bool = Field(default=False, description="replace a rekey that is still pending")


class PolicyIn(_Actor):
    m: Optional[StrictInt] = Field(default=None, ge=0, le=255, description="meter index; absent: every meter")
    policy: dict[str, Any]


class RechargeIn(_Body):
    amount_mu: Optional[StrictInt] = Field(default=None, description="amount in mu (1/10000 unit), > 0")
    amount: Optional[StrictStr] = Field(default=None, description='decimal string in currency units, e.g. "50.00"')
    actor: StrictStr = Field(min_length=1, max_length=100, description="staff member or system that takes the money")
    note: StrictStr = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _one_amount(self):
        if (self.amount_mu is None) == (self.amount is None):
            raise ValueError("give exactly one of amount_mu (int mu) or amount (decimal string)")
        if self.amount is not None:
            try:
                self.amount_mu = parse_amount(self.amount)
            except LedgerError as e:
                raise ValueError(str(e))
        if self.amount_mu <= 0:
            raise ValueError("a recharge must be positive")
        if self.amount_mu > MAX_MU:
            raise ValueError("amount too large")
        if not self.actor.strip():
            raise ValueError("actor must not be blank")
        return self
