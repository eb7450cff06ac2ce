"""Where and how to reach Temporal: a dev server, a self-hosted cluster or Temporal Cloud.

The connection is resolved from four layers, each overriding the one before:

1. the defaults: `localhost:7233`, namespace `default`, no TLS;
2. a profile of a Temporal client config file (TOML, `temporalio.envconfig`): the file
   named by CALLERLOOP_TEMPORAL_CONFIG_FILE, else TEMPORAL_CONFIG_FILE, else the SDK's default
   location (`~/.config/temporalio/temporal.toml`); the profile named by
   CALLERLOOP_TEMPORAL_PROFILE, else TEMPORAL_PROFILE, else `default`;
3. the Temporal SDK's own variables: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
   TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
   TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_*;
4. callerloop's settings, when set (an empty value counts as unset):
   CALLERLOOP_TEMPORAL_ADDRESS, …_NAMESPACE, …_API_KEY, …_TLS, …_TLS_CLIENT_CERT,
   …_TLS_CLIENT_KEY, …_TLS_SERVER_CA_CERT, …_TLS_SERVER_NAME.

An API key turns TLS on (Temporal Cloud) unless TLS is explicitly disabled. A named file or
profile that does not exist is an error, never a silent fall-back to localhost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS
from temporalio.service import TLSConfig

from callerloop.core.settings import Settings

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"


class TemporalConfigError(Exception):
    """The Temporal connection settings are unusable; the message names the setting."""


@dataclass(frozen=True)
class TlsFiles:
    """TLS to the Temporal frontend: the client certificate and key for mTLS, the CA that
    signed the server's certificate when it is not a public one, the name to check."""

    client_cert: Path | bytes | None = None  # a file, or PEM data from TEMPORAL_TLS_*_DATA
    client_key: Path | bytes | None = None
    server_ca_cert: Path | bytes | None = None
    server_name: str | None = None

    def to_tls_config(self) -> TLSConfig:
        return TLSConfig(
            client_cert=_read(self.client_cert, "TLS client certificate"),
            client_private_key=_read(self.client_key, "TLS client key"),
            server_root_ca_cert=_read(self.server_ca_cert, "TLS server CA certificate"),
            domain=self.server_name,
        )


