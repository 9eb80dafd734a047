"""Batch-job callbacks as Standard Webhooks, against a real HTTP receiver on 127.0.0.1:
signed so that ``standardwebhooks`` verifies them, retried only when a retry can help,
under the same ``webhook-id``, and never sent into the internal network unless allowed."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from gateway.jobs.webhooks import (
    Resolver,
    WebhookPolicy,
    WebhookRefused,
    backoff_s,
    check_url,
    deliver,
    event_id,
    is_public,
    new_secret,
)
from tests.webhook_receiver import receiving

pytestmark = pytest.mark.timeout(60)

BATCH: dict[str, Any] = {"id": "batch_abc", "object": "batch", "status": "completed"}
LOCAL = WebhookPolicy(allow=frozenset({"127.0.0.1"}), attempts=3, base_delay_s=0.0)
PUBLIC = "93.184.215.14"


def answering(*answers: list[str]) -> tuple[Resolver, list[str]]:
    """A resolver giving each lookup the next answer (the last one repeated), and the
    hosts it was asked for."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


async def test_a_delivery_is_signed_as_standard_webhooks_verify_it() -> None:
    secret = new_secret()
    with receiving(200) as receiver:
        url = await check_url(f"http://127.0.0.1:{receiver.port}/hooks?job=1", LOCAL)
        sent = await deliver(
            url, BATCH, secret=secret, webhook_id=event_id("batch_abc", "completed"), policy=LOCAL
        )
    assert (sent.delivered, sent.attempts, sent.status, sent.error) == (True, 1, 200, "")
    (got,) = receiver.got
    assert got.path == "/hooks?job=1"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["webhook-id"] == sent.webhook_id == event_id("batch_abc", "completed")
    assert Webhook(secret).verify(got.body, got.headers) == BATCH
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(got.body, got.headers)


async def test_a_503_is_retried_under_the_same_webhook_id() -> None:
    secret = new_secret()
    with receiving(503, 200) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/"
        sent = await deliver(url, BATCH, secret=secret, webhook_id="msg_1", policy=LOCAL)
    assert (sent.delivered, sent.attempts, sent.status) == (True, 2, 200)
    assert [got.headers["webhook-id"] for got in receiver.got] == ["msg_1", "msg_1"]
    for got in receiver.got:
        assert Webhook(secret).verify(got.body, got.headers) == BATCH


@pytest.mark.parametrize("status", [429, 500, 502])
async def test_throttling_and_server_errors_are_retried_up_to_the_attempts(status: int) -> None:
    with receiving(status) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/"
        sent = await deliver(url, BATCH, secret=new_secret(), webhook_id="m", policy=LOCAL)
    assert (sent.delivered, sent.attempts, sent.status) == (False, 3, status)
    assert sent.error == f"answered {status}"
    assert len(receiver.got) == 3


@pytest.mark.parametrize("status", [400, 404, 302])
async def test_other_answers_are_final_and_redirects_not_followed(status: int) -> None:
    with receiving(status) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/"
        sent = await deliver(url, BATCH, secret=new_secret(), webhook_id="m", policy=LOCAL)
    assert (sent.delivered, sent.attempts, sent.status) == (False, 1, status)
    assert [got.path for got in receiver.got] == ["/"]


async def test_a_receiver_that_refuses_connections_is_retried_then_given_up() -> None:
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}/"
        sent = await deliver(url, BATCH, secret=new_secret(), webhook_id="m", policy=LOCAL)
    assert (sent.delivered, sent.attempts, sent.status) == (False, 3, None)
    assert "ConnectError" in sent.error


