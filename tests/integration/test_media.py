"""app.media against real local HTTP(S) servers; storage and /media/<token> on real Postgres."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import trustme
from flask import Flask, Response, redirect, request
from werkzeug.serving import make_server

from app.media import Fetched, MediaPolicy, MediaRejected, fetch, fetch_all, public_url, store
from app.media_routes import bp as media_bp
from app.media_rules import TWILIO_FORMATTED_TYPES, parse_target
from db import media as db_media
from db.pool import Database
from sandbox.server import RunningServer, serve_in_thread

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
MB = 1024 * 1024


@dataclass
class Origin:
    """A local file server and what it was asked: (path, Host, Authorization) per request."""

    server: RunningServer
    seen: list[tuple[str, str, str | None]]

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    @property
    def entry(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def origin_app(seen: list) -> Flask:
    app = Flask("origin")

    @app.before_request
    def record() -> None:
        seen.append((request.path, request.headers.get("Host", ""),
                     request.headers.get("Authorization")))

    @app.get("/photo.png")
    def photo() -> Response:
        return Response(PNG, content_type="image/png; charset=binary")

    @app.get("/blob/<int:size>")
    def blob(size: int) -> Response:
        return Response(b"\xff" * size, content_type="image/jpeg")

    @app.get("/empty")
    def empty() -> Response:
        return Response(b"", content_type="image/jpeg")

    @app.get("/page.html")
    def page() -> Response:
        return Response("<script>x</script>", content_type="text/html")

    @app.get("/missing")
    def missing() -> tuple[str, int]:
        return "no", 404

    @app.get("/go")
    def go() -> Response:
        return redirect(request.args["to"], code=int(request.args.get("code", 302)))

    @app.get("/stream/<int:size>")
    def stream(size: int) -> Response:  # no Content-Length: only the reader can stop it
        def chunks() -> Iterator[bytes]:
            for _ in range(size // 65536):
                yield b"\0" * 65536
        return Response(chunks(), content_type="image/gif")

    @app.get("/declared/<int:size>")
    def declared(size: int) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"\0" * 1024  # then nothing: a reader that trusts the header would hang
            time.sleep(5)
        response = Response(chunks(), content_type="image/gif")
        response.headers["Content-Length"] = str(size)
        return response

    @app.get("/slow")
    def slow() -> Response:
        time.sleep(3)
        return Response(PNG, content_type="image/png")

    @app.get("/drip")
    def drip() -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(50):
                yield b"x"
                time.sleep(0.1)
        return Response(chunks(), content_type="image/png")

    return app


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Origin, Origin]]:
    made = []
    for _ in range(2):
        seen: list = []
        made.append(Origin(serve_in_thread(origin_app(seen)), seen))
    yield made[0], made[1]
    for origin in made:
        origin.server.stop()


@pytest.fixture
def a(servers) -> Origin:
    servers[0].seen.clear()
    return servers[0]


@pytest.fixture
def b(servers) -> Origin:
    servers[1].seen.clear()
    return servers[1]


def policy(*origins: Origin, **overrides) -> MediaPolicy:
    settings = {"allow_private": True, "timeout_s": 5.0, **overrides}
    return MediaPolicy(frozenset(o.entry for o in origins), **settings)


def rejected(reason_part: str, call, *args, **kwargs) -> MediaRejected:
    with pytest.raises(MediaRejected) as info:
        call(*args, **kwargs)
    assert reason_part in info.value.reason, info.value.reason
    assert info.value.code == "media_rejected"
    return info.value


# -- fetching -----------------------------------------------------------------------------

def test_allowed_host_gives_same_bytes_and_type(a: Origin) -> None:
    got = fetch(a.url("/photo.png"), policy(a))
    assert got == Fetched("image/png", PNG, a.url("/photo.png"))


def test_host_not_allowed_is_refused_before_any_request(a: Origin, b: Origin) -> None:
    rejected(f"host not allowed: http://127.0.0.1:{a.server.port}",
             fetch, a.url("/photo.png"), policy(b))
    assert a.seen == []


def test_bare_host_entry_means_https_on_443_only(a: Origin) -> None:
    only_host = MediaPolicy(frozenset({"127.0.0.1"}), allow_private=True)
    rejected("host not allowed", fetch, a.url("/photo.png"), only_host)
    with_port = MediaPolicy(frozenset({f"127.0.0.1:{a.server.port}"}), allow_private=True)
    rejected("host not allowed", fetch, a.url("/photo.png"), with_port)  # https only
    assert a.seen == []


def test_redirect_to_another_port_on_127_0_0_1_is_refused(a: Origin, b: Origin) -> None:
    url = a.url(f"/go?to={b.url('/photo.png')}")
    rejected(f"redirect to a host not allowed: http://127.0.0.1:{b.server.port}",
             fetch, url, policy(a))
    assert [p for p, _, _ in a.seen] == ["/go"] and b.seen == []


def test_redirect_within_the_allowlist_is_followed(a: Origin, b: Origin) -> None:
    for code in (301, 302, 303, 307, 308):
        got = fetch(a.url(f"/go?code={code}&to={b.url('/photo.png')}"), policy(a, b))
        assert got.data == PNG


def test_private_address_is_refused_unless_allowed(a: Origin) -> None:
    rejected("private address: 127.0.0.1 is 127.0.0.1",
             fetch, a.url("/photo.png"), policy(a, allow_private=False))
    assert a.seen == []


def test_name_resolving_to_a_private_address_is_refused(a: Origin) -> None:
    name_policy = MediaPolicy(frozenset({f"http://cdn.example:{a.server.port}"}))
    url = f"http://cdn.example:{a.server.port}/photo.png"
    for answer in (["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], ["93.184.215.14", "::1"],
                   ["::ffff:127.0.0.1"], ["100.64.0.1"], ["fe80::1"]):
        rejected("private address: cdn.example", fetch, url, name_policy,
                 resolve=lambda host, port, answer=answer: answer)
    assert a.seen == []


def test_connection_goes_to_the_checked_address(a: Origin) -> None:
    # The name is resolved once, checked, and that address is the one connected to.
    url = f"http://cdn.example:{a.server.port}/photo.png"
    asked = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    got = fetch(url, MediaPolicy(frozenset({f"http://cdn.example:{a.server.port}"}),
                                 allow_private=True), resolve=resolve)
    assert got.data == PNG
    assert asked == [("cdn.example", a.server.port)]
    assert a.seen == [("/photo.png", f"cdn.example:{a.server.port}", None)]


def test_streamed_6_mb_is_refused_while_reading(a: Origin) -> None:
    started = time.monotonic()
    rejected(f"too large: over {5 * MB} bytes", fetch, a.url(f"/stream/{6 * MB}"), policy(a))
    assert time.monotonic() - started < 5


def test_declared_6_mb_is_refused_before_reading(a: Origin) -> None:
    started = time.monotonic()
    rejected("too large", fetch, a.url(f"/declared/{6 * MB}"), policy(a))
    assert time.monotonic() - started < 2  # did not wait for the body


def test_wrong_content_type_is_refused(a: Origin) -> None:
    rejected("type not allowed: text/html", fetch, a.url("/page.html"), policy(a))
    images_only = policy(a, allowed_types=TWILIO_FORMATTED_TYPES)
    assert fetch(a.url("/photo.png"), images_only).content_type == "image/png"


def test_slow_answer_times_out(a: Origin) -> None:
    started = time.monotonic()
    rejected("timed out after 0.5 s", fetch, a.url("/slow"), policy(a, timeout_s=0.5))
    assert time.monotonic() - started < 1.5


def test_dripping_body_times_out_on_the_whole_fetch(a: Origin) -> None:
    started = time.monotonic()
    rejected("timed out", fetch, a.url("/drip"), policy(a, timeout_s=0.5))
    assert time.monotonic() - started < 1.5


def test_bad_status_empty_file_and_bad_urls(a: Origin) -> None:
    rejected("bad status 404", fetch, a.url("/missing"), policy(a))
    rejected("empty file", fetch, a.url("/empty"), policy(a))
    rejected("bad URL: not http or https", fetch, "ftp://127.0.0.1/x", policy(a))
    rejected("bad URL: credentials", fetch,
             f"http://u:p@127.0.0.1:{a.server.port}/photo.png", policy(a))
    rejected("bad URL", fetch, "http://127.0.0.1:99999/x", policy(a))
    rejected("too many redirects (more than 2)", fetch,
             a.url("/go?to=/go%3Fto%3D/go%253Fto%253D/go%25253Fto%25253D/photo.png"),
             policy(a, max_redirects=2))


def test_credentials_go_to_the_first_origin_only(a: Origin, b: Origin) -> None:
    url = a.url(f"/go?to={b.url('/photo.png')}")
    assert fetch(url, policy(a, b), auth=("AC123", "secret")).data == PNG
    assert a.seen[0][2] is not None and a.seen[0][2].startswith("Basic ")
    assert b.seen == [("/photo.png", f"127.0.0.1:{b.server.port}", None)]
    a.seen.clear()
    b.seen.clear()
    assert fetch(url, policy(a, b), auth="Bearer cx-token").data == PNG
    assert a.seen[0][2] == "Bearer cx-token" and b.seen[0][2] is None


def test_eleven_attachments_are_refused_before_fetching(a: Origin) -> None:
    rejected("too many attachments: 11 > 10", fetch_all, [a.url("/photo.png")] * 11, policy(a))
    assert a.seen == []
    assert len(fetch_all([a.url("/photo.png")] * 10, policy(a))) == 10


def test_total_over_5_mb_is_refused(a: Origin) -> None:
    two_mb = a.url(f"/blob/{2 * MB}")
    assert [len(f.data) for f in fetch_all([two_mb, two_mb], policy(a))] == [2 * MB, 2 * MB]
    rejected("too large", fetch_all, [two_mb, two_mb, two_mb], policy(a))


def test_allowlist_entries_are_validated() -> None:
    for bad in ("https://host/path", "host:notaport", "user@host", "ho st", "host:99999"):
        with pytest.raises(ValueError, match="allowed media host"):
            MediaPolicy(frozenset({bad}))
    parsed = MediaPolicy(frozenset({"API.Twilio.com.", "mms.twiliocdn.com:8443", ""})).origins
    assert {o.display for o in parsed} == {"api.twilio.com:443", "mms.twiliocdn.com:8443"}


def test_urls_are_split_for_a_pinned_connection() -> None:
    t = parse_target("https://API.Twilio.com./2010-04-01/Media/ME1?x=a b&y=é#frag")
    assert (t.scheme, t.host, t.port, t.host_header) == ("https", "api.twilio.com", 443,
                                                          "api.twilio.com")
    assert t.path == "/2010-04-01/Media/ME1?x=a%20b&y=%C3%A9"
    hop = parse_target("/cdn/file.jpg", base="http://[::1]:8080/media/1")
    assert (hop.host, hop.port, hop.host_header) == ("::1", 8080, "[::1]:8080")
    assert parse_target("https://cdn.example:443").host_header == "cdn.example"
    for bad in ("", "javascript:alert(1)", "https://", "https://ex ample.com/", "x" * 5000):
        with pytest.raises(ValueError):
            parse_target(bad)


# -- TLS to a pinned address --------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, str]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("media.example").configure_cert(context)
    server = make_server("127.0.0.1", 0, origin_app([]), threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with ca.cert_pem.tempfile() as ca_file:
        yield server.server_port, ca_file
    server.shutdown()


def test_tls_is_verified_against_the_name_not_the_address(tls_server) -> None:
    port, ca_file = tls_server
    to_local = {"resolve": lambda host, p: ["127.0.0.1"]}
    good = MediaPolicy(frozenset({f"media.example:{port}"}), allow_private=True, ca_certs=ca_file)
    assert fetch(f"https://media.example:{port}/photo.png", good, **to_local).data == PNG
    wrong = MediaPolicy(frozenset({f"other.example:{port}"}), allow_private=True,
                        ca_certs=ca_file)
    rejected("cannot connect to other.example", fetch,
             f"https://other.example:{port}/photo.png", wrong, **to_local)
    untrusted = MediaPolicy(frozenset({f"media.example:{port}"}), allow_private=True)
    rejected("cannot connect", fetch, f"https://media.example:{port}/photo.png", untrusted,
             **to_local)


def test_deadline_holds_under_gevent(a: Origin) -> None:
    # As the web and worker processes run it: monkey-patched sockets.
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys, time\n"
        "from app.media import MediaPolicy, MediaRejected, fetch\n"
        f"p = MediaPolicy(frozenset({{'{a.entry}'}}), allow_private=True, timeout_s=0.5)\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    fetch('{a.url('/drip')}', p)\n"
        "except MediaRejected as e:\n"
        "    print(e.reason, round(time.monotonic() - t, 1))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, cwd=os.getcwd(), check=True).stdout
    reason, elapsed = out.rsplit(" ", 1)
    assert reason == "timed out after 0.5 s" and float(elapsed) < 1.5


# -- storing and serving ------------------------------------------------------------------

@dataclass
class _Services:
    db: Database


@pytest.fixture
def web(db: Database):
    app = Flask("media-test")
    app.extensions["services"] = _Services(db)
    app.register_blueprint(media_bp)
    return app.test_client()


def _stored(db: Database, *items: Fetched, retention_s: float = 3600) -> list:
    with db.connection() as conn:
        return store(conn, items, retention_s=retention_s, direction="outbound")


def test_stored_file_is_served_with_same_bytes_and_type(db: Database, web) -> None:
    [one] = _stored(db, Fetched("image/png", PNG, "https://cxone.example/a.png"))
    url = public_url("https://sms.example.com/", one)
    assert url == f"https://sms.example.com/media/{one.token}.png" and len(one.token) == 43
    got = web.get(url.removeprefix("https://sms.example.com"))
    assert got.status_code == 200 and got.data == PNG
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cache-Control"].startswith("private, max-age=")
    assert 3500 < int(got.headers["Cache-Control"].rsplit("=", 1)[1]) <= 3600
    assert web.get(f"/media/{one.token}").data == PNG  # the extension is optional
    head = web.head(f"/media/{one.token}.png")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Type"] == "image/png"
    assert head.headers["Content-Length"] == str(len(PNG))


def test_each_file_has_its_own_token(db: Database, web) -> None:
    first, second = _stored(db, Fetched("image/png", PNG, "u1"),
                            Fetched("application/pdf", b"%PDF-1.4", "u2"))
    assert first.token != second.token
    assert web.get(f"/media/{second.token}").data == b"%PDF-1.4"
    assert web.get(f"/media/{second.token}").headers["Content-Type"] == "application/pdf"


def _expire(db: Database, token: str) -> None:
    with db.connection() as conn:
        conn.execute("UPDATE media SET created_at = now() - interval '2 days', "
                     "expires_at = now() - interval '1 second' WHERE token = %s", (token,))


def test_expired_file_is_not_served(db: Database, web) -> None:
    [one] = _stored(db, Fetched("image/png", PNG, "u"))
    assert web.get(f"/media/{one.token}").status_code == 200
    _expire(db, one.token)
    for method in (web.get, web.head):
        gone = method(f"/media/{one.token}.png")
        assert gone.status_code == 404
    assert web.get(f"/media/{one.token}").json == {
        "error": "not_found", "message": "no such media, or it has expired"}


@pytest.mark.parametrize("name", ["abc", "A" * 31, "A" * 87, "A" * 43 + ".toolong",
                                  "A" * 43 + ".PNG", "A" * 42 + "!", "A" * 43 + "\n", "é" * 43])
def test_malformed_or_unknown_tokens_are_404(web, name: str) -> None:
    got = web.get(f"/media/{name}")
    assert got.status_code == 404 and got.json["error"] == "not_found"
    assert web.get("/media/" + "A" * 43).status_code == 404  # well-formed, unknown


def test_housekeeping_deletes_expired_files_in_batches(db: Database, web) -> None:
    stored = _stored(db, *[Fetched("image/png", PNG, f"u{i}") for i in range(6)])
    for old in stored[:5]:
        _expire(db, old.token)
    with db.connection() as conn:
        counts = [db_media.delete_expired(conn, batch=2) for _ in range(4)]
    assert counts == [2, 2, 1, 0]
    assert web.get(f"/media/{stored[5].token}").data == PNG
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM media").fetchone()["n"] == 1


def test_store_is_all_or_nothing(db: Database) -> None:
    with db.connection() as conn, pytest.raises(psycopg.errors.CheckViolation):
        store(conn, [Fetched("image/png", PNG, "u1"), Fetched("x", PNG, "u2")],
              retention_s=60, direction="outbound")
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM media").fetchone()["n"] == 0
        row = conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                           "'media'::regclass AND attname = 'data'").fetchone()
        assert row["attstorage"] == "e"  # EXTERNAL: out of line, not compressed again
