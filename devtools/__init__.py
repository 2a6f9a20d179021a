"""What ``python3 dev.py`` runs once it is inside ``.venv``: the demo, the sandbox, the lock.

Local tools only: not part of the product's wheel, never run on a platform.
"""
