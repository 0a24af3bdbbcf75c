"""Head-end 0.1: the schema its create_all made (baseline).

A database of head-end 0.1 has these tables and no alembic_version; it is
stamped at this revision (core.migrate) and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tz_offset_s', sa.Integer(), nullable=False),
    sa.Column('tariff_name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_site_name'), 'site', ['name'], unique=True)
    op.create_table('concentrator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dev', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('key_hex', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_up_n', sa.BigInteger(), nullable=False),
    sa.Column('last_down_n', sa.BigInteger(), nullable=False),
    sa.Column('key_next_hex', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('rekey_nonce', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('rekey_started', sa.BigInteger(), nullable=True),
    sa.Column('acked_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seen', sa.BigInteger(), nullable=True),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('fw', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('boot', sa.Integer(), nullable=True),
    sa.Column('journal_last', sa.BigInteger(), nullable=True),
    sa.Column('pending', sa.Integer(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_concentrator_dev'), 'concentrator', ['dev'], unique=True)
    op.create_index(op.f('ix_concentrator_site_id'), 'concentrator', ['site_id'], unique=False)
    op.create_table('tariff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective', sa.BigInteger(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('price_mu_per_kwh', sa.BigInteger(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_tariff_site_id'), 'tariff', ['site_id'], unique=False)
    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('balance_mu', sa.BigInteger(), nullable=False),
    sa.Column('low_balance_threshold_mu', sa.BigInteger(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariff.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_account_site_id'), 'account', ['site_id'], unique=False)
    op.create_table('ledgerentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('amount_mu', sa.BigInteger(), nullable=False),
    sa.Column('balance_after_mu', sa.BigInteger(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_ledgerentry_account_id'), 'ledgerentry', ['account_id'], unique=False)
    op.create_table('meter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('concentrator_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('meter_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('billed_seq', sa.BigInteger(), nullable=True),
    sa.Column('billed_energy_wh', sa.BigInteger(), nullable=True),
    sa.Column('billed_ts', sa.BigInteger(), nullable=True),
    sa.Column('tariff_state', sa.JSON(), nullable=True),
    sa.Column('board_charged_mu', sa.BigInteger(), nullable=True),
    sa.Column('last_seq', sa.BigInteger(), nullable=True),
    sa.Column('last_energy_wh', sa.BigInteger(), nullable=True),
    sa.Column('last_power_w', sa.BigInteger(), nullable=True),
    sa.Column('last_ts', sa.BigInteger(), nullable=True),
    sa.Column('relay_closed', sa.Boolean(), nullable=True),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('local_credit_mu', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['concentrator_id'], ['concentrator.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('concentrator_id', 'index', name='uq_meter_conc_index')
    )
    op.create_index(op.f('ix_meter_account_id'), 'meter', ['account_id'], unique=False)
    op.create_index(op.f('ix_meter_concentrator_id'), 'meter', ['concentrator_id'], unique=False)
    op.create_index(op.f('ix_meter_meter_id'), 'meter', ['meter_id'], unique=True)
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('concentrator_id', sa.Integer(), nullable=True),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('meter_index', sa.Integer(), nullable=True),
    sa.Column('meter_id', sa.Integer(), nullable=True),
    sa.Column('code', sa.Integer(), nullable=False),
    sa.Column('detail', sa.Integer(), nullable=True),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('received', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['concentrator_id'], ['concentrator.id'], ),
    sa.ForeignKeyConstraint(['meter_id'], ['meter.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('concentrator_id', 'seq', name='uq_event_conc_seq')
    )
    op.create_index(op.f('ix_event_concentrator_id'), 'event', ['concentrator_id'], unique=False)
    op.create_table('reading',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('concentrator_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('meter_index', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=True),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('energy_wh', sa.BigInteger(), nullable=False),
    sa.Column('power_w', sa.BigInteger(), nullable=False),
    sa.Column('flags', sa.Integer(), nullable=False),
    sa.Column('bands', sa.JSON(), nullable=False),
    sa.Column('charged_mu', sa.BigInteger(), nullable=True),
    sa.Column('billed_mu', sa.BigInteger(), nullable=True),
    sa.Column('billed', sa.Boolean(), nullable=False),
    sa.Column('received', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['concentrator_id'], ['concentrator.id'], ),
    sa.ForeignKeyConstraint(['meter_id'], ['meter.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('concentrator_id', 'seq', name='uq_reading_conc_seq')
    )
    op.create_index(op.f('ix_reading_concentrator_id'), 'reading', ['concentrator_id'], unique=False)
    op.create_index(op.f('ix_reading_meter_id'), 'reading', ['meter_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_reading_meter_id'), table_name='reading')
    op.drop_index(op.f('ix_reading_concentrator_id'), table_name='reading')
    op.drop_table('reading')
    op.drop_index(op.f('ix_event_concentrator_id'), table_name='event')
    op.drop_table('event')
    op.drop_index(op.f('ix_meter_meter_id'), table_name='meter')
    op.drop_index(op.f('ix_meter_concentrator_id'), table_name='meter')
    op.drop_index(op.f('ix_meter_account_id'), table_name='meter')
    op.drop_table('meter')
    op.drop_index(op.f('ix_ledgerentry_account_id'), table_name='ledgerentry')
    op.drop_table('ledgerentry')
    op.drop_index(op.f('ix_account_site_id'), table_name='account')
    op.drop_table('account')
    op.drop_index(op.f('ix_tariff_site_id'), table_name='tariff')
    op.drop_table('tariff')
    op.drop_index(op.f('ix_concentrator_site_id'), table_name='concentrator')
    op.drop_index(op.f('ix_concentrator_dev'), table_name='concentrator')
    op.drop_table('concentrator')
    op.drop_index(op.f('ix_site_name'), table_name='site')
    op.drop_table('site')
