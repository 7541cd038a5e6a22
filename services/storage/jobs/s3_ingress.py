"""The upload job (S3 staging → the system; FirecREST v2's `job_s3_downloader.sh`, job name
"IngressFileTransfer"): waits for the staged object, downloads it beside the target and renames it
into place, then prints "File was successfully downloaded (size: X.XXXMB)".

v2 probes the object every 60 s, so even a small upload waits about a minute; this job probes after
1 s and backs off (1, 2, 4, 7, then every 10 s) for as long as the URLs live. A failed or truncated
download (curl exits non-zero; it checks the length; it retries 5 times, 1 s apart, e.g. across a
restart of the S3 server) leaves the target untouched. Exit 3: the target
is a directory; 4: the object never arrived; 1: the download or the rename failed.
"""

from __future__ import annotations

import posixpath
import uuid

from services.common.ssh.command import shell_join

SUCCESS = "File was successfully downloaded"
MAX_PROBE_INTERVAL = 10

_BODY = r'''
if [ -d "$target" ]; then echo "Unable to download the file: $target is a directory" >&2; exit 3; fi
delay=1 waited=0
until [ "$(curl --silent --output /dev/null --head --write-out '%{http_code}' "$head_url")" = 200 ]; do
  if [ "$waited" -ge "$wait_limit" ]; then
    echo "Unable to download the file: it did not arrive in the staging area in time" >&2; exit 4
  fi
  sleep "$delay"; waited=$((waited + delay))
  delay=$((delay * 3 / 2 + 1)); if [ "$delay" -gt __MAX__ ]; then delay=__MAX__; fi
done
echo "File to transfer found in S3 bucket"
trap 'rm -f -- "$partial"' EXIT
curl --fail --silent --show-error --retry 5 --retry-all-errors --retry-delay 1 --output "$partial" "$get_url" ||
  { rc=$?; echo "Unable to download the file, curl exit code:$rc" >&2; exit 1; }
size=$(stat -c %s -- "$partial")
mv -f -- "$partial" "$target" || { rc=$?; echo "Unable to move the file into place, exit code:$rc" >&2; exit 1; }
echo "__SUCCESS__ (size: $(awk -v s="$size" 'BEGIN { printf "%.3f", s / 1048576 }')MB)"
'''.replace("__MAX__", str(MAX_PROBE_INTERVAL)).replace("__SUCCESS__", SUCCESS)


def partial_path(target: str) -> str:
    """The hidden temporary file beside `target` the download goes to first."""
    directory, name = posixpath.split(target)
    return posixpath.join(directory, f".{name}.f7t-{uuid.uuid4().hex}.part")


def script(target: str, head_url: str, get_url: str, wait_limit_seconds: int) -> str:
    """The job's body: variables assigned from quoted values, then the fixed text above."""
    assignments = [f"{name}={shell_join([value])}" for name, value in (
        ("target", target), ("partial", partial_path(target)), ("head_url", head_url), ("get_url", get_url),
        ("wait_limit", str(int(wait_limit_seconds))))]
    return "\n".join(assignments) + _BODY
