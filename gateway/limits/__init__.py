"""How much a caller may use: the tiers, the per-minute burst and daily quota (GCRA, in
Redis Lua scripts), generated-token budgets and open-stream slots, and what happens when
the limits cannot be checked."""
