"""A real SMTP server for the tests (aiosmtpd, in a thread of its own), that keeps every
mail it accepts as the bytes it received, and refuses the recipients it is told to."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: list[str]
    raw: bytes  # the mail exactly as the server received it

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        """The decoded text of the mail, whatever its transfer encoding, with the wire's
        CRLF line ends as newlines."""
        body = self.message.get_body(("plain",))
        assert body is not None and isinstance(body, EmailMessage)
        return str(body.get_content()).replace("\r\n", "\n")


@dataclass
class Mailbox:
    """What the server accepted, and whom it refuses (a 550 at RCPT TO)."""

    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self._lock:
            self.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content))
            )
        return "250 Message accepted for delivery"

    def mails(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def free_port() -> int:
    """A port nothing listens on now (the server down, until it is started on it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpServer:
    """An SMTP server on `port`, to start and stop (a mail server down, then up)."""

    def __init__(
        self,
        mailbox: Mailbox,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
        logins: dict[str, str] | None = None,
        implicit_tls: bool = False,
    ) -> None:
        """`tls`: STARTTLS required, or TLS from the first byte with `implicit_tls`."""
        self.mailbox = mailbox
        self.port = port or free_port()
        self._tls = tls
        self._implicit_tls = implicit_tls
        self._logins = logins
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self._tls is not None and self._implicit_tls:
            options.update(ssl_context=self._tls)
        elif self._tls is not None:
            options.update(tls_context=self._tls, require_starttls=True)
        if self._logins is not None:
            # aiosmtpd sees only STARTTLS as TLS; a TLS socket from the first byte is too.
            options.update(
                authenticator=self._authenticate, auth_require_tls=not self._implicit_tls
            )
        self._controller = Controller(self.mailbox, hostname=HOST, port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        logins = self._logins or {}
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if logins.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def self_signed_certificate(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the CA file (its own certificate) a client
    must be given to trust it, as for a mail server whose CA is not public."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callerloop test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
