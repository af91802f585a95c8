"""The ``fleetq`` command line."""
