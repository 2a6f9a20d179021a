"""Screenshots of every console page for docs/console/, from a gateway with real traffic.

Runs the simulators, gunicorn and the worker against a fresh database, lets
sandbox/traffic.py drive a few minutes of traffic, then photographs each page in
headless Chromium:

    .venv/bin/python -m tests.browser.screenshots [--minutes 6] [--out docs/console]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from db import migrate
from sandbox import cxone_sim, twilio_sim
from sandbox.server import serve_in_thread
from sandbox.traffic import CUSTOMERS, TrafficPlan, run_traffic
from tests.browser.conftest import ADMIN_TOKEN, CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.harness import (
    ROOT,
    CxoneSandbox,
    TwilioSandbox,
    free_port,
    gateway_env,
    start_web,
    start_worker,
)


def photograph(base: str, out: Path, twilio: TwilioSandbox) -> None:
    from playwright.sync_api import sync_playwright

    customer = CUSTOMERS[0]
    delivered = [m for m in twilio.messages()
                 if m["to"] == customer and m["status"] == "delivered"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/console/login")
        page.screenshot(path=str(out / "login.png"))
        sign_in(page, base)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "overview.png"), full_page=True)
        page.get_by_role("link", name="Dead letters", exact=True).click()
        page.screenshot(path=str(out / "dead-letters.png"), full_page=True)
        page.get_by_role("link", name="Messages", exact=True).click()
        page.get_by_label("Search messages").fill(customer)
        page.get_by_label("Search messages").press("Enter")
        page.screenshot(path=str(out / "messages.png"))
        if delivered:
            page.get_by_label("Search messages").fill(delivered[-1]["sid"])
            page.get_by_label("Search messages").press("Enter")
            page.screenshot(path=str(out / "message.png"), full_page=True)
        page.get_by_role("link", name="Consent", exact=True).click()
        page.get_by_label("Phone number").fill(customer)
        page.get_by_label("Status").select_option("opted_in")
        page.get_by_label("Note").fill("confirmed by phone, ticket 1042")
        page.get_by_role("button", name="Save").click()
        page.screenshot(path=str(out / "consent.png"), full_page=True)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--database-url", default=os.environ.get(
        "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"smsgw_shots_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(args.database_url, dbname=name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cxone = CxoneSandbox(serve_in_thread(cxone_sim.create_app(cxone_sim.CxoneSimConfig())))
    twilio = TwilioSandbox(serve_in_thread(twilio_sim.create_app(twilio_sim.TwilioSimConfig(
        inbound_url=f"{base}/twilio/inbound", step_delay_s=0.3))))
    processes: list[Any] = []
    stop = threading.Event()
    try:
        migrate.migrate(url)
        env = gateway_env(url, cxone, twilio, public_base_url=base, ADMIN_TOKEN=ADMIN_TOKEN,
                          CONSENT_MODE="opt-in", SENDER_MPS="0.8", POLL_INTERVAL_S="1",
                          RETRY_BASE_S="0.5", RETRY_MAX_S="4")
        processes += [start_web(env, port), start_worker(env)]
        plan = TrafficPlan(mean_pause_s=1.2, first_dead_letter_after_s=15,
                           dead_letter_every_s=120, heal_after_s=10_000, seed=2026)
        traffic = threading.Thread(target=run_traffic, args=(cxone.url, twilio.url, stop),
                                   kwargs={"plan": plan}, daemon=True)
        traffic.start()
        time.sleep(args.minutes * 60)
        photograph(base, args.out, twilio)
    finally:
        stop.set()
        for proc in processes:
            proc.terminate(timeout=15)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