async def test_what_cannot_be_sent_is_an_outcome_not_an_exception() -> None:
    sent = await deliver("ftp://x/", BATCH, secret=new_secret(), webhook_id="m", policy=LOCAL)
    assert (sent.delivered, sent.attempts) == (False, 0) and "https" in sent.error
    sent = await deliver("https://x/", BATCH, secret="", webhook_id="m", policy=LOCAL)
    assert (sent.delivered, sent.attempts) == (False, 0)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/hook", "https"),
        ("http://example.com/hook", "https"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://10.0.0.1/hook", "10.0.0.1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://[::1]/hook", "::1"),
        ("https://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1"),
        ("https://[fe80::1]/hook", "fe80::1"),
        ("https://0.0.0.0/hook", "0.0.0.0"),
        ("https://224.0.0.1/hook", "224.0.0.1"),
        ("https://100.64.0.1/hook", "100.64.0.1"),
        ("https://localhost/hook", "localhost"),
        ("https:///hook", "host"),
        ("not a url", "https"),
        ("https://example.com/" + "a" * 2048, "longer"),
    ],
)
async def test_urls_into_the_internal_network_or_in_plain_http_are_refused(
    url: str, says: str
) -> None:
    with pytest.raises(WebhookRefused, match="webhook_url") as refused:
        await check_url(url, WebhookPolicy())
    assert says in str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1"),
        ("http://localhost:8080/hook", "localhost"),
        ("http://10.1.2.3/hook", "10.0.0.0/8"),
        ("https://[::1]/hook", "::1"),
        ("https://[::ffff:127.0.0.1]/hook", "127.0.0.0/8"),
    ],
)
async def test_allowlisted_hosts_and_addresses_may_be_called(url: str, allow: str) -> None:
    assert await check_url(url, WebhookPolicy(allow=frozenset({allow}))) == url


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    resolve, asked = answering([PUBLIC, "2606:4700::1"])
    policy = WebhookPolicy(resolve=resolve)
    assert await check_url("https://Hooks.Example/x", policy) == "https://hooks.example/x"
    assert asked == ["hooks.example"]
    resolve, _ = answering([PUBLIC, "192.168.1.7"])
    with pytest.raises(WebhookRefused, match=r"hooks\.example is or resolves to 192\.168\.1\.7"):
        await check_url("https://hooks.example/x", WebhookPolicy(resolve=resolve))
    resolve, _ = answering([])
    with pytest.raises(WebhookRefused, match="does not resolve"):
        await check_url("https://hooks.example/x", WebhookPolicy(resolve=resolve))


async def test_a_name_rebound_to_loopback_after_the_check_is_not_called() -> None:
    with receiving(200) as receiver:
        resolve, asked = answering([PUBLIC], ["127.0.0.1"])
        policy = WebhookPolicy(resolve=resolve, base_delay_s=0.0)
        url = await check_url(f"https://rebinding.example:{receiver.port}/", policy)
        sent = await deliver(url, BATCH, secret=new_secret(), webhook_id="m", policy=policy)
    assert (sent.delivered, sent.attempts, sent.status) == (False, 1, None)
    assert "127.0.0.1" in sent.error
    assert asked == ["rebinding.example", "rebinding.example"]
    assert receiver.got == []


def certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name``: the server's context, the client's."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return server, ssl.create_default_context(cadata=pem.decode())


async def test_https_goes_to_the_checked_address_with_the_host_name_kept(
    tmp_path: Path,
) -> None:
    server_tls, client_tls = certificate(tmp_path, "hooks.example")
    secret = new_secret()
    with receiving(200, tls=server_tls) as receiver:
        resolve, _ = answering(["127.0.0.1"])  # no DNS knows hooks.example
        policy = WebhookPolicy(
            allow=frozenset({"hooks.example"}), resolve=resolve, tls=client_tls, base_delay_s=0.0
        )
        url = await check_url(f"https://hooks.example:{receiver.port}/in", policy)
        sent = await deliver(url, BATCH, secret=secret, webhook_id="m", policy=policy)
    assert sent.delivered, sent.error  # the certificate was verified against the name
    (got,) = receiver.got
    assert got.headers["Host"] == f"hooks.example:{receiver.port}"
    assert Webhook(secret).verify(got.body, got.headers) == BATCH


def test_backoff_doubles_up_to_its_cap_with_half_of_it_jittered() -> None:
    policy = WebhookPolicy(base_delay_s=1.0, max_delay_s=10.0)
    assert [backoff_s(n, policy, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert [backoff_s(n, policy, lambda: 0.0) for n in range(1, 5)] == [0.5, 1, 2, 4]


def test_secrets_and_ids() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert event_id("batch_a", "completed") == event_id("batch_a", "completed")
    assert event_id("batch_a", "completed") != event_id("batch_a", "failed")
    assert is_public(ipaddress.ip_address("2606:4700::1"))
    assert not is_public(ipaddress.ip_address("64:ff9b::a00:1"))  # NAT64 of 10.0.0.1
    assert not is_public(ipaddress.ip_address("2002:7f00:1::"))  # 6to4 of 127.0.0.1
