"""A certificate authority of the local system's own, for ``switchyard up --tls``: a CA,
a server certificate per model service and for the gateway (names ``localhost`` and
``127.0.0.1``), a client certificate for the gateway's calls to the services (mTLS), and
one for local callers (grpcurl, the Python client, the launcher's health checks).

Everything is made with the ``cryptography`` package, in one folder (``.switchyard/tls``),
keys readable by their owner only. A second run reuses what is there while it is still
valid, so clients that trust the CA keep working across restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=30)
"""A certificate with less than this left is made again."""
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")

GATEWAY_CLIENT = "gateway-client"
LOCAL_CLIENT = "client"


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class LocalCertificates:
    """Where ``ensure_local_certificates`` put everything."""

    folder: Path
    ca: Pair
    servers: dict[str, Pair]
    """Server certificate per name: each model service's, and the gateway's."""
    clients: dict[str, Pair]
    """Client certificates: the gateway's (``gateway-client``), local callers' (``client``)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    # Created owner-only before the key is written into it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _save(pair: Pair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    _write_private(
        pair.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(pair: Pair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return cert, key


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() > RENEW_BEFORE


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Switchyard local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _subject("Switchyard local CA")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    common_name: str,
    usages: list[x509.ObjectIdentifier],
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(LOCAL_NAMES), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` issued ``cert`` (its name and its signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _usable_leaf(pair: Pair, ca: x509.Certificate, usages: list[x509.ObjectIdentifier]) -> bool:
    loaded = _load(pair)
    if loaded is None:
        return False
    cert, _ = loaded
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        kinds = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return (
        _fresh(cert)
        and signed_by(cert, ca)
        and names == _san(LOCAL_NAMES)
        and set(kinds) == set(usages)
    )


def ensure_local_certificates(folder: Path, servers: Iterable[str]) -> LocalCertificates:
    """The CA and certificates in ``folder``, made (or made again) where missing, not
    valid for long enough, or not issued by the CA there."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ca = Pair(folder / "ca.pem", folder / "ca-key.pem")
    loaded = _load(ca)
    if loaded is None or not _fresh(loaded[0]):
        loaded = _make_ca()
        _save(ca, *loaded)
    # Servers present their certificate to clients, and to the services' own health checks
    # as clients (a probe in the service's container has only that one): both usages.
    server_usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    client_usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    made = LocalCertificates(
        folder,
        ca,
        {name: Pair(folder / f"{name}.pem", folder / f"{name}-key.pem") for name in servers},
        {
            name: Pair(folder / f"{name}.pem", folder / f"{name}-key.pem")
            for name in (GATEWAY_CLIENT, LOCAL_CLIENT)
        },
    )
    wanted = [(n, p, server_usages) for n, p in made.servers.items()]
    wanted += [(n, p, client_usages) for n, p in made.clients.items()]
    for name, pair, usages in wanted:
        if not _usable_leaf(pair, loaded[0], usages):
            _save(pair, *_make_leaf(name, usages, loaded))
    return made
