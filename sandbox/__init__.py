"""Simulators of the two outside systems (CXone Open Messaging and Twilio).

They exist so the gateway can be run and tested with no CXone tenant and no
Twilio account: every test goes through real HTTP to one of them.
"""
