"""Experiments: outcomes callers report for their requests, attributed to the version
that answered them, and the statistics that compare the versions."""
