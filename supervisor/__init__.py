"""The per-machine fleetq service: GPU discovery and health, backend adapters, pullers."""
