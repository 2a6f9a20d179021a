"""The operations console over HTTP: sign-in, sessions, CSRF, masking, and what each page does."""

from __future__ import annotations

import html
import re
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app import create_app
from app.config import Settings
from app.console import session as sessions
from app.services import Services
from db.pool import Database
from sandbox import defaults
from tests.browser.console_data import CUSTOMER, EXPECTED_FIGURES, seed_overview

ADMIN_TOKEN = "console-admin-token-0123456789"
PAGES = ("/console/", "/console/overview/live", "/console/dead-letters", "/console/messages",
         "/console/consent", f"/console/consent/{CUSTOMER}", "/console/login")


def _settings(**extra: str) -> Settings:
    return Settings.from_env({
        "CXONE_CLIENT_ID": "id", "CXONE_CLIENT_SECRET": "cxone-client-secret-value",
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9", "ADMIN_TOKEN": ADMIN_TOKEN,
        "SENDER_NUMBERS": "+18005550100,+18005550101", **extra})


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pool(database_url):
    db = Database(database_url, max_size=4)
    yield db
    db.close()


def _app(pool, **extra: str):
    app = create_app(services=Services(settings=_settings(**extra), db=pool))
    app.extensions["console_clock"] = FakeClock()
    return app


@pytest.fixture
def app(pool):
    return _app(pool)


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client, token: str = ADMIN_TOKEN):
    """Sign in through the form; the answer to the POST."""
    form = client.get("/console/login")
    return client.post("/console/login", data={"csrf_token": csrf_of(form.text), "token": token})


@pytest.fixture
def signed_in(client):
    assert sign_in(client).status_code == 303
    return client


