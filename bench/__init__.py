"""Benchmarks of trinfer against its peers, run by hand: ``python -m bench.run P1|P2|P3|P5|P6|all``.

Peers are installed outside the repository by ``bench/setup_peers.sh``; results, the machine and the exact
commands are recorded in ``docs/benchmarks.md``. Nothing here is imported by trinfer or its tests.
"""
