"""Firmware bundles and their rollouts to the boards (OTA, docs/protocol.md
"Firmware update"): one board first, then a share, then all; each board's
state as it reports it; a rollout stops when boards fail their health check."""
from typing import Any, Optional

from sqlalchemy import JSON, Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

# rollout states
RUNNING, PAUSED, STOPPED, DONE = "running", "paused", "stopped", "done"
# board states (what the board reports, plus "offered" and "failed" of ours)
BOARD_DONE = ("confirmed",)
BOARD_FAILED = ("rolled_back", "refused", "failed")


class FirmwareBundle(SQLModel, table=True):
    __tablename__ = "firmware_bundle"
    id: str = Field(primary_key=True, max_length=16)     # ota_format.bundle_id(manifest)
    fw: str = Field(max_length=40)                         # the version it carries
    manifest: str = Field(sa_column=Column(Text, nullable=False))
    data: bytes = Field(sa_type=LargeBinary)
    size: int = big()
    created_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created: int = big(default_factory=now_s)


class Rollout(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    bundle_id: str = Field(foreign_key="firmware_bundle.id", index=True, max_length=16)
    property_id: int = Field(foreign_key="property.id", index=True)
    stages: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))   # [1, "10%", "100%"]
    stage: int = 0                                         # index in stages
    state: str = Field(default=RUNNING, max_length=16)
    max_failures_first: int = 0                            # failures allowed in the first stage
    max_failure_pct: int = 5                               # after it, % of the boards offered
    health_s: int = 120
    chunk: int = 4096
    why: str = Field(default="", max_length=500)           # why it stopped
    created_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created: int = big(default_factory=now_s)
    updated: int = big(default_factory=now_s)


class RolloutBoard(SQLModel, table=True):
    __tablename__ = "rollout_board"
    __table_args__ = (UniqueConstraint("rollout_id", "concentrator_id", name="uq_rollout_board"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", index=True)
    concentrator_id: int = Field(foreign_key="concentrator.id", index=True)
    stage: int = 0
    state: str = Field(default="offered", max_length=16)
    next_chunk: int = 0
    why: str = Field(default="", max_length=200)
    fw_before: Optional[str] = Field(default=None, max_length=40)
    updated: int = big(default_factory=now_s)


class RolloutCreate(Body):
    bundle_id: str = Field(min_length=16, max_length=16, schema_extra={"pattern": "^[0-9a-f]{16}$"})
    property_id: int = Field(ge=1, le=2 ** 31 - 1)
    stages: list[Any] = Field(default_factory=lambda: [1, "10%", "100%"], max_length=10,
                              description='boards per stage: a count (1) or a share ("10%"); the last is "100%"')
    health_s: int = Field(default=120, ge=10, le=3600)
    chunk: int = Field(default=4096, ge=512, le=4096)
    max_failures_first: int = Field(default=0, ge=0, le=1000)
    max_failure_pct: int = Field(default=5, ge=0, le=100)


class RolloutBoardPublic(SQLModel):
    concentrator_id: int
    dev: str
    fw: Optional[str]
    stage: int
    state: str
    next_chunk: int
    why: str
    fw_before: Optional[str]
    updated: int


class RolloutPublic(SQLModel):
    id: int
    bundle_id: str
    fw: str
    property_id: int
    stages: list[Any]
    stage: int
    state: str
    why: str
    health_s: int
    created: int
    updated: int
    boards: list[RolloutBoardPublic] = []


class FirmwareBundlePublic(SQLModel):
    id: str
    fw: str
    size: int
    files: int
    created: int
