"""The dashboard's screens: the main view, the job detail, and the action dialogs."""
