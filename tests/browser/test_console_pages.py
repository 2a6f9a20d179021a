"""The console's pages in a real browser, over a known database (no worker running)."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from tests.browser.conftest import accept_dialogs, figure, heading, sign_in
from tests.browser.console_data import CUSTOMER, EXPECTED_FIGURES, seed_overview

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips these tests (fails them under CI=true)
    expect = None

NAV = {"Overview": "Overview", "Dead letters": "Dead letters", "Messages": "Messages",
       "Consent": "Consent"}


def test_sign_in_with_a_wrong_then_the_right_token_and_sign_out(page, console_url):
    sign_in(page, console_url, token="not-the-admin-token")
    expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
    expect(heading(page, "Sign in")).to_be_visible()
    page.goto(console_url + "/console/dead-letters")
    expect(heading(page, "Sign in")).to_be_visible()  # no session was created
    page.get_by_label("Admin token").fill("browser-admin-token-0123456789")
    page.get_by_role("button", name="Sign in").click()
    expect(heading(page, "Dead letters")).to_be_visible()  # back to the page asked for
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(console_url + "/console/")
    expect(heading(page, "Sign in")).to_be_visible()


def test_navigation_links_on_every_page(page, console_url):
    sign_in(page, console_url)
    expect(heading(page, "Overview")).to_be_visible()
    for link, title in NAV.items():
        page.get_by_role("link", name=link, exact=True).click()
        expect(heading(page, title)).to_be_visible()
        for other in NAV:
            expect(page.get_by_role("link", name=other, exact=True)).to_be_visible()


def test_overview_figures_match_the_database_and_refresh_without_a_reload(page, console_url,
                                                                           database_url):
    seed_overview(database_url)
    sign_in(page, console_url)
    expect(heading(page, "Overview")).to_be_visible()
    for name, expected in EXPECTED_FIGURES.items():
        assert figure(page, name) == expected, name
    expect(page.locator("svg.chart polyline")).to_have_count(3)
    page.evaluate("window.__notReloaded = true")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (kind, dedupe_key, state, last_error) "
                     "VALUES ('send_sms', 'late-death', 'dead', 'HTTP 500')")
    expect(page.locator('[data-figure="dead_letters"]')).to_have_text("4", timeout=12_000)
    assert page.evaluate("window.__notReloaded") is True
    assert int(page.locator("#live").get_attribute("data-refreshed") or 0) >= 1


def test_discard_asks_first_and_a_dismissed_question_changes_nothing(page, console_url,
                                                                      database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = conn.execute(
            "INSERT INTO outbox (kind, dedupe_key, state, last_error, attempts, payload) "
            "VALUES ('cxone_status', 'cxone_status:msg_d', 'dead', 'HTTP 503 from CXone', 5, "
            "%s) RETURNING id", (Jsonb({"message_id": "msg_d"}),)).fetchone()[0]
    sign_in(page, console_url)
    page.get_by_role("link", name="Dead letters", exact=True).click()
    row = page.locator(f'tr[data-job="{job}"]')
    expect(row).to_contain_text("msg_d")
    expect(row).to_contain_text("HTTP 503 from CXone")
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Discard").click()
    expect(row).to_be_visible()
    asked = accept_dialogs(page)
    row.get_by_role("button", name="Discard").click()
    expect(page.get_by_role("status")).to_have_text("Discarded 1 dead letter.")
    assert asked == [f"Discard dead letter #{job} for good?"]
    expect(page.get_by_text("No dead letters")).to_be_visible()


def test_set_consent_and_see_its_history(page, console_url, database_url):
    sign_in(page, console_url)
    page.get_by_role("link", name="Consent", exact=True).click()
    page.get_by_label("Phone number").fill(CUSTOMER)
    page.get_by_label("Status").select_option("opted_out")
    page.get_by_label("Note").fill("asked on the phone, ticket 42")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=CUSTOMER)).to_be_visible()  # whole on its page
    expect(page.locator('[data-fact="consent-status"]')).to_have_text("Opted out opted_out")
    history = page.locator('[data-table="history"] tbody tr')
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("console")
    expect(history.first).to_contain_text("asked on the phone, ticket 42")
    page.get_by_label("Status").select_option("Opted in")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('[data-fact="consent-status"]')).to_have_text("Opted in opted_in")
    expect(history).to_have_count(2)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, source FROM consent_history ORDER BY id").fetchall()
    assert rows == [("opted_out", "console"), ("opted_in", "console")]


def test_consent_csv_import_and_export(page, console_url, tmp_path):
    sign_in(page, console_url)
    page.get_by_role("link", name="Consent", exact=True).click()
    upload = tmp_path / "consent.csv"
    upload.write_text("phone_number,status\n+14155550101,opted_in\n+14155550102,opted_out\n")
    page.get_by_label("CSV file").set_input_files(str(upload))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_have_text("Imported 2 rows.")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    saved = tmp_path / "exported.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0] == "phone_number,status,scope,source,updated_at"
    assert [line.split(",")[:2] for line in lines[1:]] == [["+14155550101", "opted_in"],
                                                          ["+14155550102", "opted_out"]]
