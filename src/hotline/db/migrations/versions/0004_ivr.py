"""ivr: flows (versioned), prompts (audio in the database), emergency announcements, routes to
a flow with a starting language, and the index that lists voicemails from the events

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VOICEMAIL_WHERE = "type = 'voicemail_left'"
QUEUE_OR_FLOW = "(queue IS NULL) <> (flow IS NULL)"


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "ivr_flows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _tenant_fk("ivr_flows"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_flows")),
        sa.UniqueConstraint(
            "tenant_id", "code", "version", name="uq_ivr_flows_tenant_code_version"
        ),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("audio", sa.LargeBinary(), nullable=False),
        sa.Column("engine", sa.String(length=200), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        _tenant_fk("prompts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint(
            "tenant_id", "code", "language", name="uq_prompts_tenant_code_language"
        ),
    )
    op.create_table(
        "emergency_announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        _tenant_fk("emergency_announcements"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_announcements")),
        sa.UniqueConstraint(
            "tenant_id",
            "scope",
            "target",
            name="uq_emergency_announcements_tenant_scope_target",
        ),
    )
    # Routes in use keep their queue and start in Chinese. Making ``queue`` nullable and
    # adding the check copies the (small) table on SQLite; PostgreSQL alters it in place.
    with op.batch_alter_table("inbound_routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flow", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("language", sa.String(length=8), nullable=False, server_default="zh")
        )
        batch_op.alter_column("queue", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_check_constraint("ck_inbound_routes_queue_or_flow", QUEUE_OR_FLOW)
    op.create_index(
        "ix_events_tenant_voicemails",
        "events",
        ["tenant_id", "ts"],
        unique=False,
        sqlite_where=sa.text(VOICEMAIL_WHERE),
        postgresql_where=sa.text(VOICEMAIL_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_events_tenant_voicemails", table_name="events")
    # A route to a flow has no queue to go back to: it goes.
    op.execute(sa.text("DELETE FROM inbound_routes WHERE queue IS NULL"))
    with op.batch_alter_table("inbound_routes", schema=None) as batch_op:
        batch_op.drop_constraint("ck_inbound_routes_queue_or_flow", type_="check")
        batch_op.alter_column("queue", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("language")
        batch_op.drop_column("flow")
    op.drop_table("emergency_announcements")
    op.drop_table("prompts")
    op.drop_table("ivr_flows")
