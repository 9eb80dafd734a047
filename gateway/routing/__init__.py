"""Which model version answers: the routing tables (stable, canary, deprecated, retired,
allowlists), their shared store and audit trail, the router that follows them, the
operators' rollout operations, the guardrails that judge canaries, and the live figures
they judge on."""
