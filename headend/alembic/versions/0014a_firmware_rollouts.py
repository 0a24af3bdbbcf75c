"""Firmware bundles and rollouts (OTA, issue 14).

Revision ID: 0014a
Revises: 0014
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014a"
down_revision = "0014"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade():
    op.create_table(
        "firmware_bundle",
        sa.Column("id", S(length=16), nullable=False),
        sa.Column("fw", S(length=40), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bundle_id", S(length=16), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("state", S(length=16), nullable=False),
        sa.Column("max_failures_first", sa.Integer(), nullable=False),
        sa.Column("max_failure_pct", sa.Integer(), nullable=False),
        sa.Column("health_s", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("why", S(length=500), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["bundle_id"], ["firmware_bundle.id"]),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_rollout_bundle_id"), "rollout", ["bundle_id"], unique=False)
    op.create_index(op.f("ix_rollout_property_id"), "rollout", ["property_id"], unique=False)
    op.create_table(
        "rollout_board",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("concentrator_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("state", S(length=16), nullable=False),
        sa.Column("next_chunk", sa.Integer(), nullable=False),
        sa.Column("why", S(length=200), nullable=False),
        sa.Column("fw_before", S(length=40), nullable=True),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["concentrator_id"], ["concentrator.id"]),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rollout_id", "concentrator_id", name="uq_rollout_board"))
    op.create_index(op.f("ix_rollout_board_concentrator_id"), "rollout_board", ["concentrator_id"], unique=False)
    op.create_index(op.f("ix_rollout_board_rollout_id"), "rollout_board", ["rollout_id"], unique=False)


def downgrade():
    op.drop_table("rollout_board")
    op.drop_table("rollout")
    op.drop_table("firmware_bundle")
