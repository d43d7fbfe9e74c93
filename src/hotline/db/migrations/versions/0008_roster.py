"""roster: published activities per agent, for adherence

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roster_activities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_roster_activities_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_activities")),
    )
    op.create_index("ix_roster_tenant_starts", "roster_activities", ["tenant_id", "starts_at"])
    op.create_index("ix_roster_tenant_agent_starts", "roster_activities",
                    ["tenant_id", "agent", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_roster_tenant_agent_starts", table_name="roster_activities")
    op.drop_index("ix_roster_tenant_starts", table_name="roster_activities")
    op.drop_table("roster_activities")
