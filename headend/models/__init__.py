"""SQLModel tables, one file per aggregate, each with its request (Create /
Update) and response (Public) classes. Money in mu (1/10000 currency unit),
energy in Wh, time in Unix seconds UTC: all integers."""
from .account import Account, AccountCreate, AccountPublic, Occupancy  # noqa: F401
from .alert import (AccountForecast, Alert, AlertPreference, AlertPublic, AlertRule, DeliveryAttempt,  # noqa: F401
                    Notification, Webhook)
from .apportionment import ApportionPool, ApportionRun, ApportionShare  # noqa: F401
from .audit import AuditLog, AuditLogPublic  # noqa: F401
from .base import MAX_ID, now_s  # noqa: F401
from .concentrator import Concentrator, ConcentratorCreate, ConcentratorCreated, ConcentratorPublic  # noqa: F401
from .dayend import CashDay, DayCloseIn  # noqa: F401
from .downlink import Downlink  # noqa: F401
from .event import Event, EventPublic  # noqa: F401
from .firmware import (FirmwareBundle, FirmwareBundlePublic, Rollout, RolloutBoard, RolloutBoardPublic,  # noqa: F401
                       RolloutCreate, RolloutPublic)
from .ledger import LEDGER_KINDS, LedgerEntry, LedgerEntryPublic  # noqa: F401
from .meter import Meter, MeterAccountUpdate, MeterBusErrors, MeterCreate, MeterPublic, MeterRow  # noqa: F401
from .meter_history import MeterAssignment, MeterSwap  # noqa: F401
from .payment import PaymentNotice, PaymentOrder  # noqa: F401
from .property import (Building, BuildingCreate, BuildingPublic, Organisation, OrganisationCreate,  # noqa: F401
                       OrganisationPublic, Property, PropertyCreate, PropertyPublic, Unit, UnitCreate,
                       UnitPublic)
from .property_settings import PropertySettings  # noqa: F401
from .reading import Reading, ReadingPublic  # noqa: F401
from .rollup import Rollup, RollupMark  # noqa: F401
from .receipt import Receipt, ReceiptCounter, ReceiptPublic  # noqa: F401
from .statement import Statement, StatementRun  # noqa: F401
from .tariff import Tariff, TariffPublic  # noqa: F401
from .theft import TheftScan  # noqa: F401
from .tenant import Tenant, TenantCreate, TenantPublic  # noqa: F401
from .user import (ApiToken, ApiTokenCreate, ApiTokenCreated, ApiTokenPublic, AuthSession,  # noqa: F401
                   PasswordChange, TokenResponse, User, UserCreate, UserGrant, UserPublic, UserUpdate)
