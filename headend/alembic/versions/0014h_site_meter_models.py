"""The site's meter models (property_settings.meter_models, issue 14).

Revision ID: 0014h
Revises: 0011c
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0014h"
down_revision = "0011c"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("property_settings") as b:
        b.add_column(sa.Column("meter_models", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("property_settings") as b:
        b.drop_column("meter_models")
