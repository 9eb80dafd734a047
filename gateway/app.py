"""The FastAPI application: routes, error handlers, middleware and the lifespan that
makes (and closes) the gRPC channels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis import exceptions as redis_errors

from gateway.access.auth import Authenticator
from gateway.access.internal import InternalCallers
from gateway.access.jwt_auth import JwtVerifier
from gateway.backends.endpoints import Backends
from gateway.edge.client_ip import ClientAddress
from gateway.edge.cors import EnvelopeCORSMiddleware
from gateway.edge.drain import Drain
from gateway.edge.https import StrictTransportSecurity
from gateway.edge.metrics import GatewayMetrics
from gateway.edge.middleware import RequestContextMiddleware
from gateway.errors.handlers import install_error_handlers
from gateway.experiments.answers import AnswerLog
from gateway.experiments.outcomes import OutcomeStore
from gateway.jobs.callbacks import BatchCallbacks
from gateway.jobs.dispatch import InProcessSender
from gateway.jobs.run_batch import JobContext
from gateway.jobs.runner import JobRunner
from gateway.jobs.webhooks import WebhookPolicy
from gateway.limits.policy import LimitPolicy
from gateway.routes import (
    admin,
    backends_admin,
    batches,
    bulk,
    experiments,
    files,
    openai_chat,
    operations,
    operator_live,
    page,
    predict,
    rollouts,
    shadow,
    summarize,
    tokens,
)
from gateway.routes.docs import install_docs
from gateway.routes.openapi import install_openapi
from gateway.routes.page import STATIC_DIR
from gateway.routing.guardrails import GuardrailKeeper
from gateway.routing.live_stats import LiveStats
from gateway.routing.router import Router, load_rollouts_file
from gateway.settings import GatewaySettings
from gateway.shadow.agreement import ShadowAgreement
from gateway.shadow.mirror import ShadowMirror
from gateway.state import GatewayState
from gateway.stores import auth_throttle, bearer_tokens, generation_hub, shared_stores
from switchyard import telemetry

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
"""The longest the gateway's shutdown waits for its clients (gRPC channels, Redis) to close."""

LIVE_FLUSH_S = 1.0
"""How often this replica's live figures are added to the shared ones in Redis."""

DESCRIPTION = """
REST and Server-Sent Events in front of Switchyard's gRPC model services.

Every response carries `X-Request-ID`; model answers carry `X-Model-Version` (the version
that answered) and `Server-Timing` (time spent in the model service). Send
`X-Model-Version` to pin a version and `X-Request-Timeout` (seconds) to bound the wait.
Errors share one envelope, OpenAI's: `{"error": {"message", "type", "param", "code",
"request_id"}}`, and say with `X-Should-Retry` whether the same request may succeed later.
The OpenAI SDKs work unchanged against `/v1` (chat completions, completions, models,
files and batches).
"""


def jwt_verifier(settings: GatewaySettings) -> JwtVerifier | None:
    """A verifier for bearer tokens, if the settings give a secret, a JWKS file or URL."""
    secret = settings.jwt_hs256_secret
    if secret is None and settings.jwt_jwks_file is None and settings.jwks_url is None:
        return None
    return JwtVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        hs256_secret=secret.get_secret_value() if secret is not None else None,
        jwks_file=settings.jwt_jwks_file,
        jwks_fetched=settings.jwks_url is not None,
        roles_claim=settings.jwt_roles_claim,
        max_lifetime_s=settings.jwt_max_lifetime_s,
        require_jti=settings.jwt_require_jti,
    )