def figure(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{re.escape(name)}">([^<]*)<', page)
    assert found, f"no figure {name}"
    return html.unescape(found.group(1)).strip()


def _session_cookie(client) -> str | None:
    cookie = client.get_cookie(sessions.COOKIE_NAME, path="/console/")
    return cookie.value if cookie else None


# -- on and off -----------------------------------------------------------------------------

def test_console_is_404_when_admin_token_is_unset(pool):
    off = create_app(services=Services(settings=_settings().with_overrides(admin_token=None),
                                       db=pool)).test_client()
    for path in ("/console/", "/console/login", "/console/static/console.css",
                 "/console/dead-letters", "/console/consent/export.csv"):
        assert off.get(path).status_code == 404, path
    assert off.post("/console/login", data={"token": "x"}).status_code == 404
    assert off.get_cookie(sessions.COOKIE_NAME, path="/console/") is None


# -- signing in and out ---------------------------------------------------------------------

def test_pages_need_a_session(client):
    response = client.get("/console/dead-letters?kind=send_sms")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")
    assert client.get("/console/overview/live", headers={"X-Console-Refresh": "1"}
                      ).status_code == 401


def test_wrong_token_shows_an_error_and_creates_no_session(client):
    response = sign_in(client, token="not-the-token")
    assert response.status_code == 200
    assert "That is not the admin token." in response.text
    assert "not-the-token" not in response.text
    assert client.get("/console/").status_code == 302
    cookie = _session_cookie(client)
    assert cookie is not None  # the visitor's (sign-in form) cookie, not a session
    decoded = sessions.decode(cookie, ADMIN_TOKEN, time.time())
    assert decoded is not None and decoded.signed_in is False


def test_sign_in_sets_a_signed_http_only_strict_cookie(client):
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert "Secure" not in cookie  # plain http
    assert ADMIN_TOKEN not in cookie
    assert client.get("/console/").status_code == 200


def test_cookie_is_secure_under_https(pool):
    over_https = _app(pool).test_client()
    form = over_https.get("/console/login", base_url="https://localhost")
    assert "Secure" in form.headers["Set-Cookie"]
    behind_proxy = _app(pool, PUBLIC_BASE_URL="https://gateway.example.com").test_client()
    assert "Secure" in behind_proxy.get("/console/login").headers["Set-Cookie"]


def test_sign_in_goes_back_to_the_page_asked_for_and_nowhere_else(client):
    form = client.get("/console/login?next=/console/consent")
    token = csrf_of(form.text)
    response = client.post("/console/login", data={"csrf_token": token, "token": ADMIN_TOKEN,
                                                   "next": "https://evil.example/console/"})
    assert response.headers["Location"] == "/console/"
    form = client.get("/console/login?next=/console/consent")  # already signed in
    assert form.headers["Location"] == "/console/consent"


def test_session_expires(app, signed_in):
    clock = app.extensions["console_clock"]
    assert signed_in.get("/console/").status_code == 200
    clock.now += sessions.DEFAULT_SESSION_TTL_S - 60
    assert signed_in.get("/console/").status_code == 200
    clock.now += 120
    assert signed_in.get("/console/").status_code == 302
    assert signed_in.get("/console/overview/live",
                         headers={"X-Console-Refresh": "1"}).status_code == 401


def test_sign_out_ends_the_session_even_for_a_copy_of_the_cookie(app, signed_in):
    copy = _session_cookie(signed_in)
    page = signed_in.get("/console/").text
    response = signed_in.post("/console/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert signed_in.get("/console/").status_code == 302
    thief = app.test_client()
    thief.set_cookie(sessions.COOKIE_NAME, copy, path="/console/")
    assert thief.get("/console/").status_code == 302


def test_rotating_the_admin_token_ends_every_session(pool, signed_in):
    copy = _session_cookie(signed_in)
    rotated = _app(pool, ADMIN_TOKEN="a-brand-new-admin-token").test_client()
    rotated.set_cookie(sessions.COOKIE_NAME, copy, path="/console/")
    assert rotated.get("/console/").status_code == 302


def test_a_tampered_cookie_is_refused(app, signed_in):
    value = _session_cookie(signed_in)
    assert value is not None
    forged = app.test_client()
    forged.set_cookie(sessions.COOKIE_NAME, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"),
                      path="/console/")
    assert forged.get("/console/").status_code == 302


def test_a_database_that_does_not_answer_is_a_503_page_not_a_traceback():
    gone = Database("postgresql://postgres@127.0.0.1:1/nowhere", max_size=1,
                    connect_timeout_s=1)
    client = create_app(services=Services(settings=_settings(), db=gone)).test_client()
    assert sign_in(client).status_code == 303  # signing in needs no database
    response = client.get("/console/")
    assert response.status_code == 503
    assert "The database is not answering" in response.text and "Traceback" not in response.text


# -- CSRF -----------------------------------------------------------------------------------

def _dead_job(url: str, kind: str = "send_sms", error: str = "HTTP 500") -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute(
            "INSERT INTO outbox (kind, dedupe_key, state, last_error, payload, attempts) "
            "VALUES (%s, %s, 'dead', %s, %s, 5) RETURNING id",
            (kind, f"k{time.monotonic_ns()}", error,
             Jsonb({"message_id": f"msg_{time.monotonic_ns()}", "to": CUSTOMER}))
        ).fetchone()[0])


def _state(url: str, job_id: int) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute("SELECT state FROM outbox WHERE id = %s", (job_id,)
                                ).fetchone()[0])


def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(signed_in, database_url):
    job = _dead_job(database_url)
    for path, data in [("/console/consent", {"phone_number": CUSTOMER, "status": "opted_in",
                                              "action": "save"}),
                       (f"/console/dead-letters/{job}/replay", {}),
                       (f"/console/dead-letters/{job}/discard", {}),
                       ("/console/dead-letters/replay-matching", {}),
                       ("/console/logout", {})]:
        for token in (None, "wrong-token-wrong-token-wrong"):
            form = dict(data) if token is None else {**data, "csrf_token": token}
            response = signed_in.post(path, data=form)
            assert response.status_code == 403, (path, token)
            assert "Nothing was changed" in response.text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM consent").fetchone()[0] == 0
    assert _state(database_url, job) == "dead"
    assert signed_in.get("/console/").status_code == 200  # sign-out was refused too


def test_sign_in_form_needs_its_csrf_token(client):
    client.get("/console/login")
    assert client.post("/console/login", data={"token": ADMIN_TOKEN}).status_code == 403
    assert client.get("/console/").status_code == 302


# -- headers, masking, secrets --------------------------------------------------------------

