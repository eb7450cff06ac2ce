"""Deployment settings: environment variables `CALLERLOOP_…` and a `.env` file."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callerloop.core.mail_address import checked_address

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The real CAD export beside a checkout; never copied into the repository.
SHARED_CAD_EXPORT = (
    PROJECT_ROOT.parent / "shared" / "data" / "cad_police_calls_2025-08-24_to_2025-11-29.csv"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLERLOOP_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / '.data' / 'callerloop.db'}",
        description="SQLAlchemy URL of the application database.",
    )
    agencies_dir: Path = Field(
        default=PROJECT_ROOT / "agencies", description="Folder of agency TOML files."
    )
    # Temporal: these override the TEMPORAL_* variables and the client config file's
    # profile (callerloop.core.temporal_connection says how the layers combine).
    temporal_address: str = Field(
        default="localhost:7233", description="host:port of the Temporal frontend."
    )
    temporal_namespace: str = "default"
    temporal_profile: str = Field(
        default="", description="Profile of the Temporal client config file (TOML)."
    )
    temporal_config_file: Path | None = Field(
        default=None, description="Temporal client config file (TOML) holding the profile."
    )
    temporal_api_key: SecretStr = Field(
        default=SecretStr(""), description="Temporal Cloud API key (turns TLS on)."
    )
    temporal_tls: bool | None = Field(
        default=None, description="Force TLS on or off; unset: on with any TLS file or API key."
    )
    temporal_tls_client_cert: Path | None = Field(
        default=None, description="mTLS client certificate (PEM file)."
    )
    temporal_tls_client_key: Path | None = Field(
        default=None, description="mTLS client private key (PEM file)."
    )
    temporal_tls_server_ca_cert: Path | None = Field(
        default=None, description="CA of the server's certificate when it is not public."
    )
    temporal_tls_server_name: str = Field(
        default="", description="Server name to check in the server's certificate."
    )
    task_queue: str = "callerloop"
    cad_poll_urls: dict[str, SecretStr] = Field(
        default={},
        description="SQLAlchemy URL of each agency's CAD reporting database, by agency id, "
        'as JSON (e.g. {"example": "mssql+pyodbc://…"}): the [cad.poll] of its agency file '
        "reads it. A secret: never in the agency file.",
    )
    sms_provider: Literal["local", "twilio"] = "local"
    public_base_url: str = Field(
        default="http://localhost:8000",
        description="The web app's public URL, exactly as configured at Twilio (links in "
        "texts, webhook signature checks behind a TLS-terminating proxy).",
    )
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    # Only for the local Twilio stand-in: where the client's api.twilio.com and
    # lookups.twilio.com requests go instead (e.g. http://127.0.0.1:8089).
    twilio_api_base_url: str | None = None
    twilio_lookups_base_url: str | None = None
    # Signs the survey form's anti-forgery tokens. When empty, a random key per process:
    # fine for one process; set it when several serve the pages.
    pages_secret: SecretStr = SecretStr("")
    line_type_cache_days: int = Field(default=30, ge=0)
    ingest_rate_per_second: float = Field(
        default=50, gt=0, description="CAD ingest API: requests per second per API key."
    )
    ingest_burst: float = Field(
        default=100, ge=1, description="CAD ingest API: requests a key may send at once."
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        description="Divides every policy duration: 720 runs a day's lifecycle in 2 minutes.",
    )
    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description="KEY_ID:BASE64 AES-256 keys, comma-separated, primary first: every "
        "Temporal payload is encrypted (`callerloop encryption new-key` makes one).",
    )
    allow_unencrypted_payloads: bool = Field(
        default=False,
        description="Development only: connect to Temporal without encryption keys, every "
        "payload in clear (logged loudly). Without it nothing connects unencrypted.",
    )
    accept_plaintext_payloads: bool = Field(
        default=False,
        description="Migration only: read payloads that are not encrypted (histories "
        "written before encryption was turned on). Without it they are refused.",
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(""),
        description="Secret that turns phone numbers into the pseudonyms the opt-out "
        "registry keeps after retention (any long random string; never change it).",
    )
    codec_cors_origins: list[str] = Field(
        default=["http://localhost:8233"],
        description="Temporal UI origins allowed to call the codec server (/codec).",
    )
    codec_access_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer tokens (comma-separated) allowed to decrypt through /codec; "
        "none: only the local machine may (make run).",
    )
    # The web app (`callerloop web`)
    web_host: str = Field(default="127.0.0.1", description="Interface the web app listens on.")
    web_port: int = Field(default=8000, description="Port of the web app (also `make run`).")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-* headers the web app trusts (comma-separated "
        "addresses or networks, * for any).",
    )
    # Health and metrics
    worker_http_address: str = Field(
        default="",
        description="host:port where the worker serves /healthz, /readyz and /metrics "
        "(e.g. 0.0.0.0:9000); empty: none.",
    )
    temporal_metrics_address: str = Field(
        default="",
        description="host:port where the Temporal SDK serves its Prometheus metrics "
        "(e.g. 0.0.0.0:9464); empty: none.",
    )
    workflow_cache_size: int = Field(
        default=400,
        ge=1,
        description="Calls the worker keeps in memory between their events. Each costs "
        "about 270 KB of worker memory in the sandbox (make bench); a call evicted from the "
        "cache replays its history when its next event or timer comes.",
    )
    readiness_timeout: float = Field(
        default=2.0, gt=0, description="Seconds /readyz waits for Temporal and the database."
    )
    # Mail: the supervisors' survey follow-up ([follow_up] in an agency file)
    smtp_host: str = Field(
        default="",
        description="SMTP server the survey follow-up mails go through; empty: no mail "
        "(an agency's [follow_up] is not started, with a warning).",
    )
    smtp_port: int = Field(
        default=587, ge=1, le=65535, description="Its port: 587 (STARTTLS), 465 (SSL), 25."
    )
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="starttls: upgrade the connection (587); ssl: TLS from the first byte "
        "(465); none: plain SMTP, only to a relay on this machine or a trusted network.",
    )
    smtp_username: str = Field(default="", description="SMTP login; empty: no login.")
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = Field(
        default="",
        description="The address the mails come from (e.g. callerloop@police.example.gov); "
        "required with CALLERLOOP_SMTP_HOST.",
    )
    smtp_ca_cert: Path | None = Field(
        default=None, description="CA of the SMTP server's certificate when it is not public."
    )
    smtp_timeout: float = Field(
        default=30.0, gt=0, le=120, description="Seconds to wait on the SMTP server."
    )
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    # Local stack (`make run`)
    data_dir: Path = PROJECT_ROOT / ".data"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    demo_csv: Path = SHARED_CAD_EXPORT
    demo_agency: str = "example"
    demo_speed: float = Field(default=720, gt=0)

    @field_validator(
        "temporal_config_file",
        "temporal_tls",
        "temporal_tls_client_cert",
        "temporal_tls_client_key",
        "temporal_tls_server_ca_cert",
        "smtp_ca_cert",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`VAR=` (as compose writes `${VAR:-}`) means unset, not the path `.`."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _demo_time_scale_only_without_real_twilio(self) -> Self:
        """The time scale divides the sender's pacing too: 720 would send 720 times the
        agency's rate to a real Twilio account (carrier filtering, a suspended sender)."""
        if self.time_scale != 1 and self.sends_through_real_twilio:
            raise ValueError(
                f"CALLERLOOP_TIME_SCALE={self.time_scale:g} with a real Twilio account: the "
                "time scale multiplies the send rate too. Use CALLERLOOP_TIME_SCALE=1 with "
                "Twilio, or CALLERLOOP_SMS_PROVIDER=local (or the Twilio stand-in: "
                "CALLERLOOP_TWILIO_API_BASE_URL on this machine) for a sped-up demo"
            )
        return self

    @model_validator(mode="after")
    def _mail_settings_complete(self) -> Self:
        """A mail server needs a valid sender address, and a password never crosses a
        network in clear."""
        if not self.smtp_host:
            return self
        try:
            checked_address(self.smtp_from)
        except ValueError as error:
            raise ValueError(
                f"CALLERLOOP_SMTP_FROM (the sender, needed with CALLERLOOP_SMTP_HOST): {error}"
            ) from None
        if (
            self.smtp_username
            and self.smtp_security == "none"
            and not _is_loopback_host(self.smtp_host)
        ):
            raise ValueError(
                f"CALLERLOOP_SMTP_USERNAME with CALLERLOOP_SMTP_SECURITY=none: the password "
                f"would cross the network to {self.smtp_host} in clear. Use starttls or ssl"
            )
        return self

    @property
    def sends_through_real_twilio(self) -> bool:
        """Texts reach Twilio itself: the twilio provider, not redirected to a stand-in on
        this machine (a loopback address)."""
        if self.sms_provider != "twilio":
            return False
        return not (self.twilio_api_base_url and _is_loopback_url(self.twilio_api_base_url))


def _is_loopback_url(url: str) -> bool:
    return _is_loopback_host(urlsplit(url).hostname or "")


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
