"""The Temporal connection from a client config profile, TEMPORAL_* and CALLERLOOP_* settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from callerloop.core.settings import Settings
from callerloop.core.temporal import connect
from callerloop.core.temporal_connection import (
    TemporalConfigError,
    TemporalConnection,
    TlsFiles,
    resolve_connection,
)
from tests.conftest import TEST_ENCRYPTION_KEYS

PROFILES = """
[profile.default]
address = "temporal.internal:7233"
namespace = "callerloop"

[profile.cloud]
address = "callerloop.a1b2c.tmprl.cloud:7233"
namespace = "callerloop.a1b2c"
api_key = "key-from-file"

[profile.mtls]
address = "callerloop.a1b2c.tmprl.cloud:7233"
namespace = "callerloop.a1b2c"

[profile.mtls.tls]
client_cert_path = "{cert}"
client_key_path = "{key}"
server_name = "callerloop.a1b2c.tmprl.cloud"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "client.pem").write_text("CERT", encoding="utf-8")
    (tmp_path / "client.key").write_text("KEY", encoding="utf-8")
    path = tmp_path / "temporal.toml"
    text = PROFILES.format(cert=tmp_path / "client.pem", key=tmp_path / "client.key")
    path.write_text(text, encoding="utf-8")
    return path


def settings(**values: Any) -> Settings:
    return Settings(**values)


def test_without_any_configuration_it_is_the_local_dev_server(tmp_path: Path) -> None:
    connection = resolve_connection(settings(), {"HOME": str(tmp_path)})
    assert connection == TemporalConnection(address="localhost:7233", namespace="default")
    assert connection.connect_kwargs()["tls"] is False


def test_the_default_profile_of_the_config_file(config_file: Path) -> None:
    connection = resolve_connection(settings(), {"TEMPORAL_CONFIG_FILE": str(config_file)})
    assert (connection.address, connection.namespace) == ("temporal.internal:7233", "callerloop")
    assert connection.tls is None and connection.api_key is None
    assert connection.config_file == config_file


def test_an_api_key_profile_turns_tls_on(config_file: Path) -> None:
    connection = resolve_connection(
        settings(temporal_config_file=config_file, temporal_profile="cloud"), {}
    )
    assert connection.address == "callerloop.a1b2c.tmprl.cloud:7233"
    assert connection.namespace == "callerloop.a1b2c"
    assert connection.api_key == "key-from-file"
    assert connection.tls == TlsFiles()
    kwargs = connection.connect_kwargs()
    assert kwargs["api_key"] == "key-from-file"
    assert isinstance(kwargs["tls"], TLSConfig)
    assert "key-from-file" not in connection.describe()
    assert "key-from-file" not in repr(connection)


