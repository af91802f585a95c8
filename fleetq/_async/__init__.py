"""The client, the store and the client-building half of the connection code.

``fleetq/_async/`` is the single source, written for asyncio; ``fleetq/_sync/`` is generated
from it by ``scripts/unasync.py``. Edit the first, then run ``python scripts/unasync.py``.
"""
