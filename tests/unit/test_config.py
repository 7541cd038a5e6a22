"""Configuration validation: the shipped file loads; bad values fail with the offending key."""

import copy

import pytest
import yaml

from services.common.config import DEFAULT_CONFIG, ConfigError, parse_config


@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def test_shipped_config_is_valid(raw):
    config = parse_config(raw, DEFAULT_CONFIG)
    assert config.system("local").ssh.port == 2222
    assert config.system("LOCAL") is config.system("local"), "system names are case-insensitive"
    assert config.system("nope") is None
    assert config.certificator.certificate_lifetime_seconds <= 300


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["certificator"].update(certificate_lifetime_seconds=301), "certificator.certificate_lifetime_seconds"),
    (lambda d: d["systems"][0]["ssh"].update(certificate_mode="forever"), "certificate_mode"),
    (lambda d: d["systems"][0]["file_systems"][0].update(path="home"), "file_systems[0].path"),
    (lambda d: d["systems"][0]["file_systems"][0].update(path="/home/../etc"), "file_systems[0].path"),
    (lambda d: d["systems"][0].update(name="bad name"), "systems[0].name"),
    (lambda d: d["gateway"].update(listen="8000"), "gateway.listen"),
    (lambda d: d["gateway"].update(max_response_body_bytes=0), "gateway.max_response_body_bytes"),
    (lambda d: d["gateway"].update(max_response_body_bytes=64 * 1024 * 1024 + 1), "gateway.max_response_body_bytes"),
    (lambda d: d["systems"].append(copy.deepcopy(d["systems"][0])), "duplicate"),
    (lambda d: d["identity"].pop("audience"), "identity.audience"),
    (lambda d: d["certificator"].update(source_addresses=["not-a-network"]), "source_addresses"),
    (lambda d: d["identity"]["embedded_provider"]["clients"][0].update(username="Alice; rm"), "username"),
    (lambda d: d["systems"][0]["ssh"]["timeouts"].update(command_execution=0), "command_execution"),
    (lambda d: d["test_users"][2].update(name="user 01"), r"test_users[2].name"),
    (lambda d: d["test_users"][2].update(accounts=[]), r"test_users[2].accounts"),
    (lambda d: d["test_users"][2].update(accounts=["proj-a;rm"]), r"test_users[2].accounts"),
    (lambda d: d["test_users"].append(copy.deepcopy(d["test_users"][0])), "test_users: duplicate"),
])
def test_bad_values_are_refused(raw, mutate, key):
    mutate(raw)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw, DEFAULT_CONFIG)


def test_test_users(raw):
    """At least 8 test users, alice and bob among them with their accounts; the key is optional."""
    users = {u.name: u for u in parse_config(raw, DEFAULT_CONFIG).test_users}
    assert len(users) >= 8
    assert users["alice"].accounts == ("proj-a", "shared") and users["bob"].accounts == ("proj-b", "shared")
    assert users["user01"].client_id == "firecrest-user01"
    raw.pop("test_users")
    assert parse_config(raw, DEFAULT_CONFIG).test_users == ()
