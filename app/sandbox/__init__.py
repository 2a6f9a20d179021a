"""Compatibility alias: the simulators moved to the top-level ``sandbox`` package.

``python -m app.sandbox cxone|twilio|dfo`` still works from a checkout (it runs
``python -m sandbox``); the simulators themselves are not part of the product.
"""
