"""Settings of the gateway process, read from ``SWITCHYARD_GATEWAY_*`` variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from gateway.access.keys import key_hash
from gateway.backends.coalescer import CoalescingSettings
from gateway.backends.tls import BackendTlsSettings
from gateway.edge.https import HttpsSettings
from gateway.jobs.files import FileStorage, LocalFileStorage
from gateway.jobs.s3_files import S3FileStorage
from gateway.limits.tiers import DEFAULT_TIERS, TierLimits
from switchyard.paths import state_dir
from switchyard.service_table import model_service

Addresses = Annotated[list[str], NoDecode]


class GatewaySettings(HttpsSettings, BackendTlsSettings, CoalescingSettings):  # their fields
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_GATEWAY_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    classifier_backends: Addresses = Field(
        default_factory=lambda: [model_service("classifier").default_address],
        description="Comma-separated host:port of the classifier backends (replicas, or"
        " names that resolve to several).",
    )
    ner_backends: Addresses = Field(
        default_factory=lambda: [model_service("ner").default_address],
        description="Comma-separated host:port of every NER replica.",
    )
    summarizer_backends: Addresses = Field(
        default_factory=lambda: [model_service("summarizer").default_address],
        description="Comma-separated host:port of every summarizer replica.",
    )
    request_timeout_s: float = Field(
        10.0, gt=0, description="Longest time budget of a unary request (its gRPC deadline)."
    )
    stream_timeout_s: float = Field(300.0, gt=0, description="Longest time budget of a stream.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body; larger ones get 413."
    )
    bulk_max_body_bytes: int = Field(
        0,
        ge=0,
        description="Largest body of a bulk NDJSON request (/v1/classify/bulk,"
        " /v1/ner/bulk), counted as it streams in; 0: no limit. Those routes are exempt"
        " from max_body_bytes.",
    )
    max_query_text_chars: int = Field(
        4096,
        ge=1,
        description="Longest text in the query string of GET /v1/summarize/stream.",
    )
    sse_heartbeat_s: float = Field(
        15.0, ge=0, description="Seconds between SSE heartbeat comments; 0 sends none."
    )
    stream_resume_grace_s: float = Field(
        10.0,
        gt=0,
        description="How long a streamed generation keeps running with no client reading"
        " it, so that a reconnect (Last-Event-ID) can resume it.",
    )
    stream_replay_ttl_s: float = Field(
        300.0,
        gt=0,
        description="How long a streamed generation's events are kept for replay after"
        " its last one.",
    )
    models_refresh_s: float = Field(
        10.0, gt=0, description="How often each backend's models are listed again."
    )
    health_timeout_s: float = Field(
        2.0, gt=0, description="Time limit of one backend health check in /readyz."
    )
    drain_grace_s: float = Field(
        30.0, gt=0, description="How long calls in flight may take to finish after SIGTERM."
    )
    cors_origins: Addresses = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS."
    )
    cors_origin_regex: str | None = Field(
        None,
        description="Origins allowed by CORS besides cors_origins: a Python regular"
        " expression that the whole origin must match.",
    )
    cors_max_age_s: int = Field(
        600, ge=0, description="How long a browser may keep a CORS preflight's answer."
    )
    cors_allow_credentials: bool = Field(
        False, description="Let allowed origins send cookies and HTTP authentication."
    )
    log_level: str = Field("INFO", description="Level of the gateway's JSON logs.")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("SWITCHYARD_GATEWAY_REDIS_URL", "REDIS_URL"),
        description="Redis for keys, limits and the cache (REDIS_URL works too).",
    )
    tiers: dict[str, TierLimits] = Field(
        default_factory=lambda: dict(DEFAULT_TIERS),
        description="Limits per tier (JSON: {name: {per_minute, per_day, max_streams,"
        " max_new_tokens, tokens_per_day, max_upload_bytes, max_open_batches}}).",
    )
    rate_limit_failure: Literal["open", "closed"] = Field(
        "open",
        description="When Redis cannot be reached: serve without limits (open) or refuse"
        " with 503 (closed).",
    )
    admin_key_sha256: str | None = Field(
        None, description="SHA-256 (hex) of an admin API key given as a secret."
    )
    admin_key_file: Path | None = Field(
        None, description="A file holding an admin API key (a mounted secret)."
    )
    jwt_hs256_secret: SecretStr | None = Field(
        None, description="Accept HS256 bearer tokens signed with this secret."
    )
    jwt_jwks_file: Path | None = Field(
        None, description="Accept RS256 bearer tokens signed by a key in this JWKS file."
    )
    jwt_issuer: str = Field("switchyard", description="Required `iss` of bearer tokens.")
    jwt_audience: str = Field("switchyard-gateway", description="Required `aud`.")
    jwt_roles_claim: str = Field("roles", description="The claim that lists the roles.")
    jwks_url: str | None = Field(
        None,
        description="Accept RS256 bearer tokens signed by a key of the JWKS at this URL"
        " (instead of jwt_jwks_file), fetched at start and kept fresh.",
    )
    jwks_refresh_s: float = Field(300.0, gt=0, description="How often the JWKS URL is fetched.")
    jwks_min_refresh_s: float = Field(
        10.0,
        ge=0,
        description="A token naming an unknown kid fetches the JWKS URL again, at most once"
        " per this many seconds.",
    )
    jwt_max_lifetime_s: int = Field(
        86_400,
        ge=60,
        description="Bearer tokens expiring further ahead are refused; a revocation that"
        " names no expiry is kept this long.",
    )
    jwt_require_jti: bool = Field(
        False, description="Refuse bearer tokens without a jti (which cannot be revoked)."
    )
    token_signing_key: SecretStr | None = Field(
        None,
        description="HS256 secret (32+ bytes, the same on every replica) signing the access"
        " tokens POST /v1/auth/token trades for an API key; unset: no exchange.",
    )
    token_ttl_s: int = Field(900, ge=1, le=86_400, description="Lifetime of an access token.")
    auth_failures_per_minute: int = Field(
        20,
        ge=0,
        description="Invalid credentials an address may present in a minute before it gets"
        " 429 until the minute ends; 0: no limit.",
    )
    metrics_public: bool = Field(True, description="Serve /metrics without a key.")
    seed_keys_file: Path | None = Field(
        None,
        description="Without Redis: a JSON file of keys the in-process key store starts with"
        " (id, owner, role, tier, hash), as switchyard up writes it.",
    )
    cache_ttl_s: int = Field(
        3600, ge=0, description="How long classifier and NER results stay cached; 0: off."
    )
    rollouts_file: Path | None = Field(
        None,
        description="A JSON file of routing tables ({model: {versions: [{version, state,"
        " weight}], ...}}) written to Redis at start for models that have none yet.",
    )
    routing_follow_s: float = Field(
        1.0,
        gt=0,
        description="How often a replica checks for routing changes made elsewhere (the"
        " longest it serves an old table).",
    )
    guardrail_interval_s: float = Field(
        5.0, gt=0, description="How often canaries are judged against their guardrails."
    )
    shadow_timeout_s: float = Field(
        5.0, gt=0, description="Deadline of each call copied to a shadow version."
    )
    shadow_concurrency: int = Field(
        4,
        ge=1,
        description="Most shadow calls this replica runs at once; past that a copy is"
        " dropped (and counted), never queued.",
    )
    judged_min_budget_s: float = Field(
        1.0,
        ge=0,
        description="A deadline missed under a caller's X-Request-Timeout shorter than this"
        " is the caller's choice, not the version's fault: it does not count as an error in"
        " the live figures that guardrails judge.",
    )
    operator_push_s: float = Field(
        1.0,
        gt=0,
        description="Seconds between the snapshots the operator dashboard's stream pushes"
        " (GET /v1/admin/live); a routing change is pushed at once.",
    )
    live_window_s: int = Field(
        300, ge=10, description="Seconds of live figures per version (rollout status)."
    )
    live_bucket_s: int = Field(
        10,
        ge=1,
        description="Granularity of the live figures: a canary is judged on whole buckets"
        " counted since its weight was last set.",
    )
    files_dir: Path = Field(
        default_factory=lambda: state_dir() / "files",
        description="Where uploaded files, batch parts and results are kept (every replica"
        " that runs batches must see the same folder: one machine or a shared volume).",
    )
    files_s3_url: str | None = Field(
        None,
        description="s3://bucket[/prefix]: keep files in an S3-compatible object store"
        " instead of files_dir (the bucket must exist).",
    )
    files_s3_endpoint: str | None = Field(
        None, description="The object store's URL, for S3-compatible stores other than AWS."
    )
    files_s3_region: str | None = Field(None, description="The bucket's region.")
    files_s3_access_key_id: str | None = Field(
        None, description="Object store credentials; unset: the usual AWS environment."
    )
    files_s3_secret_access_key: SecretStr | None = Field(
        None, description="The secret of files_s3_access_key_id."
    )
    files_ttl_s: int = Field(
        30 * 86_400, ge=60, description="How long uploaded files and batch results are kept."
    )
    jobs_run: bool = Field(True, description="This replica runs batch jobs.")
    jobs_lease_s: float = Field(
        30.0,
        gt=0,
        description="How long a replica's claim on a running batch lasts unless renewed: the"
        " longest a batch waits after its replica dies.",
    )
    jobs_poll_s: float = Field(
        1.0, gt=0, description="How often an idle replica looks for a batch to run."
    )
    jobs_max_requests: int = Field(
        50_000, ge=1, description="Most requests (lines) one batch may hold."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Secret (whsec_<base64>) signing batch webhooks (Standard Webhooks);"
        " without it, a batch that names metadata.webhook_url is refused.",
    )
    webhook_allow_hosts: Addresses = Field(
        default_factory=list,
        description="Comma-separated hosts (or addresses) webhooks may reach over plain"
        " http or at loopback, link-local or private addresses; others need https and a"
        " public address.",
    )
    trusted_proxies: Addresses = Field(
        default_factory=list,
        description="Comma-separated proxy addresses whose X-Forwarded-For is believed.",
    )

    @field_validator(
        "classifier_backends",
        "ner_backends",
        "summarizer_backends",
        "cors_origins",
        "webhook_allow_hosts",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origin_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"{value!r} is not a valid regular expression: {error}") from None
        return value

    @field_validator("classifier_backends", "ner_backends", "summarizer_backends")
    @classmethod
    def _host_and_port(cls, value: list[str]) -> list[str]:
        # None (set empty): this gateway has no such service, as in front of a subset
        # started by switchyard up; its requests are refused as unavailable.
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{address!r}: give host:port")
        return value

    def admin_key_hash(self) -> str | None:
        """The admin key's SHA-256, from the hash or the file, if either is set."""
        if self.admin_key_sha256:
            return self.admin_key_sha256.strip().lower()
        if self.admin_key_file is not None:
            return key_hash(self.admin_key_file.read_text().strip())
        return None

    def file_storage(self) -> FileStorage:
        """Where batch files live: the object store when one is set, else the folder."""
        if self.files_s3_url is None:
            return LocalFileStorage(self.files_dir)
        secret = self.files_s3_secret_access_key
        return S3FileStorage(
            self.files_s3_url,
            endpoint=self.files_s3_endpoint,
            region=self.files_s3_region,
            access_key_id=self.files_s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
        )

    def backends(self, service: str) -> list[str]:
        addresses: list[str] = getattr(self, f"{service}_backends")
        return addresses
