"""supervisor phones: a phone account belongs to an agent or to a user (a supervisor, whose
phone is called to listen to, coach, join or take over a call)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

AGENT_OR_USER = '(agent IS NULL) <> ("user" IS NULL)'


def upgrade() -> None:
    with op.batch_alter_table("phone_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user", sa.String(length=64), nullable=True))
        batch_op.alter_column("agent", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_unique_constraint("uq_phone_accounts_tenant_user", ["tenant_id", "user"])
        batch_op.create_check_constraint("ck_phone_accounts_agent_or_user", AGENT_OR_USER)
        batch_op.create_foreign_key("fk_phone_accounts_user_users", "users",
                                    ["tenant_id", "user"], ["tenant_id", "username"],
                                    ondelete="CASCADE")


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM phone_accounts WHERE agent IS NULL"))
    with op.batch_alter_table("phone_accounts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_phone_accounts_user_users", type_="foreignkey")
        batch_op.drop_constraint("ck_phone_accounts_agent_or_user", type_="check")
        batch_op.drop_constraint("uq_phone_accounts_tenant_user", type_="unique")
        batch_op.alter_column("agent", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("user")
