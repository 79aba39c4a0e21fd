"""amqps:// to a broker that requires client certificates: a private node with a TLS listener
(``verify_peer`` + ``fail_if_no_peer_cert``) and a CA, server and client certificates made here."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.amqp.service import AmqpService
from gateway.config import AmqpSettings
from tests.integration.amqp_fixtures import wait_until
from tests.integration.rabbitmq_node import RabbitNode, free_port, node_problem

pytestmark = pytest.mark.broker


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    ca: bool = False,
    dns: str | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256()), key


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = folder / f"{name}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RabbitNode, Path, int]]:
    problem = node_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a private RabbitMQ node is needed in CI: {problem}")
        pytest.skip(f"cannot start a private RabbitMQ node: {problem}")
    pki = tmp_path_factory.mktemp("pki")
    ca, ca_key = _issue("posgate test CA", _name("posgate test CA"), None, ca=True)
    _write(pki, "ca", ca, ca_key)
    server, server_key = _issue("localhost", ca.subject, ca_key, dns="localhost")
    _write(pki, "server", server, server_key)
    client, client_key = _issue("posgate", ca.subject, ca_key)
    _write(pki, "client", client, client_key)
    os.chmod(pki / "server.key", 0o644)  # the broker runs as this test's user; readable is fine
    tls_port = free_port()
    node = RabbitNode(
        tmp_path_factory.mktemp("rabbit-tls"),
        extra_config=(
            f"listeners.ssl.default = 127.0.0.1:{tls_port}\n"
            f"ssl_options.cacertfile = {pki / 'ca.pem'}\n"
            f"ssl_options.certfile = {pki / 'server.pem'}\n"
            f"ssl_options.keyfile = {pki / 'server.key'}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
            "loopback_users = none\n"
        ),
    )
    try:
        node.start()
        node.ctl("add_user", "posgate-tls", "secret-tls")
        node.ctl("set_permissions", "-p", "/", "posgate-tls", ".*", ".*", ".*")
        yield node, pki, tls_port
    finally:
        node.stop()


def _settings(port: int, pki: Path, *, client_cert: bool) -> AmqpSettings:
    return AmqpSettings(
        enabled=True,
        url=f"amqps://localhost:{port}/%2F",
        username="posgate-tls",
        password="secret-tls",
        heartbeat_s=10,
        prefetch=4,
        max_backoff_s=0.5,
        delivery_limit=3,
        request_timeout_s=5.0,
        ca_file=pki / "ca.pem",
        cert_file=pki / "client.pem" if client_cert else None,
        key_file=pki / "client.key" if client_cert else None,
    )


def test_amqps_with_a_client_certificate_connects(tls_node: tuple[RabbitNode, Path, int]) -> None:
    _node, pki, port = tls_node
    service = AmqpService(_settings(port, pki, client_cert=True), dict, {})
    service.start()
    try:
        wait_until(service.is_up, 20, "connected over TLS with the client certificate")
    finally:
        service.stop(5)


def test_amqps_without_the_client_certificate_is_refused(
    tls_node: tuple[RabbitNode, Path, int],
) -> None:
    _node, pki, port = tls_node
    service = AmqpService(_settings(port, pki, client_cert=False), dict, {})
    service.start()
    try:
        with pytest.raises(AssertionError, match="timed out"):
            wait_until(service.is_up, 4, "must not connect")
        assert service.healthy()  # retrying, not crashed
    finally:
        service.stop(5)
