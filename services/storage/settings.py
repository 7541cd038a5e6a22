"""The storage section of the configuration (`storage:` in config/local.yaml), validated once.

Read by the storage service at start-up and by the launcher (scripts/mesh.py), which starts the
embedded S3 server when `storage.s3.embedded` is present. The systems' transfer job directives
(`systems[].data_operation.datatransfer_jobs_directives`) are parsed by services.common.config and
checked here (`check_directives`).

    storage:
      s3:
        private_url: http://127.0.0.1:38333  # the service and the transfer jobs on the system use it
        public_url: http://127.0.0.1:38333   # signed into the URLs handed to clients
        region: us-east-1
        credentials_file: ...   # JSON {"access_key_id": ..., "secret_access_key": ...}, mode 600;
                                # default <state_dir>/s3/credentials.json (generated for the embedded server)
        url_lifetime_seconds: 604800   # presigned URLs (and how long an upload job waits for its object)
        max_part_size: 16777216        # multipart part size, 5 MiB .. 4 GiB - 1
        lifecycle_days: 10             # staged objects older than this are deleted
        sweep_interval_seconds: 3600   # how often the service's sweeper looks for them
        embedded: {s3_port: 38333, master_port: 39333, volume_port: 39340, filer_port: 39888, admin_port: 39646}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


from services.common.config import Config, ConfigError, SystemConfig, _resolve, read_config_file

MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last
MAX_PART_SIZE = 2**32 - 1  # maxPartSize is a uint32 on the wire (a JSON number)
ACCOUNT_PLACEHOLDER = "{account}"
_DIRECTIVE = re.compile(r"^#SBATCH [^\n\r\x00]+$")


@dataclass(frozen=True)
class EmbeddedS3:
    """The embedded SeaweedFS (`weed mini`) the launcher runs on 127.0.0.1; each port + 10000 is the
    component's gRPC port."""
    s3_port: int
    master_port: int
    volume_port: int
    filer_port: int
    admin_port: int  # SeaweedFS's maintenance admin (its UI off); its worker dials port + 10000
    folder: Path  # <state_dir>/s3: data, identities, credentials (0700)


@dataclass(frozen=True)
class S3Settings:
    private_url: str
    public_url: str
    region: str
    credentials_file: Path
    url_lifetime_seconds: int
    max_part_size: int
    lifecycle_days: int
    sweep_interval_seconds: int
    embedded: EmbeddedS3 | None


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never in a log
        return "S3Credentials(<hidden>)"


def _int(data: dict, key: str, where: str, default: int, low: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}: expected an integer in [{low}, {high}], got {value!r}")
    return value


def _url(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    parts = urlsplit(value) if isinstance(value, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"{where}.{key}: expected an http(s) URL without a path, got {value!r}")
    return value.rstrip("/")


def parse(data: dict, state_dir: Path) -> S3Settings:
    """The validated `storage` section (`data` is its parsed YAML)."""
    if not isinstance(data, dict) or not isinstance(data.get("s3"), dict):
        raise ConfigError("storage.s3: missing")
    s3, w = data["s3"], "storage.s3"
    embedded = None
    if (e := s3.get("embedded")) is not None:
        if not isinstance(e, dict):
            raise ConfigError(f"{w}.embedded: expected a mapping")
        ports = {k: _int(e, k, f"{w}.embedded", d, 1, 55535)
                 for k, d in (("s3_port", 38333), ("master_port", 39333), ("volume_port", 39340),
                              ("filer_port", 39888), ("admin_port", 39646))}
        embedded = EmbeddedS3(**ports, folder=state_dir / "s3")
    credentials = s3.get("credentials_file")
    if credentials is not None and not isinstance(credentials, str):
        raise ConfigError(f"{w}.credentials_file: expected a path")
    return S3Settings(
        private_url=_url(s3, "private_url", w),
        public_url=_url(s3, "public_url", w),
        region=str(s3.get("region", "us-east-1")),
        credentials_file=_resolve(credentials) if credentials else state_dir / "s3" / "credentials.json",
        url_lifetime_seconds=_int(s3, "url_lifetime_seconds", w, 604800, 60, 604800),  # SigV4: ≤ 7 days
        max_part_size=_int(s3, "max_part_size", w, 1 << 30, MIN_PART_SIZE, MAX_PART_SIZE),
        lifecycle_days=_int(s3, "lifecycle_days", w, 10, 1, 36500),
        sweep_interval_seconds=_int(s3, "sweep_interval_seconds", w, 3600, 1, 86400),
        embedded=embedded,
    )


def load(config: Config) -> S3Settings:
    """The storage settings of the configuration file `config` was loaded from; the systems' transfer
    directives are checked too."""
    data = read_config_file(config.path)
    for system in config.systems:
        check_directives(system)
    return parse(data.get("storage"), config.state_dir)


def check_directives(system: SystemConfig) -> None:
    """Each transfer job directive is one `#SBATCH ...` line (it goes verbatim into the job script)."""
    for i, line in enumerate(system.datatransfer_jobs_directives):
        if not isinstance(line, str) or not _DIRECTIVE.match(line):
            raise ConfigError(f"systems[{system.name}].data_operation.datatransfer_jobs_directives[{i}]: "
                              f"expected one '#SBATCH ...' line, got {line!r}")


def read_credentials(settings: S3Settings) -> S3Credentials:
    """The S3 key pair from `credentials_file`."""
    try:
        data = json.loads(settings.credentials_file.read_text())
        return S3Credentials(str(data["access_key_id"]), str(data["secret_access_key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"storage.s3.credentials_file: cannot read {settings.credentials_file}: "
                          f"{type(exc).__name__}") from None
