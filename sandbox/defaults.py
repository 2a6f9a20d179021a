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
