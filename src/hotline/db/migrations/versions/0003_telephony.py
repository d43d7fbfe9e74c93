"""telephony: agents' phone accounts, trunks, inbound routes, and the recording of a CDR

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "phone_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("ha1_md5", sa.String(length=32), nullable=False),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _tenant_fk("phone_accounts"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "agent"],
            ["agents.tenant_id", "agents.code"],
            name="fk_phone_accounts_agent_agents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_accounts")),
        sa.UniqueConstraint("tenant_id", "agent", name="uq_phone_accounts_tenant_agent"),
        sa.UniqueConstraint("username", name=op.f("uq_phone_accounts_username")),
    )
    op.create_table(
        "trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("allow", sa.JSON(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("ha1_md5", sa.String(length=32), nullable=True),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _tenant_fk("trunks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunks")),
        sa.UniqueConstraint("tenant_id", "code", name="uq_trunks_tenant_code"),
        sa.UniqueConstraint("username", name=op.f("uq_trunks_username")),
    )
    op.create_table(
        "inbound_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("did", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _tenant_fk("inbound_routes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_routes")),
        sa.UniqueConstraint("did", name=op.f("uq_inbound_routes_did")),
    )
    # A nullable column: SQLite adds it in place, no table copy.
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.drop_column("recording")
    op.drop_table("inbound_routes")
    op.drop_table("trunks")
    op.drop_table("phone_accounts")
