"""The FastAPI edge gateway (REST and Server-Sent Events in front of the model services).

Each folder holds one concern. They are listed here from the bottom up: a module imports
from its own folder and from those listed before it, never from one listed after it
(``tests/test_gateway_layout.py`` checks it).

``errors/``
    How the gateway says no: each refusal with its HTTP status and error code, the one
    error envelope, the table from gRPC status to HTTP, the exception handlers.
``edge/``
    What every HTTP request passes: the middleware, the request's record, trace context,
    the caller's address, the drain on shutdown, the metrics.
``limits/``
    How much a caller may use: tiers, per-minute and daily limits (GCRA, in Redis Lua
    scripts), generated-token budgets and stream slots.
``access/``
    Who is calling: API keys and their store, JWT bearer tokens, roles, stream tokens.
``backends/``
    The model services: gRPC clients, every backend address, health, the choice of one.
``cache/``
    Cached answers of the deterministic models.
``replay/``
    Streamed generations that outlive their connection: each one's events kept (in
    memory, and in Redis for the other replicas) so that a reconnect resumes it.
``routing/``
    Which version answers: routing tables, their store and audit trail, the router,
    rollout operations, guardrails, live figures.
``shadow/``
    Shadow traffic: copies of stable's requests sent to a candidate version that answers
    no one, and how far the two agree (shared by every replica).
``experiments/``
    Outcomes callers report for their requests, attributed to the version that answered
    each, and the statistics that compare the versions.
``jobs/``
    Batch jobs: uploaded files and their store, durable jobs with leases and
    checkpoints, the runner that sends their lines through the routes, and callbacks.
``settings.py``, ``stores.py``, ``state.py``, ``pipeline.py``
    The gateway's settings, its stores (Redis, or this process), the state its handlers
    share, and the plan every model request follows.
``routes/``
    The HTTP routes: thin handlers, the bodies they read, the JSON they answer, the
    refusals each declares, and what they get from FastAPI's dependencies (the state,
    the caller with a role).
``app.py``, ``server.py``
    The FastAPI application assembled, and uvicorn running it with a drain on SIGTERM.

Lua scripts live in ``.lua`` files beside the module that runs them.
"""
