"""Credentials and identifiers the sandbox uses on both sides.

They are fake and public: the demo and the tests configure the gateway with
them, and the simulators accept only them (unless told otherwise).
"""

TWILIO_ACCOUNT_SID = "AC" + "5a" * 16
TWILIO_AUTH_TOKEN = "5b" * 16
TWILIO_MESSAGING_SERVICE_SID = "MG" + "5c" * 16

CXONE_CLIENT_ID = "sandbox-client"
CXONE_CLIENT_SECRET = "sandbox-secret"

# Default sender pool and business number used by the demo.
SENDER_NUMBERS = ("+18005550100", "+18005550101")

# CXone DFO (real-tenant mode). The access key secret ends in '=' and holds '+' and
# '/', as real ones can: a client that does not URL-encode the form is refused.
DFO_TENANT_ID = "11eb0a5c-5a5a-4e5e-9a5a-5a5a5a5a5a5a"
DFO_ACCESS_KEY_ID = "SANDBOXACCESSKEYID0123456789"
DFO_ACCESS_KEY_SECRET = "sbx+Dfo/Access+Key/Secret0123456789abcdef=="
DFO_BRAND_ID = 1234
DFO_BRAND_NAME = "Sandbox Brand"
# BYOC channels of the sandbox tenant: channel id -> the Twilio number serving it.
DFO_CHANNELS = {
    "chat_sbx_18005550100": SENDER_NUMBERS[0],
    "chat_sbx_18005550101": SENDER_NUMBERS[1],
}
# What CXone uses at the gateway's BYOC token endpoint.
BYOC_CLIENT_ID = "sandbox-byoc-client"
BYOC_CLIENT_SECRET = "sandbox-byoc-secret"