def test_every_page_has_a_self_only_content_security_policy_and_is_not_cached(signed_in):
    for path in PAGES[:-1]:
        response = signed_in.get(path)
        assert response.status_code == 200, path
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text
        assert re.search(r'(src|href)="(https?:)?//', response.text) is None, path
    css = signed_in.get("/console/static/console.css")
    assert css.status_code == 200 and "Content-Security-Policy" in css.headers


def test_numbers_are_masked_in_lists_and_whole_on_their_own_page(signed_in, database_url):
    _dead_job(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (event, cxone_message_id, phone_number, source) "
                     "VALUES ('message.enqueued', 'msg_listed', %s, 'poll')", (CUSTOMER,))
        conn.execute("INSERT INTO throttle_state (key, tat) VALUES ('sender:+18005550100', now())")
    masked = "+1415***9876"
    for path in ("/console/dead-letters", f"/console/messages?q={CUSTOMER}", "/console/"):
        page = signed_in.get(path).text
        assert CUSTOMER not in page, path
        assert "+18005550100" not in page, path
    assert masked in signed_in.get("/console/dead-letters").text
    results = signed_in.get("/console/messages", query_string={"q": CUSTOMER}).text
    assert masked in results and "msg_listed" in results
    assert CUSTOMER in signed_in.get(f"/console/consent/{CUSTOMER}").text


def test_no_secret_appears_in_any_page(signed_in, database_url):
    seed_overview(database_url)
    secrets = (ADMIN_TOKEN, defaults.TWILIO_AUTH_TOKEN, "cxone-client-secret-value")
    for path in PAGES:
        page = signed_in.get(path).text
        for secret in secrets:
            assert secret not in page, (path, secret)


# -- the overview ---------------------------------------------------------------------------

def test_overview_figures_match_the_database(signed_in, database_url):
    seed_overview(database_url)
    for path in ("/console/", "/console/overview/live"):
        page = signed_in.get(path).text
        for name, expected in EXPECTED_FIGURES.items():
            assert figure(page, name) == expected, (path, name)
    lag = figure(page, "lag")
    assert re.fullmatch(r"\d+ s", lag) and 4 <= int(lag.split()[0]) <= 30
    assert "≈ 8 (10 s)" in page or "≈ 8 (9 s)" in page  # 10 s of slots at 0.8/s


def test_a_long_queue_is_estimated_not_counted(signed_in, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (kind, dedupe_key, run_at) SELECT 'send_sms', "
                     "'b' || g, now() + interval '1 hour' FROM generate_series(1, 6000) g")
        conn.execute("INSERT INTO outbox (kind, dedupe_key, state) VALUES ('x', 'd', 'dead')")
        conn.execute("ANALYZE outbox")
    page = signed_in.get("/console/").text
    assert figure(page, "queue.send_sms.scheduled") == "≈ 6000"  # a small table: all sampled
    assert figure(page, "queue.x.dead") == "1"  # dead letters are always counted
    assert "More than 5,000 jobs are queued" in page


# -- dead letters ---------------------------------------------------------------------------

def test_replay_and_discard_are_audited_with_source_console(signed_in, database_url):
    replayed, discarded = _dead_job(database_url), _dead_job(database_url)
    page = signed_in.get("/console/dead-letters").text
    assert f'data-job="{replayed}"' in page and "HTTP 500" in page
    token = csrf_of(page)
    response = signed_in.post(f"/console/dead-letters/{replayed}/replay",
                              data={"csrf_token": token})
    assert response.status_code == 303 and "done=replayed" in response.headers["Location"]
    assert "Replayed 1 dead letter." in signed_in.get(response.headers["Location"]).text
    signed_in.post(f"/console/dead-letters/{discarded}/discard", data={"csrf_token": token})
    again = signed_in.post(f"/console/dead-letters/{discarded}/discard",
                           data={"csrf_token": token})
    assert "no longer dead" in signed_in.get(again.headers["Location"]).text
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT id, state FROM outbox").fetchall())
        payload = conn.execute("SELECT payload FROM outbox WHERE id = %s", (replayed,)
                               ).fetchone()[0]
        audit = conn.execute("SELECT event, source FROM audit_log ORDER BY id").fetchall()
    assert rows == {replayed: "queued", discarded: "done"}
    assert payload["lookup_first"] is True  # looked up at Twilio before any create
    assert audit == [("job.replayed", "console"), ("job.discarded", "console")]


