"""The deployment's SMTP server (CALLERLOOP_SMTP_*), through the standard library's
`smtplib`: STARTTLS or TLS from the first byte with the certificate checked (against
CALLERLOOP_SMTP_CA_CERT when the server's CA is not public), a login when configured."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from callerloop.core.settings import Settings


class MailNotConfigured(OSError):
    """No CALLERLOOP_SMTP_HOST: reported like a server that cannot be reached."""


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def sender(self) -> str:
        return self._settings.smtp_from.strip()

    @contextmanager
    def connected(self) -> Iterator[smtplib.SMTP]:
        """An SMTP session, signed in when a username is set; quit on leaving. Raises
        OSError (smtplib's errors are OSErrors) when the server cannot be used."""
        settings = self._settings
        if not settings.smtp_host:
            raise MailNotConfigured("CALLERLOOP_SMTP_HOST is not set: no mail can go")
        smtp: smtplib.SMTP
        if settings.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=self._tls(),
            )
        else:
            smtp = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        try:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=self._tls())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            yield smtp
        finally:
            with suppress(OSError):  # the mails are accepted (or not) by now
                smtp.quit()
            smtp.close()

    def _tls(self) -> ssl.SSLContext:
        ca = self._settings.smtp_ca_cert
        return ssl.create_default_context(cafile=str(ca) if ca else None)
