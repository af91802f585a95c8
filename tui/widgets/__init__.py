"""The dashboard's widgets; only :class:`~tui.widgets.poller.Poller` reads the fleet."""