def test_replay_all_matching_replays_only_the_filtered_ones(signed_in, database_url):
    a = _dead_job(database_url, kind="cxone_status", error="HTTP 503")
    b = _dead_job(database_url, kind="cxone_status", error="timeout")
    c = _dead_job(database_url, kind="send_sms", error="HTTP 503")
    page = signed_in.get("/console/dead-letters?kind=cxone_status&error=503").text
    assert f'data-job="{a}"' in page and f'data-job="{b}"' not in page
    signed_in.post("/console/dead-letters/replay-matching",
                   data={"csrf_token": csrf_of(page), "kind": "cxone_status", "error": "503"})
    assert [_state(database_url, j) for j in (a, b, c)] == ["queued", "dead", "dead"]


# -- messages -------------------------------------------------------------------------------

def test_search_finds_a_message_by_id_sid_or_number(signed_in, database_url):
    sid = "SM" + "ab" * 16
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO twilio_messages (sid, cxone_message_id, to_number, status) "
                     "VALUES (%s, 'msg_found', %s, 'delivered')", (sid, CUSTOMER))
        conn.execute("INSERT INTO audit_log (event, cxone_message_id, twilio_message_sid, "
                     "phone_number, to_state, source) VALUES "
                     "('send.created', 'msg_found', %s, %s, 'accepted', 'worker')", (sid, CUSTOMER))
    for query in ("msg_found", sid):
        response = signed_in.get("/console/messages", query_string={"q": query})
        assert response.headers["Location"] == "/console/messages/" + query
    page = signed_in.get(f"/console/messages/{sid}").text
    assert "msg_found" in page and 'data-what="send.created"' in page and CUSTOMER in page
    by_number = signed_in.get("/console/messages", query_string={"q": "+1 (415) 555-9876"}).text
    assert "/console/messages/msg_found" in by_number
    assert "Nothing is known" in signed_in.get("/console/messages?q=msg_unknown").text
    assert signed_in.get("/console/messages/msg_unknown").status_code == 404


@pytest.mark.parametrize("query", ["x" * 201, "two words", "<script>", "msg/../x"])
def test_a_malformed_search_is_a_400_with_a_reason(signed_in, query):
    response = signed_in.get("/console/messages", query_string={"q": query})
    assert response.status_code == 400
    assert "<script>" not in response.text


# -- consent --------------------------------------------------------------------------------

def test_set_consent_is_audited_with_source_console(signed_in, database_url):
    page = signed_in.get("/console/consent").text
    response = signed_in.post("/console/consent", data={
        "csrf_token": csrf_of(page), "phone_number": CUSTOMER, "status": "opted_out",
        "note": "asked by phone, ticket 42", "action": "save"})
    assert response.status_code == 303
    shown = signed_in.get(response.headers["Location"]).text
    assert 'data-fact="consent-status">Opted out <code>opted_out</code>' in shown
    assert figure_fact(shown, "consent-source") == "console"
    assert "asked by phone, ticket 42" in shown
    with psycopg.connect(database_url) as conn:
        history = conn.execute("SELECT status, source, evidence FROM consent_history").fetchall()
        audit = conn.execute("SELECT event, source, to_state FROM audit_log").fetchall()
    assert history == [("opted_out", "console", {"note": "asked by phone, ticket 42"})]
    assert audit == [("consent.changed", "console", "opted_out")]


def figure_fact(page: str, name: str) -> str:
    found = re.search(rf'data-fact="{name}">([^<]*)<', page)
    assert found, name
    return found.group(1).strip()


def test_consent_look_up_and_bad_input(signed_in):
    token = csrf_of(signed_in.get("/console/consent").text)
    look = signed_in.post("/console/consent", data={"csrf_token": token,
                                                    "phone_number": CUSTOMER, "action": "show"})
    assert look.headers["Location"] == f"/console/consent/{CUSTOMER}"
    assert "no record" in signed_in.get(look.headers["Location"]).text
    for data in ({"phone_number": "12345", "action": "save", "status": "opted_in"},
                 {"phone_number": CUSTOMER, "action": "save", "status": "maybe"},
                 {"phone_number": CUSTOMER, "action": "save", "status": "opted_in",
                  "note": "n" * 501}):
        assert signed_in.post("/console/consent", data={"csrf_token": token, **data}
                              ).status_code == 400
    assert signed_in.get("/console/consent/not-a-number").status_code == 404