def create_app(settings: GatewaySettings | None = None, drain: Drain | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    drain = drain or Drain()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backends = Backends(settings, lambda service: metrics.shared_calls.labels(service).observe)
        stores, client = shared_stores(settings)
        internal = InternalCallers()
        tokens_accepted = bearer_tokens(settings, client, jwt_verifier(settings))
        authenticator = Authenticator(
            stores.keys,
            settings.tiers,
            tokens=tokens_accepted,
            admin_key_sha256=settings.admin_key_hash(),
            fail_open=settings.rate_limit_failure == "open",
            internal=internal,
            throttle=auth_throttle(settings, client),
        )
        file_storage = settings.file_storage()
        secret = settings.webhook_secret
        callbacks = BatchCallbacks(
            secret.get_secret_value() if secret is not None else None,
            WebhookPolicy(allow=frozenset(settings.webhook_allow_hosts)),
        )
        sender = InProcessSender(app)
        jobs = JobContext(
            stores.jobs,
            file_storage,
            sender,
            internal,
            stores.limiter,
            settings.files_ttl_s,
            settings.jobs_max_requests,
            callbacks.ended,
        )
        runner = (
            JobRunner(jobs, settings.jobs_lease_s, settings.jobs_poll_s)
            if settings.jobs_run
            else None
        )
        live = LiveStats(client, window_s=settings.live_window_s, bucket_s=settings.live_bucket_s)
        router = Router(stores.routing, backends, settings.routing_follow_s, metrics)
        agreement = ShadowAgreement(client)
        mirror = ShadowMirror(
            backends,
            router,
            agreement,
            metrics,
            timeout_s=settings.shadow_timeout_s,
            concurrency=settings.shadow_concurrency,
        )
        app.state.gateway = GatewayState(
            settings,
            backends,
            metrics,
            drain,
            stores.keys,
            authenticator,
            stores.limiter,
            stores.stream_tokens,
            stores.cache,
            stores.routing,
            router,
            live,
            LimitPolicy(stores.limiter, metrics, settings.rate_limit_failure == "closed"),
            stores.jobs,
            file_storage,
            runner,
            callbacks,
            generation_hub(settings, client),
            AnswerLog(client),
            OutcomeStore(client),
            mirror,
        )
        try:
            moved = await stores.keys.move_older_records()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            moved = 0  # Redis away at start: the next start moves them
        if moved:
            log.info("moved %d API key records to their current names", moved)
        await backends.start()
        seed = load_rollouts_file(settings.rollouts_file) if settings.rollouts_file else []
        await router.start(seed)
        keeper = GuardrailKeeper(stores.routing, live, metrics)
        tasks = [
            asyncio.create_task(live.run(LIVE_FLUSH_S)),
            asyncio.create_task(app.state.gateway.answers.run(LIVE_FLUSH_S)),
            asyncio.create_task(keeper.run(settings.guardrail_interval_s, router.tables)),
            asyncio.create_task(agreement.run(LIVE_FLUSH_S)),
        ]
        if runner is not None:
            tasks.append(asyncio.create_task(runner.run()))
        jwks = tokens_accepted.fetcher if tokens_accepted is not None else None
        if jwks is not None:
            await jwks.refresh()  # a failure is logged: tokens wait for a later fetch
            tasks.append(asyncio.create_task(jwks.run()))
        telemetry.export_from_running_loop()
        try:
            yield
        finally:
            await telemetry.stop_exporting_from_loop()
            for task in tasks:
                task.cancel()

            async def close_all() -> None:
                await mirror.close()
                await asyncio.gather(*tasks, return_exceptions=True)
                await app.state.gateway.replay.close()
                await router.close()
                await sender.aclose()
                await callbacks.close()
                await backends.close()
                if jwks is not None:
                    await jwks.close()
                if client is not None:
                    await client.aclose()

            # A close that never returns must not keep a drained gateway (and its port)
            # alive.
            try:
                await asyncio.wait_for(close_all(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("the gateway's clients took over %s s to close", CLOSE_TIMEOUT_S)

    app = FastAPI(
        title="Switchyard gateway",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own spans, metrics and logs would start with any tracer provider: the
        # gateway makes its request span itself (gateway.edge.request_span), which never
        # records the query string (user text, for the summary stream) and costs less.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # served by gateway.routes.docs, from assets the gateway ships
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.include_router(predict.router)
    app.include_router(bulk.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(summarize.router)
    app.include_router(openai_chat.router)
    app.include_router(operations.router)
    app.include_router(admin.router)
    app.include_router(tokens.router)
    app.include_router(rollouts.router)
    app.include_router(shadow.router)
    app.include_router(experiments.router)
    app.include_router(operator_live.router)
    app.include_router(rollouts.unversioned_router, include_in_schema=False)
    app.include_router(backends_admin.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.cors_origins or settings.cors_origin_regex:
        app.add_middleware(
            EnvelopeCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_origin_regex=settings.cors_origin_regex,
            allow_credentials=settings.cors_allow_credentials,
            max_age=settings.cors_max_age_s,
        )
    # Added last, so outermost: every answer, even an early 413, carries its headers.
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        drain=drain,
        max_body_bytes=settings.max_body_bytes,
        client_address=ClientAddress(settings.trusted_proxies),
        unlimited_paths=bulk.BULK_PATHS | files.UPLOAD_PATHS,
    )
    if settings.https:  # outermost of all: even an early refusal carries it
        app.add_middleware(StrictTransportSecurity, max_age_s=settings.hsts_max_age_s)
    return app
