"""The ``worker`` process: CXone poller, dispatcher pool, status sync, reconciler, housekeeping.

Keep this file free of imports: ``python -m worker`` must monkey-patch with
gevent before anything else is loaded.
"""
