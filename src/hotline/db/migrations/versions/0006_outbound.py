"""outbound calls: a trunk's outbound address and caller id; CDRs know their direction

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbound", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("caller_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("direction", sa.String(length=8), nullable=False,
                                      server_default="inbound"))


def downgrade() -> None:
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.drop_column("direction")
    with op.batch_alter_table("trunks", schema=None) as batch_op:
        batch_op.drop_column("caller_id")
        batch_op.drop_column("outbound")
