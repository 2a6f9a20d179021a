"""Fixtures of the web-app tests: settings and a test client on a fresh database."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import create_app
from app.config import Settings
from app.services import Services
from db.pool import Database
from tests.webapp import gateway_settings


@pytest.fixture
def settings() -> Settings:
    return gateway_settings()


@pytest.fixture
def client(settings, database_url):
    services = Services(settings=settings, db=Database(database_url, max_size=4))
    app = create_app(services=services)
    yield app.test_client()
    services.close()


@pytest.fixture
def tls_server(tmp_path):
    """A local HTTPS server with a self-signed certificate valid for 10 days."""
    import datetime as dt

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost",
                         not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=10))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