def test_consent_csv_import_is_all_or_nothing_and_export_lists_it(signed_in, database_url):
    import io

    token = csrf_of(signed_in.get("/console/consent").text)
    bad = b"phone_number,status\n+14155550101,opted_in\nnope,opted_in\n"
    response = signed_in.post("/console/consent/import", data={
        "csrf_token": token, "file": (io.BytesIO(bad), "bad.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 400 and "line 3" in response.text
    good = b"phone_number,status\n+14155550101,opted_in\n+14155550102,opted_out\n"
    response = signed_in.post("/console/consent/import", data={
        "csrf_token": token, "file": (io.BytesIO(good), "good.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200 and "Imported 2 rows." in response.text
    exported = signed_in.get("/console/consent/export.csv")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="consent.csv"'
    lines = exported.text.splitlines()
    assert lines[0] == "phone_number,status,scope,source,updated_at"
    assert [line.split(",")[:4] for line in lines[1:]] == [
        ["+14155550101", "opted_in", "*", "import"], ["+14155550102", "opted_out", "*", "import"]]


def test_a_large_consent_import_is_accepted(signed_in, database_url):
    """Bigger than the webhooks' 64 KB limit: the console raises it for this form only."""
    import io

    rows = "".join(f"+1415{n:07d},opted_in\n" for n in range(4000))
    token = csrf_of(signed_in.get("/console/consent").text)
    response = signed_in.post("/console/consent/import", data={
        "csrf_token": token, "file": (io.BytesIO(("phone_number,status\n" + rows).encode()),
                                      "big.csv")}, content_type="multipart/form-data")
    assert response.status_code == 200 and "Imported 4000 rows." in response.text


# -- the demo's traffic ---------------------------------------------------------------------

def test_demo_traffic_opts_customers_in_and_keeps_messages_flowing(pool, database_url, cxone,
                                                                  twilio):
    import threading

    from sandbox.server import serve_in_thread
    from sandbox.traffic import DOOMED, UNDELIVERABLE, TrafficPlan, run_traffic
    from tests.harness import free_port, wait_for

    port = free_port()  # the web app on a known port: Twilio signs for PUBLIC_BASE_URL
    web = serve_in_thread(_app(pool, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}"), port=port)
    twilio.configure(inbound_url=f"http://127.0.0.1:{port}/twilio/inbound")
    customers = ("+14155550101", "+14155550102")
    stop = threading.Event()
    plan = TrafficPlan(customers=customers, mean_pause_s=0.02, first_dead_letter_after_s=0.0,
                       seed=7)
    thread = threading.Thread(target=run_traffic, args=(cxone.url, twilio.url, stop),
                              kwargs={"plan": plan}, daemon=True)
    thread.start()
    try:
        def replies() -> list[dict]:
            return cxone.get("/_sandbox/messages", params={"direction": "OUTBOUND"})["items"]

        wait_for(lambda: len(replies()) >= 10, timeout=20, message="agent replies in CXone")
        wait_for(lambda: len(twilio.get("/_sandbox/inbound")["inbound"]) >= 6, timeout=20,
                 message="customers' texts")
    finally:
        stop.set()
        thread.join(timeout=10)
        web.stop()
    assert not thread.is_alive()  # the stop event ends it
    targets = {m["to"] for m in replies()}
    assert DOOMED in targets and targets <= {*customers, DOOMED, UNDELIVERABLE}
    rules = {r["to"]: r["outcome"] for r in twilio.get("/_sandbox/destinations")["destinations"]}
    assert rules == {UNDELIVERABLE: "undelivered", DOOMED: "create_error"}
    with psycopg.connect(database_url) as conn:  # START opted every customer in
        opted_in = {r[0] for r in conn.execute(
            "SELECT phone_number FROM consent WHERE status = 'opted_in' AND source = 'keyword'")}
    assert opted_in == {*customers, UNDELIVERABLE, DOOMED}
