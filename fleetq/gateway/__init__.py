"""The HTTP gateway: an aiohttp server over :class:`fleetq.AsyncClient`.

It keeps the request and response shapes of the FastAPI service fleetq replaces (``/submit``,
``/status/{id}``, ``/stats``), adds fleetq's own API under ``/v1`` (admin actions, output
files, server-sent event streams, the fleet), ``/metrics`` for Prometheus and ``/openapi.json``.
See ``docs/GATEWAY.md``.

Entry points: :func:`fleetq.gateway.app.create_app` (an ``aiohttp.web.Application``),
:func:`fleetq.gateway.main.run_gateway` (blocking server), and
:func:`fleetq.gateway.cli.add_gateway_parser` (the ``fleetq gateway`` sub-command).

This package is imported lazily (only by ``fleetq gateway`` and by code that asks for it), so
importing ``fleetq`` does not load aiohttp or prometheus-client.
"""
