"""The harness of the benchmark and chaos scripts: child processes, ports, a private
redis-server, the docs sections the benchmarks write, and one subpackage per long script.

The scripts put the checkout and ``scripts/`` on ``sys.path`` before importing this package.
"""
