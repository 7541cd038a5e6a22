"""scripts/reserved_ports.py: which ports the launcher takes out of the ephemeral range, and the
sysctl's list format it reads and writes (pure logic; the write itself happens at `mesh.py up`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # mesh.py imports it this way

from scripts import reserved_ports  # noqa: E402
from services.common.health_listener import health_address  # noqa: E402


def test_every_listening_port_of_the_configuration_is_reserved(unit_config):
    ports = reserved_ports.mesh_ports(unit_config)
    for name in unit_config.services:
        for address in unit_config.addresses(name):
            assert {address.port, health_address(address).port} <= ports, name
    assert {unit_config.gateway.listen.port, unit_config.gateway.admin.port} <= ports
    assert all(a.port in ports for a in unit_config.metrics.exporters.values())
    assert all(0 < p < 65536 for p in ports)


def test_the_embedded_s3_server_ports_and_their_grpc_ports_are_reserved(unit_config):
    s3 = reserved_ports.s3_server.configured(unit_config)
    assert s3 is not None, "the embedded default configures SeaweedFS"
    ports = reserved_ports.mesh_ports(unit_config)
    assert {s3.embedded.master_port, s3.embedded.master_port + 10000, s3.embedded.s3_port} <= ports


def test_the_sysctl_list_round_trips_with_runs_as_ranges():
    assert reserved_ports._parse("") == set()
    assert reserved_ports._parse("8000, 50051-50053") == {8000, 50051, 50052, 50053}
    assert reserved_ports._format({50053, 8000, 50051, 50052, 9000}) == "8000,9000,50051-50053"
    ports = {1, 2, 3, 7, 9, 10}
    assert reserved_ports._parse(reserved_ports._format(ports)) == ports
