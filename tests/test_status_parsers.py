"""Unit tests of the status service's parsers, fed with output captured from Slurm 22.05."""

from pathlib import Path

from services.status.commands import nodes, partitions, reservations, userinfo

DATA = Path(__file__).parent / "data"


def test_nodes_from_sinfo_json():
    parsed = nodes.parse((DATA / "sinfo-22.05.json").read_text())
    assert [n.name for n in parsed] == ["node01"]
    node = parsed[0]
    assert node.cpus == 8 and node.sockets == 1 and node.threads == 1
    assert node.state == ["MIXED"]  # captured while jobs were running
    assert set(node.partitions) == {"normal", "xfer", "debug"}
    assert node.address == "127.0.0.1"


def test_node_states_are_normalized():
    assert nodes.normalize_state("mix*") == "MIXED"
    assert nodes.normalize_state("drng") == "DRAIN"
    assert nodes.normalize_state("ALLOCATED+") == "ALLOCATED"
    assert nodes.normalize_state("idle~") == "IDLE"
    doc = '{"nodes": [{"name": "n1", "cpus": 4, "state": ["MIXED"], "state_flags": ["DRAIN"], "cpu_load": 250}]}'
    node = nodes.parse(doc)[0]
    assert node.state == ["MIXED", "DRAIN"]
    assert node.cpu_load == 2.5


def test_partitions_hide_hidden_unless_asked():
    text = (DATA / "scontrol-partitions-22.05.txt").read_text()
    visible = partitions.parse(text, show_hidden=False)
    assert [p.name for p in visible] == ["normal", "xfer"]
    every = partitions.parse(text, show_hidden=True)
    assert [p.name for p in every] == ["normal", "xfer", "debug"]
    assert every[0].partition == "UP" and every[0].cpus == 8 and every[0].total_nodes == 1


def test_reservations_with_epoch_times_and_spaces_in_names():
    parsed = reservations.parse((DATA / "scontrol-reservations-22.05.txt").read_text())
    assert [r.name for r in parsed] == ["maint", "gpu week"]
    maint, gpu = parsed
    assert maint.start_time == 1795694288 and maint.end_time == 1795697888
    assert maint.state == "inactive" and not maint.HasField("features")
    assert gpu.node_list == "node[01-02]" and gpu.features == "gpu&fast" and gpu.state == "active"


def test_no_reservations():
    assert reservations.parse("No reservations in the system\n") == []


def test_id_output():
    user, group, groups = userinfo.parse_id(
        "uid=1001(alice) gid=1001(alice) groups=1001(alice),100(users),1005(my group)\n")
    assert (user.id, user.name) == ("1001", "alice")
    assert (group.id, group.name) == ("1001", "alice")
    assert [(g.id, g.name) for g in groups] == [("1001", "alice"), ("100", "users"), ("1005", "my group")]


def test_accounts_mark_the_default():
    accounts = userinfo.parse_accounts("proj-a|shared\nproj-a|proj-a\nproj-a|proj-a\n")
    assert [(a.name, a.default) for a in accounts] == [("proj-a", True), ("shared", False)]
    assert userinfo.parse_accounts("") == []
