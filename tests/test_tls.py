"""TLS at the edge, mTLS inside: the local CA's certificates, a model service that
requires client certificates, the gateway over HTTPS calling its backends over mTLS, and
``switchyard up --tls``.

Everything runs for real: certificates made by ``switchyard.local_ca``, ``switchyard
serve`` and ``switchyard gateway`` processes, httpx and grpcio as the callers.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509

from gateway.settings import GatewaySettings
from services.runtime.settings import ClassifierSettings
from services.runtime.tls import health_check_tls
from switchyard.cli import main
from switchyard.client import AsyncClassifierClient, ChannelTLS, ClassifierClient
from switchyard.launch_tls import local_certificates
from switchyard.local_ca import LOCAL_CLIENT, LocalCertificates, signed_by
from switchyard.redis_server import LocalRedis
from tests.deploy_support import PROBE_FILE, load_module
from tests.launcher_support import GatewayCaller, LauncherProcess, launcher_env
from tests.support import (
    FULL_NAMES,
    GatewayProcess,
    ServiceProcess,
    gateway_process,
    service_process,
)

START_S = 300.0


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    return local_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    """A second CA with the same names: its certificates must not be accepted."""
    return local_certificates(tmp_path_factory.mktemp("other-tls"))


def trusting(ca: Path) -> ssl.SSLContext:
    """What an HTTPS client that trusts ``ca`` verifies with."""
    return ssl.create_default_context(cafile=str(ca))


def client_tls(certs: LocalCertificates, client: LocalCertificates | None = None) -> ChannelTLS:
    """Trust ``certs``' CA and present ``client``'s (else ``certs``') local client pair."""
    pair = (client or certs).clients[LOCAL_CLIENT]
    return ChannelTLS.from_files(certs.ca.cert, pair.cert, pair.key)


@pytest.fixture(scope="module")
def mtls_classifier(prepared_models: Path, certs: LocalCertificates) -> Iterator[ServiceProcess]:
    own = certs.servers["classifier"]
    with service_process(
        "classifier",
        only_versions="sentiment:v1",
        tls_cert_file=str(own.cert),
        tls_key_file=str(own.key),
        tls_client_ca_file=str(certs.ca.cert),
    ) as service:
        yield service


@pytest.fixture(scope="module")
def https_gateway(
    mtls_classifier: ServiceProcess, certs: LocalCertificates, redis_server: LocalRedis
) -> Iterator[GatewayProcess]:
    own, client = certs.servers["gateway"], certs.clients["gateway-client"]
    with gateway_process(
        {"classifier": mtls_classifier.address, "ner": "", "summarizer": ""},
        tls_cert_file=str(own.cert),
        tls_key_file=str(own.key),
        hsts_max_age_s="31536000",
        backend_tls_ca_file=str(certs.ca.cert),
        backend_tls_cert_file=str(client.cert),
        backend_tls_key_file=str(client.key),
        redis_url=redis_server.url,
    ) as gateway:
        yield gateway


# --- the local CA ------------------------------------------------------------------------


def test_local_ca_certificates_chain_to_it_with_loopback_names(certs: LocalCertificates) -> None:
    ca = _cert(certs.ca.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for pair in [*certs.servers.values(), *certs.clients.values()]:
        cert = _cert(pair.cert)
        assert signed_by(cert, ca), pair.cert
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in names.get_values_for_type(x509.DNSName)
        assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1"}
        assert pair.key.stat().st_mode & 0o077 == 0, "a key readable by others"
    assert set(certs.servers) == {"classifier", "ner", "summarizer", "gateway"}
    server_usage = _cert(certs.servers["ner"].cert).extensions
    usages = server_usage.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert not signed_by(_cert(certs.servers["ner"].cert), _cert(certs.clients["client"].cert))


def test_local_ca_reuses_valid_certificates_and_remakes_broken_ones(tmp_path: Path) -> None:
    first = local_certificates(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    second = local_certificates(tmp_path)
    assert second == first
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
    # A certificate not issued by the CA there (here: another CA's) is made again.
    other = local_certificates(tmp_path / "other")
    other.servers["ner"].cert.replace(first.servers["ner"].cert)
    local_certificates(tmp_path)
    remade = _cert(first.servers["ner"].cert)
    assert signed_by(remade, _cert(first.ca.cert))
    assert first.ca.cert.read_bytes() == before[first.ca.cert]


# --- a model service with mTLS -----------------------------------------------------------


def test_mtls_service_answers_a_client_with_a_certificate_of_its_ca(
    mtls_classifier: ServiceProcess, certs: LocalCertificates
) -> None:
    assert mtls_classifier.wait_log(lambda r: r.get("message") == "listening")["transport"] == (
        "mtls"
    )
    with ClassifierClient(mtls_classifier.address, tls=client_tls(certs), timeout_s=60) as client:
        reply = client.classify(["I love this"])
    assert reply.results[0].labels[0].label in ("positive", "negative")


async def test_mtls_service_answers_the_async_client(
    mtls_classifier: ServiceProcess, certs: LocalCertificates
) -> None:
    async with AsyncClassifierClient(
        mtls_classifier.address, tls=client_tls(certs), timeout_s=60
    ) as client:
        models = await client.list_models()
    assert [m.name for m in models] == ["sentiment"]


def test_mtls_service_refuses_a_plaintext_client(mtls_classifier: ServiceProcess) -> None:
    with (
        ClassifierClient(mtls_classifier.address, timeout_s=5) as client,
        pytest.raises(grpc.RpcError) as refused,
    ):
        client.classify(["I love this"])
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_service_refuses_a_client_without_a_certificate(
    mtls_classifier: ServiceProcess, certs: LocalCertificates
) -> None:
    tls = ChannelTLS.from_files(certs.ca.cert)
    with (
        ClassifierClient(mtls_classifier.address, tls=tls, timeout_s=5) as client,
        pytest.raises(grpc.RpcError) as refused,
    ):
        client.classify(["I love this"])
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_service_refuses_a_client_certificate_of_another_ca(
    mtls_classifier: ServiceProcess, certs: LocalCertificates, other_ca: LocalCertificates
) -> None:
    tls = client_tls(certs, client=other_ca)
    with (
        ClassifierClient(mtls_classifier.address, tls=tls, timeout_s=5) as client,
        pytest.raises(grpc.RpcError) as refused,
    ):
        client.classify(["I love this"])
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_refuses_a_service_whose_certificate_another_ca_signed(
    mtls_classifier: ServiceProcess, certs: LocalCertificates, other_ca: LocalCertificates
) -> None:
    pair = certs.clients[LOCAL_CLIENT]
    tls = ChannelTLS.from_files(other_ca.ca.cert, pair.cert, pair.key)
    with (
        ClassifierClient(mtls_classifier.address, tls=tls, timeout_s=5) as client,
        pytest.raises(grpc.RpcError) as refused,
    ):
        client.classify(["I love this"])
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_settings_must_come_in_pairs(certs: LocalCertificates) -> None:
    with pytest.raises(ValueError, match="together"):
        ClassifierSettings(tls_cert_file=certs.servers["classifier"].cert)
    with pytest.raises(ValueError, match="needs"):
        ClassifierSettings(tls_client_ca_file=certs.ca.cert)
    with pytest.raises(ValueError, match="together"):
        GatewaySettings(tls_key_file=certs.servers["gateway"].key)
    with pytest.raises(ValueError, match="backend_tls_ca_file"):
        GatewaySettings(
            backend_tls_cert_file=certs.clients["gateway-client"].cert,
            backend_tls_key_file=certs.clients["gateway-client"].key,
        )


# --- the gateway over HTTPS, its backends over mTLS --------------------------------------


def test_https_gateway_classifies_over_mtls_and_sends_hsts(
    https_gateway: GatewayProcess, certs: LocalCertificates, client_key: str
) -> None:
    assert https_gateway.url.startswith("https://")
    with httpx.Client(verify=trusting(certs.ca.cert), timeout=60) as http:
        ready = http.get(f"{https_gateway.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.headers["strict-transport-security"] == "max-age=31536000"
        reply = http.post(
            f"{https_gateway.url}/v1/classify",
            json={"text": "What a lovely day"},
            headers={"Authorization": f"Bearer {client_key}"},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"][0]["labels"][0]["label"] == "positive", reply.text
    assert reply.headers["strict-transport-security"] == "max-age=31536000"


def test_https_gateway_refusals_carry_hsts_too(
    https_gateway: GatewayProcess, certs: LocalCertificates
) -> None:
    reply = httpx.post(
        f"{https_gateway.url}/v1/classify",
        json={"text": "no key"},
        verify=trusting(certs.ca.cert),
        timeout=60,
    )
    assert reply.status_code == 401
    assert reply.headers["strict-transport-security"] == "max-age=31536000"


def test_https_gateway_does_not_answer_plain_http(https_gateway: GatewayProcess) -> None:
    plain = https_gateway.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/healthz", timeout=10)


def test_https_gateway_is_refused_by_a_client_that_does_not_trust_its_ca(
    https_gateway: GatewayProcess,
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_gateway.url}/healthz", verify=ssl.create_default_context(), timeout=10)


def test_plain_gateway_sends_no_hsts() -> None:
    # No backends: ready at once, and enough to see the headers of plain HTTP.
    with gateway_process({"classifier": "", "ner": "", "summarizer": ""}) as gateway:
        reply = httpx.get(f"{gateway.url}/healthz", timeout=10)
    assert reply.status_code == 200
    assert "strict-transport-security" not in reply.headers


# --- switchyard up --tls -----------------------------------------------------------------


def test_up_with_tls_serves_https_and_mtls_with_its_own_ca(
    prepared_models: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = launcher_env(tmp_path, prepared_models, {"classifier": 0}) | {
        "SWITCHYARD_CLASSIFIER_ONLY_VERSIONS": "sentiment:v1",
    }
    launcher = LauncherProcess(["--services", "classifier,gateway", "--tls"], env)
    try:
        launcher.wait_up(START_S)
        banner = "".join(launcher.banner())
        state = json.loads((tmp_path / "run.json").read_text())
        assert state["gateway_url"].startswith("https://127.0.0.1:"), state
        assert state["gateway_url"] in banner, banner
        folder = tmp_path / "tls"
        caller = GatewayCaller(state["gateway_url"], state["client_key"])
        with httpx.Client(verify=trusting(folder / "ca.pem"), timeout=60) as http:
            reply = http.post(
                f"{caller.url}/v1/classify",
                json={"text": "I love this"},
                headers={"Authorization": f"Bearer {caller.key}"},
            )
        assert reply.status_code == 200, reply.text
        assert reply.headers["strict-transport-security"].startswith("max-age=")
        # The classifier itself: mTLS with the local client certificate, nothing without.
        address = f"127.0.0.1:{launcher.port('classifier')}"
        tls = ChannelTLS.from_files(
            folder / "ca.pem", folder / "client.pem", folder / "client-key.pem"
        )
        with ClassifierClient(address, tls=tls, timeout_s=60) as client:
            assert client.classify(["I love this"]).results
        with ClassifierClient(address, timeout_s=5) as client, pytest.raises(grpc.RpcError):
            client.classify(["I love this"])
        # The operator's commands find the local gateway and trust its CA from run.json.
        assert state["tls_ca_file"] == str(folder / "ca.pem")
        monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
        monkeypatch.delenv("SWITCHYARD_URL", raising=False)
        monkeypatch.delenv("SWITCHYARD_API_KEY", raising=False)
        capsys.readouterr()
        assert main(["backends", "list"]) == 0
        assert f"127.0.0.1:{launcher.port('classifier')}" in capsys.readouterr().out
    finally:
        launcher.terminate()


def test_the_container_probe_asks_a_tls_service_with_its_own_certificate(
    mtls_classifier: ServiceProcess, certs: LocalCertificates
) -> None:
    probe = load_module(PROBE_FILE, "probe_tls")
    own = certs.servers["classifier"]
    tls = health_check_tls(own.cert, own.key, certs.ca.cert)
    assert probe.check_grpc(mtls_classifier.address, FULL_NAMES["classifier"], tls=tls)[0]
    refused, said = probe.check_grpc(mtls_classifier.address, FULL_NAMES["classifier"])
    assert not refused, said
