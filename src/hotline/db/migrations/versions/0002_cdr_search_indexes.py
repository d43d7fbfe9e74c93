"""CDR search by queue and by agent, and open calls found without a scan

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cdrs_tenant_queue", "cdrs", ["tenant_id", "final_queue", "arrived_at"])
    op.create_index("ix_cdrs_tenant_agent", "cdrs", ["tenant_id", "agent", "arrived_at"])
    op.create_index("ix_cdrs_tenant_outcome", "cdrs", ["tenant_id", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_cdrs_tenant_outcome", table_name="cdrs")
    op.drop_index("ix_cdrs_tenant_agent", table_name="cdrs")
    op.drop_index("ix_cdrs_tenant_queue", table_name="cdrs")
