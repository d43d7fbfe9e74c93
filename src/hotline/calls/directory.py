"""Who may talk SIP to Hotline, read from the database: phone accounts, trunks, DID routes.

Lookups happen on every REGISTER and INVITE, so the directory is a few dicts rebuilt whenever
the API changes one of those tables (``Switch.reload``), never a query per message.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.db.schema import InboundRoute, PhoneAccount, Tenant, Trunk

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Account:
    """Something that authenticates with digest: an agent's phone or a trunk."""

    username: str
    tenant_id: int
    ha1: dict[str, str]  # algorithm -> HA1
    agent: str | None = None  # phones
    trunk: str | None = None  # trunks


@dataclass(frozen=True, slots=True)
class TrunkEntry:
    tenant_id: int
    code: str
    networks: tuple[IPNetwork, ...]


@dataclass
class Directory:
    accounts: dict[str, Account] = field(default_factory=dict)
    phones: dict[tuple[int, str], str] = field(default_factory=dict)  # (tenant, agent) -> user
    trunks: list[TrunkEntry] = field(default_factory=list)
    routes: dict[str, tuple[int, str]] = field(default_factory=dict)  # did -> (tenant, queue)
    tenant_slugs: dict[int, str] = field(default_factory=dict)
    trusted_hosts: set[str] = field(default_factory=set)  # single-address allow-list entries
    phone_login: set[int] = field(default_factory=set)  # tenants whose phones log agents in

    @classmethod
    def load(cls, db: Session) -> Directory:
        d = cls()
        for tenant in db.scalars(select(Tenant)):
            d.tenant_slugs[tenant.id] = tenant.slug
            if (tenant.settings or {}).get("phone_login"):
                d.phone_login.add(tenant.id)
        for p in db.scalars(select(PhoneAccount)):
            d.accounts[p.username] = Account(
                p.username, p.tenant_id, {"MD5": p.ha1_md5, "SHA-256": p.ha1_sha256}, agent=p.agent
            )
            d.phones[(p.tenant_id, p.agent)] = p.username
        for t in db.scalars(select(Trunk).where(Trunk.active.is_(True))):
            nets = tuple(ipaddress.ip_network(n, strict=False) for n in t.allow or ())
            if nets:
                d.trunks.append(TrunkEntry(t.tenant_id, t.code, nets))
                for net in nets:
                    if net.num_addresses == 1:
                        d.trusted_hosts.add(str(net.network_address))
            if t.username and t.ha1_md5 and t.ha1_sha256:
                d.accounts[t.username] = Account(
                    t.username, t.tenant_id, {"MD5": t.ha1_md5, "SHA-256": t.ha1_sha256},
                    trunk=t.code,
                )
        for r in db.scalars(select(InboundRoute)):
            d.routes[r.did] = (r.tenant_id, r.queue)
        return d

    def trunk_for(self, host: str, tenant_id: int | None) -> TrunkEntry | None:
        """The tenant's trunk whose allow-list has ``host`` (the most specific network wins).
        Only the tenant that owns the dialled number is asked: another tenant's allow-list
        must not claim its calls."""
        if tenant_id is None:
            return None
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return None
        best: tuple[int, TrunkEntry] | None = None
        for trunk in self.trunks:
            if trunk.tenant_id != tenant_id:
                continue
            for net in trunk.networks:
                if (addr.version == net.version and addr in net
                        and (best is None or net.prefixlen > best[0])):
                    best = (net.prefixlen, trunk)
        return best[1] if best else None

    def ha1(self, username: str, algorithm: str) -> str | None:
        account = self.accounts.get(username)
        return None if account is None else account.ha1.get(algorithm)
