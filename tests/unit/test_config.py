"""Settings: every required value named when missing, every malformed value refused."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings
from sandbox import defaults

GOOD = {
    "CXONE_CLIENT_ID": "id", "CXONE_CLIENT_SECRET": "secret",
    "TWILIO_ACCOUNT_SID": defaults.TWILIO_ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": defaults.TWILIO_AUTH_TOKEN,
    "TWILIO_MESSAGING_SERVICE_SID": defaults.TWILIO_MESSAGING_SERVICE_SID,
    "PUBLIC_BASE_URL": "https://sms.example.com/",
}


def test_defaults_follow_the_design() -> None:
    s = Settings.from_env(GOOD)
    assert s.cxone_api_base_url == "https://api.nice-incontact.com"
    assert s.cxone_token_url == "https://cxone.niceincontact.com/auth/token"
    assert s.twilio_api_base_url == "https://api.twilio.com"
    assert s.sender_numbers == ()
    assert s.sender_mps == 0.8
    assert s.effective_service_mps == 0.8
    assert s.consent_mode == "opt-in"
    assert s.poll_interval_s == 2
    assert s.retry_30008_delay_s == 30
    assert s.reconcile_sent_after_s == 300
    assert s.reconcile_pending_after_s == 900
    assert s.port == 5000
    assert s.cxone_webhook_token is None and s.admin_token is None
    assert "STOP" in s.help_reply and "Msg & data rates may apply" in s.help_reply
    assert s.public_base_url == "https://sms.example.com"
    assert s.receipts_url == "https://sms.example.com/twilio/receipts"


def test_service_mps_defaults_to_pool_size_times_sender_mps() -> None:
    s = Settings.from_env({**GOOD, "SENDER_NUMBERS": "+18005550100, +18005550101,+18005550102",
                           "SENDER_MPS": "1"})
    assert s.sender_numbers == ("+18005550100", "+18005550101", "+18005550102")
    assert s.effective_service_mps == 3
    assert Settings.from_env({**GOOD, "SERVICE_MPS": "7.5"}).effective_service_mps == 7.5


@pytest.mark.parametrize("name", ["CXONE_CLIENT_ID", "CXONE_CLIENT_SECRET", "TWILIO_ACCOUNT_SID",
                                  "TWILIO_AUTH_TOKEN", "TWILIO_MESSAGING_SERVICE_SID",
                                  "PUBLIC_BASE_URL"])
def test_missing_required_value_names_the_variable(name: str) -> None:
    env = {k: v for k, v in GOOD.items() if k != name}
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.variable == name
    assert "required" in str(err.value)


@pytest.mark.parametrize(("name", "value"), [
    ("TWILIO_MESSAGING_SERVICE_SID", "MG123"),
    ("TWILIO_MESSAGING_SERVICE_SID", "PN" + "0" * 32),
    ("TWILIO_ACCOUNT_SID", "AC" + "g" * 32),
    ("SENDER_NUMBERS", "+18005550100,4155551234"),
    ("SENDER_NUMBERS", "+18005550100,+18005550100"),
    ("SENDER_MPS", "fast"),
    ("SENDER_MPS", "0"),
    ("CONSENT_MODE", "maybe"),
    ("PUBLIC_BASE_URL", "sms.example.com"),
    ("PUBLIC_BASE_URL", "https://sms.example.com/?x=1"),
    ("CXONE_API_BASE_URL", "ftp://x"),
    ("PORT", "70000"),
    ("POLL_INTERVAL_S", "-1"),
])
def test_malformed_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**GOOD, name: value})
    assert err.value.variable == name


def test_secret_never_echoed_whole() -> None:
    secret = "MGsupersecretvaluethatislong"
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**GOOD, "TWILIO_MESSAGING_SERVICE_SID": secret})
    assert secret not in str(err.value)


def test_the_sandbox_settings_are_valid_in_both_cxone_modes():
    from devtools.environment import CXONE_MODES, Ports, gateway_settings

    for mode in CXONE_MODES:
        settings = Settings.from_env(gateway_settings(Ports.from_base(5000), mode))
        assert settings.cxone_mode == mode
    dfo = Settings.from_env(gateway_settings(Ports.from_base(5000), "dfo"))
    assert dfo.cxone_dfo_base_url == "http://127.0.0.1:5001" and dfo.dfo_channels
