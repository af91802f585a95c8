"""The fleetq operator dashboard (Textual): queues, jobs and GPUs of one fleet, with actions.

Entry points::

    from tui.app import run, create_app
    run(Settings.from_env(), readonly=False)   # blocking; returns an exit code

The dashboard imports only :mod:`fleetq` (its read and admin API) and Textual; never the
supervisor, never NVML.
"""