def test_an_mtls_profile_reads_the_client_certificate_and_key(config_file: Path) -> None:
    connection = resolve_connection(settings(), {"TEMPORAL_PROFILE": "mtls"} | _file(config_file))
    assert connection.tls == TlsFiles(
        client_cert=config_file.parent / "client.pem",
        client_key=config_file.parent / "client.key",
        server_name="callerloop.a1b2c.tmprl.cloud",
    )
    tls = connection.connect_kwargs()["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key) == (b"CERT", b"KEY")
    assert tls.domain == "callerloop.a1b2c.tmprl.cloud"
    assert "mTLS" in connection.describe()


def test_temporal_variables_override_the_profile(config_file: Path, tmp_path: Path) -> None:
    env = {
        **_file(config_file),
        "TEMPORAL_NAMESPACE": "from-env",
        "TEMPORAL_API_KEY": "key-from-env",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem"),
    }
    connection = resolve_connection(settings(), env)
    assert connection.address == "temporal.internal:7233"  # from the file
    assert connection.namespace == "from-env"
    assert connection.api_key == "key-from-env"
    assert connection.tls == TlsFiles(server_ca_cert=tmp_path / "ca.pem")


def test_callerloop_settings_override_temporal_variables_and_the_profile(
    config_file: Path, tmp_path: Path
) -> None:
    env = {**_file(config_file), "TEMPORAL_PROFILE": "mtls", "TEMPORAL_ADDRESS": "env:7233"}
    connection = resolve_connection(
        settings(
            temporal_address="mine:7233",
            temporal_namespace="mine",
            temporal_api_key=SecretStr("my-key"),
            temporal_tls_client_cert=tmp_path / "other.pem",
            temporal_tls_client_key=tmp_path / "other.key",
        ),
        env,
    )
    assert (connection.address, connection.namespace) == ("mine:7233", "mine")
    assert connection.api_key == "my-key"
    assert connection.tls is not None
    assert connection.tls.client_cert == tmp_path / "other.pem"
    assert connection.tls.client_key == tmp_path / "other.key"
    assert connection.tls.server_name == "callerloop.a1b2c.tmprl.cloud"  # kept from the file


def test_callerloop_settings_read_from_the_environment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLERLOOP_TEMPORAL_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("CALLERLOOP_TEMPORAL_PROFILE", "cloud")
    monkeypatch.setenv("CALLERLOOP_TEMPORAL_NAMESPACE", "override")
    connection = resolve_connection(Settings(), {})
    assert connection.address == "callerloop.a1b2c.tmprl.cloud:7233"
    assert connection.namespace == "override"
    assert connection.profile == "cloud"


def test_tls_can_be_turned_off_explicitly(config_file: Path) -> None:
    connection = resolve_connection(
        settings(temporal_config_file=config_file, temporal_profile="cloud", temporal_tls=False),
        {},
    )
    assert connection.api_key == "key-from-file"
    assert connection.tls is None


def test_a_profile_that_does_not_exist_is_named(config_file: Path) -> None:
    with pytest.raises(TemporalConfigError) as error:
        resolve_connection(settings(temporal_config_file=config_file, temporal_profile="prod"), {})
    assert "'prod'" in str(error.value)
    assert str(config_file) in str(error.value)


def test_a_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(TemporalConfigError, match=r"TEMPORAL_CONFIG_FILE: .*nope\.toml"):
        resolve_connection(settings(), {"TEMPORAL_CONFIG_FILE": str(missing)})
    with pytest.raises(TemporalConfigError, match="CALLERLOOP_TEMPORAL_CONFIG_FILE"):
        resolve_connection(settings(temporal_config_file=missing), {})


def test_a_broken_config_file_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[profile.default]\naddres = 'typo:7233'\n", encoding="utf-8")
    with pytest.raises(TemporalConfigError, match=r"broken\.toml"):
        resolve_connection(settings(temporal_config_file=broken), {})


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    with pytest.raises(TemporalConfigError, match="both a client certificate and its key"):
        resolve_connection(settings(temporal_tls_client_cert=tmp_path / "c.pem"), {})


def test_an_unreadable_certificate_is_named(tmp_path: Path) -> None:
    connection = resolve_connection(
        settings(
            temporal_tls_client_cert=tmp_path / "missing.pem",
            temporal_tls_client_key=tmp_path / "missing.key",
        ),
        {},
    )
    with pytest.raises(TemporalConfigError, match=r"TLS client certificate .*missing.pem"):
        connection.connect_kwargs()


async def test_connects_to_a_dev_server_through_a_profile(
    dev_server: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = dev_server.client.service_client.config.target_host
    config = tmp_path / "temporal.toml"
    config.write_text(
        f'[profile.local]\naddress = "{address}"\nnamespace = "default"\n', encoding="utf-8"
    )
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS"):
        monkeypatch.delenv(name, raising=False)
    client = await connect(
        settings(
            temporal_config_file=config,
            temporal_profile="local",
            encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS),
        )
    )
    assert client.service_client.config.target_host == address
    answer = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    assert answer.namespace_info.name == "default"


async def test_an_unreachable_server_is_named_in_the_error(tmp_path: Path) -> None:
    from callerloop.core.temporal import FAIL_FAST

    with pytest.raises(RuntimeError, match=r"cannot connect to Temporal at 127\.0\.0\.1:1 "):
        await connect(
            settings(
                temporal_address="127.0.0.1:1", encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS)
            ),
            FAIL_FAST,
        )


def _file(path: Path) -> dict[str, str]:
    return {"TEMPORAL_CONFIG_FILE": str(path)}


def test_the_local_stack_ignores_a_developers_temporal_cloud_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make run` talks to its own dev server whatever TEMPORAL_* the shell exports."""
    from devtools.devstack import worker_environment

    for name, value in {
        "TEMPORAL_ADDRESS": "callerloop.a1b2c.tmprl.cloud:7233",
        "TEMPORAL_API_KEY": "a-cloud-key",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "c.pem"),
    }.items():
        monkeypatch.setenv(name, value)
    local = Settings(temporal_port=7255, data_dir=tmp_path)
    env = worker_environment(local, "sqlite://", 1.0, {})
    assert not [key for key in env if key.startswith("TEMPORAL_")]
    for key, value in env.items():
        if key.startswith("CALLERLOOP_"):
            monkeypatch.setenv(key, value)
    for key in ("TEMPORAL_ADDRESS", "TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_CERT_PATH"):
        monkeypatch.delenv(key)
    connection = resolve_connection(Settings(), env)
    assert connection.address == "127.0.0.1:7255"
    assert connection.tls is None