@dataclass(frozen=True)
class TemporalConnection:
    """The resolved arguments of `Client.connect`, and where they came from."""

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    api_key: str | None = field(default=None, repr=False)
    tls: TlsFiles | None = None  # None: plain TCP
    rpc_metadata: Mapping[str, str] = field(default_factory=dict)
    profile: str = "default"
    config_file: Path | None = None  # the file the profile was read from, if any

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Client.connect` (TLS files are read now)."""
        return {
            "target_host": self.address,
            "namespace": self.namespace,
            "api_key": self.api_key,
            "tls": self.tls.to_tls_config() if self.tls is not None else False,
            "rpc_metadata": dict(self.rpc_metadata),
        }

    def describe(self) -> str:
        """For logs and errors: never the API key itself."""
        how = "TLS" if self.tls is not None else "plain TCP"
        if self.tls is not None and self.tls.client_cert is not None:
            how = "mTLS"
        if self.api_key:
            how += " + API key"
        source = f", profile {self.profile!r} of {self.config_file}" if self.config_file else ""
        return f"{self.address} namespace {self.namespace!r} ({how}{source})"


def resolve_connection(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> TemporalConnection:
    """The connection the settings, the TEMPORAL_ variables and the config file describe."""
    env = dict(os.environ if environ is None else environ)
    config_file = _config_file(settings, env)
    named_profile = settings.temporal_profile or env.get("TEMPORAL_PROFILE") or None
    profile = _load_profile(named_profile, config_file, env)
    profile_name = named_profile or "default"
    explicit = settings.model_fields_set

    address = profile.address or DEFAULT_ADDRESS
    if "temporal_address" in explicit and settings.temporal_address:
        address = settings.temporal_address
    namespace = profile.namespace or DEFAULT_NAMESPACE
    if "temporal_namespace" in explicit and settings.temporal_namespace:
        namespace = settings.temporal_namespace
    api_key = settings.temporal_api_key.get_secret_value() or profile.api_key or None
    tls = _tls(settings, profile.tls, api_key is not None)
    return TemporalConnection(
        address=address,
        namespace=namespace,
        api_key=api_key,
        tls=tls,
        rpc_metadata=dict(profile.grpc_meta),
        profile=profile_name,
        config_file=config_file if config_file is not None and config_file.exists() else None,
    )


def _config_file(settings: Settings, env: Mapping[str, str]) -> Path | None:
    """The explicitly named config file (which must exist), or None for the SDK default."""
    if settings.temporal_config_file is not None:
        named, setting = settings.temporal_config_file, "CALLERLOOP_TEMPORAL_CONFIG_FILE"
    elif env.get("TEMPORAL_CONFIG_FILE"):
        named, setting = Path(env["TEMPORAL_CONFIG_FILE"]), "TEMPORAL_CONFIG_FILE"
    else:
        return None
    if not named.is_file():
        raise TemporalConfigError(f"{setting}: {named}: no such Temporal client config file")
    return named


def _load_profile(
    name: str | None, config_file: Path | None, env: Mapping[str, str]
) -> ClientConfigProfile:
    """The named profile (which must exist), or the `default` one if there is one."""
    where = str(config_file) if config_file else "the default Temporal config file"
    try:
        return ClientConfigProfile.load(
            name, config_source=config_file, override_env_vars=env, config_file_strict=True
        )
    except Exception as error:  # the SDK bridge's ConfigError is not importable as a type
        raise TemporalConfigError(
            f"Temporal client profile {name or 'default'!r} from {where}: {error} "
            "(set CALLERLOOP_TEMPORAL_PROFILE / TEMPORAL_PROFILE and "
            "CALLERLOOP_TEMPORAL_CONFIG_FILE / TEMPORAL_CONFIG_FILE)"
        ) from error


def _tls(
    settings: Settings, profile_tls: ClientConfigTLS | None, has_api_key: bool
) -> TlsFiles | None:
    """TLS on when asked for, when any TLS file or server name is given, or with an API key
    (Temporal Cloud); off when CALLERLOOP_TEMPORAL_TLS=false or the profile disables it."""
    base = profile_tls or ClientConfigTLS()
    files = TlsFiles(
        client_cert=settings.temporal_tls_client_cert or _path(base.client_cert),
        client_key=settings.temporal_tls_client_key or _path(base.client_private_key),
        server_ca_cert=settings.temporal_tls_server_ca_cert or _path(base.server_root_ca_cert),
        server_name=settings.temporal_tls_server_name or base.server_name,
    )
    if (files.client_cert is None) != (files.client_key is None):
        raise TemporalConfigError(
            "mTLS needs both a client certificate and its key: set "
            "CALLERLOOP_TEMPORAL_TLS_CLIENT_CERT and CALLERLOOP_TEMPORAL_TLS_CLIENT_KEY "
            "(or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)"
        )
    wanted = settings.temporal_tls
    if wanted is None:
        wanted = False if base.disabled is True else None
    if wanted is None:
        wanted = has_api_key or profile_tls is not None or files != TlsFiles()
    return files if wanted else None


def _path(source: Path | str | bytes | None) -> Path | bytes | None:
    """A TLS source of the profile: a file path, or inline PEM data."""
    if isinstance(source, str):
        return source.encode()
    return source


def _read(path: Path | bytes | None, what: str) -> bytes | None:
    if path is None or isinstance(path, bytes):
        return path
    try:
        return path.read_bytes()
    except OSError as error:
        raise TemporalConfigError(f"{what} {path}: cannot read: {error.strerror}") from error
