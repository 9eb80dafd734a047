"""Switchyard's benchmarks: served versus raw model speed, measured within one run."""
