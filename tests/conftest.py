"""Shared fixtures: the databases the server runs on (SQLite, and a real PostgreSQL cluster
started for the session from Debian's postgresql package, installed by ``make test``)."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    def __init__(self, bindir: Path, datadir: Path, port: int, as_user: list[str]) -> None:
        self.bindir = bindir
        self.datadir = datadir
        self.port = port
        self.as_user = as_user
        self._names = itertools.count(1)

    def url(self, database: str) -> str:
        return f"postgresql://hotline@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"hotline_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=hotline dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m",
             "immediate", "stop"],
            check=False, capture_output=True,
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        pytest.fail("PostgreSQL is not installed: `make test` installs Debian's postgresql")
    bindir = Path(bins[-1])
    root = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    datadir = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the package's postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(datadir), "-U", "hotline", "-A", "trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-l",
         str(root / "log"), "-w", "start"],
        check=True, capture_output=True,
    )
    cluster = PostgresCluster(bindir, datadir, port, as_user)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each server test runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hotline.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()
