"""Shared fixtures: a Postgres server, a migrated template, a fresh database per test.

The server is TEST_DATABASE_URL or DATABASE_URL when set (any server: tests only
create and drop databases of their own), else the embedded Postgres under .data/.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from db import migrate
from db.pool import Database


def _server_url() -> str:
    explicit = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if explicit:
        return explicit
    from db.embedded import start_server

    server = start_server(os.environ.get("SMSGW_DATA_DIR") or ".data/pg")
    _SERVERS.append(server)
    return str(server.get_uri("postgres"))


_SERVERS: list[object] = []


def url_for(server_url: str, dbname: str) -> str:
    """The same server, another database."""
    return make_conninfo(server_url, dbname=dbname)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    return _server_url()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    name = f"smsgw_tpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate.migrate(url_for(pg_server_url, name))
    yield name
    _drop(pg_server_url, name)


def create_database(server_url: str, template: str) -> str:
    """A new database cloned from ``template``; returns its name."""
    name = f"smsgw_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        version = conn.info.server_version
        strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
    return name


def _drop(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database that only this test uses."""
    name = create_database(pg_server_url, template_db)
    yield url_for(pg_server_url, name)
    _drop(pg_server_url, name)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh database with no schema at all."""
    name = f"smsgw_e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url_for(pg_server_url, name)
    _drop(pg_server_url, name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    pool = Database(database_url, max_size=10, application_name="smsgw-test")
    yield pool
    pool.close()


# -- the sandbox ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _simulators() -> Iterator[tuple[object, object]]:
    from sandbox import cxone_sim, twilio_sim
    from sandbox.server import serve_in_thread
    from tests.harness import CxoneSandbox, TwilioSandbox

    cx = serve_in_thread(cxone_sim.create_app(cxone_sim.CxoneSimConfig()))
    tw = serve_in_thread(twilio_sim.create_app(twilio_sim.TwilioSimConfig(step_delay_s=0.02)))
    yield CxoneSandbox(cx), TwilioSandbox(tw)
    cx.stop()
    tw.stop()


@pytest.fixture
def cxone(_simulators):
    """The CXone simulator, reset for this test."""
    sim = _simulators[0]
    sim.reset()
    sim.delete("/_sandbox/faults")
    return sim


@pytest.fixture
def twilio(_simulators):
    """The Twilio simulator, reset for this test (callbacks every 20 ms)."""
    sim = _simulators[1]
    sim.reset()
    sim.configure(step_delay_s=0.02, inbound_url=None)
    return sim


@pytest.fixture(scope="session")
def _dfo_simulator() -> Iterator[object]:
    from sandbox import dfo_sim
    from sandbox.server import serve_in_thread
    from tests.harness import DfoSandbox

    server = serve_in_thread(dfo_sim.create_app(dfo_sim.DfoSimConfig()))
    yield DfoSandbox(server)
    server.stop()


@pytest.fixture
def dfo(_dfo_simulator):
    """The DFO 3.0 simulator, reset for this test (faults, limits and config included)."""
    _dfo_simulator.reset()
    return _dfo_simulator


@pytest.fixture
def processes() -> Iterator[list]:
    """Gateway processes started by the test; all stopped at the end (logs kept on failure)."""
    started: list = []
    yield started
    for proc in started:
        if proc.alive():
            try:
                proc.terminate(timeout=15)
            except Exception:  # a stuck process must not hide the test's own failure
                proc.kill9()
