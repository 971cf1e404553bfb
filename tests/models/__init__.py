"""Several models on one daemon: loaded on demand, unloaded when idle, under a bound on how many are loaded."""
