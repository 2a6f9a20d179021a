"""Browser tests of the console: a real headless Chromium driven by Playwright.

Debian's chromium (/usr/bin/chromium) and Playwright for Python (the dev extra);
``playwright install`` is never needed. Without them the tests are skipped, except
under CI (CI=true), where a missing browser fails them: CI must not pass silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.config import Settings
from app.services import Services
from db.pool import Database
from sandbox import defaults
from sandbox.server import serve_in_thread

CHROMIUM = os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ADMIN_TOKEN = "browser-admin-token-0123456789"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run under CI: {missing}", pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies); fails the test on any CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    violations: list[str] = []
    opened.on("console", lambda msg: violations.append(msg.text)
              if "Content Security Policy" in msg.text else None)
    opened.on("pageerror", lambda exc: violations.append(f"script error: {exc}"))
    yield opened
    context.close()
    assert violations == [], violations


def console_settings(**extra: str) -> Settings:
    return Settings.from_env({
        "CXONE_CLIENT_ID": defaults.CXONE_CLIENT_ID,
        "CXONE_CLIENT_SECRET": defaults.CXONE_CLIENT_SECRET,
        "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9", "ADMIN_TOKEN": ADMIN_TOKEN,
        "SENDER_NUMBERS": ",".join(defaults.SENDER_NUMBERS), **extra})


@pytest.fixture
def console_url(database_url: str) -> Iterator[str]:
    """The web app (console included) on a thread, over a fresh database; no worker."""
    db = Database(database_url, max_size=4)
    server = serve_in_thread(create_app(services=Services(settings=console_settings(), db=db)))
    yield server.url
    server.stop()
    db.close()


def sign_in(page: Any, base_url: str, token: str = ADMIN_TOKEN) -> None:
    """Sign in through the form, as an operator does."""
    page.goto(base_url + "/console/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def figure(page: Any, name: str) -> str:
    """The text of one of the overview's figures."""
    return str(page.locator(f'[data-figure="{name}"]').inner_text()).strip()


def accept_dialogs(page: Any) -> list[str]:
    """Accept every confirmation; the questions asked, in order."""
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    return asked


def heading(page: Any, name: str) -> Any:
    return page.get_by_role("heading", name=re.compile(rf"^{re.escape(name)}$"), level=1)
