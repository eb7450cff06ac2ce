"""docker/ checked without a Docker engine: the compose file, the Dockerfile, Prometheus'
targets and the Temporal set-up scripts agree with each other and with the code."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from callerloop.core.settings import PROJECT_ROOT, Settings
from devtools.devstack import StackPaths, dev_server_command
from starter.cli import app as cli_app
from tests.docker.files import (
    COMPOSE_FILE,
    DOCKER_DIR,
    DOCKERFILE,
    ENV_EXAMPLE,
    callerloop_services,
    compose,
    dockerfile,
    dockerfile_env,
    environment,
    interpolate,
    port_of,
    prometheus_targets,
    published_ports,
    services,
)
from workflows import search_attributes as sa

PINNED_TAG = re.compile(r"^[\w./-]+:(v?\d+(\.\d+)+)([\w.-]*)$")


def tool(name: str) -> Path:
    beside = Path(sys.executable).parent / name
    found = beside if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable}: run `uv sync` (dev group)")
    return Path(found)


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in services().items():
        image = str(service["image"])
        if name in callerloop_services():
            continue  # built here from uv.lock
        assert PINNED_TAG.match(image), f"service {name}: image {image!r} is not pinned"
    for instruction in dockerfile():
        if instruction.keyword == "ARG" and "_IMAGE=" in instruction.arguments:
            image = instruction.arguments.partition("=")[2]
            assert PINNED_TAG.match(image), f"Dockerfile: {instruction.arguments} is not pinned"


def test_callerloop_variables_are_settings() -> None:
    """A misspelt CALLERLOOP_ variable would be silently ignored (extra="ignore")."""
    fields = {f"CALLERLOOP_{name.upper()}" for name in Settings.model_fields}
    used = {
        f"compose service {name}": set(environment(service)) for name, service in services().items()
    }
    used["Dockerfile ENV"] = set(dockerfile_env())
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    used[".env.example"] = set(re.findall(r"^(CALLERLOOP_\w+)=", example, re.MULTILINE))
    used["compose interpolations"] = set(re.findall(r"\$\{(CALLERLOOP_\w+)", _compose_text()))
    for where, names in used.items():
        unknown = sorted(n for n in names if n.startswith("CALLERLOOP_") and n not in fields)
        assert not unknown, f"{where}: not settings of callerloop.core.settings.Settings: {unknown}"


def test_every_required_variable_is_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", _compose_text()))
    example = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))
    assert required <= example, f"missing from .env.example: {sorted(required - example)}"
    for secret in (
        "CALLERLOOP_ENCRYPTION_KEYS",
        "CALLERLOOP_PSEUDONYM_KEY",
        "CALLERLOOP_PAGES_SECRET",
        "APP_DB_PASSWORD",
        "TEMPORAL_DB_PASSWORD",
    ):
        assert secret in required, f"{secret} must be required (${{{secret}:?…}})"


def test_the_app_services_share_one_configuration() -> None:
    app = callerloop_services()
    assert set(app) == {"migrate", "worker", "web"}
    environments = [environment(service) for service in app.values()]
    assert all(env == environments[0] for env in environments)
    env = environments[0]
    assert env["CALLERLOOP_DATABASE_URL"].startswith("postgresql+psycopg://callerloop:")
    assert env["CALLERLOOP_DATABASE_URL"].endswith("@db:5432/callerloop")
    db = environment(services()["db"])
    assert (db["POSTGRES_DB"], db["POSTGRES_USER"]) == ("callerloop", "callerloop")
    temporal = interpolate(env["CALLERLOOP_TEMPORAL_ADDRESS"], {})
    assert temporal == "temporal:7233" and "temporal" in services()


def test_migrations_run_before_the_worker_and_the_web_app() -> None:
    app = services()
    assert app["migrate"]["command"] == ["db", "upgrade"]
    assert app["migrate"]["restart"] == "no"
    for name in ("worker", "web"):
        depends = app[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        # Optional: absent when Temporal Cloud replaces the "temporal" profile.
        assert depends["temporal-namespace"]["required"] is False
    for name, service in app.items():
        for needed in service.get("depends_on") or {}:
            assert needed in app, f"{name} depends on unknown service {needed}"


def test_service_commands_are_callerloop_commands() -> None:
    group = typer.main.get_command(cli_app)
    for name, service in callerloop_services().items():
        command = tuple(service["command"])
        assert _find(group, command) is not None, f"service {name}: no `callerloop {command}`"


def test_prometheus_scrapes_the_ports_the_services_serve() -> None:
    app_env = environment(services()["worker"])
    image_env = dockerfile_env()
    worker_port = port_of(app_env["CALLERLOOP_WORKER_HTTP_ADDRESS"])
    sdk_port = port_of(app_env["CALLERLOOP_TEMPORAL_METRICS_ADDRESS"])
    assert worker_port == port_of(image_env["CALLERLOOP_WORKER_HTTP_ADDRESS"])
    assert sdk_port == port_of(image_env["CALLERLOOP_TEMPORAL_METRICS_ADDRESS"])
    web_port = int(image_env["CALLERLOOP_WEB_PORT"])
    assert ("127.0.0.1:8000", str(web_port)) in published_ports(services()["web"])
    temporal_metrics = port_of(environment(services()["temporal"])["PROMETHEUS_ENDPOINT"])
    expected = {
        "callerloop-worker": [("worker", worker_port)],
        "callerloop-worker-temporal-sdk": [("worker", sdk_port)],
        "callerloop-web": [("web", web_port)],
        "callerloop-web-temporal-sdk": [("web", sdk_port)],
        "temporal-server": [("temporal", temporal_metrics)],
    }
    assert prometheus_targets() == expected
    exposed = next(i for i in dockerfile() if i.keyword == "EXPOSE").arguments.split()
    assert {str(worker_port), str(sdk_port), str(web_port)} <= set(exposed)


def test_only_the_proxy_is_public() -> None:
    for name, service in services().items():
        for host, container in published_ports(service):
            if name == "proxy":
                assert container in ("80", "443")
            else:
                assert host.startswith("127.0.0.1:"), f"{name}: port {container} is public"


def test_mounted_files_exist() -> None:
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("./") and source != "./certs":
                assert (DOCKER_DIR / source).exists(), f"{name} mounts missing {source}"


def test_the_namespace_gets_the_workflows_search_attributes() -> None:
    script = (DOCKER_DIR / "temporal" / "setup-namespace.sh").read_text(encoding="utf-8")
    loop = re.search(r"for attribute in (.*?);", script)
    assert loop is not None, "setup-namespace.sh: no `for attribute in …;` loop"
    listed = dict(pair.partition("=")[::2] for pair in loop[1].split())
    types = {"KEYWORD": "Keyword", "INT": "Int"}
    assert listed == {key.name: types[key.indexed_value_type.name] for key in sa.ALL}


def test_the_cluster_has_the_dev_servers_partitions(tmp_path: Path) -> None:
    """The per-sender rate limit needs one partition per task queue, as under `make run`."""
    import yaml

    dynamic = yaml.safe_load((DOCKER_DIR / "temporal" / "dynamicconfig.yaml").read_text())
    command = dev_server_command(Settings(), StackPaths(tmp_path))
    dev = dict(
        command[i + 1].split("=")
        for i, arg in enumerate(command)
        if arg == "--dynamic-config-value"
    )
    for key, value in dev.items():
        assert dynamic[key] == [{"value": int(value)}], key
    mount = environment(services()["temporal"])["DYNAMIC_CONFIG_FILE_PATH"]
    assert any(
        str(v).endswith(f"/etc/temporal/{mount}:ro") for v in services()["temporal"]["volumes"]
    )


def test_dockerfile_runs_the_locked_environment_as_a_non_root_user() -> None:
    instructions = dockerfile()
    runs = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    assert "uv sync --frozen --no-dev --no-install-project" in runs
    assert runs.count("uv sync --frozen --no-dev") == 2
    user = [i.arguments for i in instructions if i.keyword == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert any(i.keyword == "HEALTHCHECK" for i in instructions)
    assert [i.arguments for i in instructions if i.keyword == "ENTRYPOINT"] == ['["callerloop"]']
    assert [i.arguments for i in instructions if i.keyword == "CMD"][-1] == '["worker"]'


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for instruction in dockerfile():
        if instruction.keyword != "COPY" or instruction.arguments.startswith("--from"):
            continue
        *sources, _ = instruction.arguments.split()
        for source in sources:
            path = source.rstrip("/")
            assert (PROJECT_ROOT / path).exists(), f"COPY {source}: no such file"
            assert any(fnmatch.fnmatch(path, pattern) for pattern in allowed), (
                f"COPY {source}: excluded by Dockerfile.dockerignore"
            )
    assert ".env" not in allowed


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(tool("hadolint")), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing_in_the_temporal_scripts() -> None:
    scripts = sorted((DOCKER_DIR / "temporal").glob("*.sh"))
    assert len(scripts) == 2
    result = subprocess.run(
        [str(tool("shellcheck")), "--shell=sh", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_is_one_document_with_a_project_name() -> None:
    assert compose()["name"] == "callerloop"
    assert set(compose()["volumes"]) >= {"callerloop-db", "temporal-db"}


def _compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


def _find(group: object, words: tuple[str, ...]) -> object | None:
    """The `callerloop WORDS…` command, or None."""
    command: object | None = group
    for word in words:
        if not isinstance(command, TyperGroup):
            return None
        command = command.get_command(typer.Context(command), word)
    return command


def test_the_caddyfile_routes_to_the_services(tmp_path: Path) -> None:
    """Caddy's own parser (Debian's `caddy`; .ci/run installs it): the public site keeps
    health and metrics inside, the UI site asks for a password and adds the codec token
    on /codec only, and both reach services and ports of the compose file."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy not found: apt-get install caddy (.ci/run does)")
    env = {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
        **{key: f"<{key}>" for key in environment(services()["proxy"])},
        "WEB_DOMAIN": "callerloop.example.org",
        "TEMPORAL_UI_DOMAIN": "temporal.example.org",
    }
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(DOCKER_DIR / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert adapted.returncode == 0, adapted.stderr
    [server] = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    sites = {route["match"][0]["host"][0]: json.dumps(route) for route in server["routes"]}
    public, ui = sites["callerloop.example.org"], sites["temporal.example.org"]
    assert '"path": ["/metrics", "/healthz", "/readyz", "/dev/*"]' in public
    assert '"status_code": 404' in public
    assert "Authorization" not in public
    assert '"http_basic"' in ui and '"username": "<TEMPORAL_UI_USER>"' in ui
    assert '"Authorization": ["Bearer <CODEC_TOKEN>"]' in ui
    assert '"path": ["/codec/*"]' in ui
    dials = set(re.findall(r'"dial": "([\w-]+):(\d+)"', public + ui))
    assert dials == {("web", "8000"), ("temporal-ui", "8080")}
    ui_port = environment(services()["temporal-ui"])["TEMPORAL_UI_PORT"]
    assert ("temporal-ui", ui_port) in dials
    assert int(dockerfile_env()["CALLERLOOP_WEB_PORT"]) == 8000
