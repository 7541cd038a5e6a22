"""Issue 13: a service busy with slow requests is still routed to, and Envoy keeps it healthy.

Through the real gateway, real tokens, real sshd: the utilities service gets two kinds of work at
once, both legitimate requests: `head` on a FIFO nobody writes (each holds an SSH channel until the
remote `timeout` ends it: 408) and listings of a 20,000-entry folder (each parsed on the service's
event loop). Meanwhile small requests (stat) keep coming and Envoy's admin /clusters is read again
and again. Every sample of the endpoint's health flags must be `healthy`, no answer may be a 503
(Envoy's "no healthy upstream" or any other), and Envoy's count of requests that found no healthy
upstream must not move. Nothing asserts on time.
"""

from __future__ import annotations

import os
import pwd
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

SYSTEM = "local"
OPS = f"/filesystem/{SYSTEM}/ops"
SLOW_HEADS = 16   # alice: each holds a channel until the remote timeout fires
BIG_LISTINGS = 8  # bob: listings parsed on the event loop, in a loop until the slow heads are done
ENTRIES = 20000


def _give_to(path: str, user: str) -> None:
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.lchown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def _admin_clusters(config) -> str:
    return httpx.get(f"http://{config.gateway.admin}/clusters", timeout=10).text


def _health_flags(clusters_text: str, cluster: str) -> list[str]:
    return [line.rsplit("::", 1)[1] for line in clusters_text.splitlines()
            if line.startswith(f"{cluster}::") and "::health_flags::" in line]


def _none_healthy(config, cluster: str) -> int:
    stats = httpx.get(f"http://{config.gateway.admin}/stats", params={"filter": f"^cluster\\.{cluster}\\."},
                      timeout=10).text
    for line in stats.splitlines():
        if line.startswith(f"cluster.{cluster}.upstream_cx_none_healthy:"):
            return int(line.split(":")[1])
    return 0


def test_a_service_busy_with_slow_requests_is_still_routed_to(api, config, workdir):
    alice_dir, bob_dir = workdir("alice"), workdir("bob")
    os.mkfifo(f"{alice_dir}/fifo")
    with open(f"{alice_dir}/small", "w") as f:
        f.write("small\n")
    os.mkdir(f"{bob_dir}/many")
    for i in range(ENTRIES):
        open(f"{bob_dir}/many/f{i:05d}", "wb").close()
    _give_to(alice_dir, "alice")
    _give_to(bob_dir, "bob")
    assert _health_flags(_admin_clusters(config), "utilities") == ["healthy"]
    none_healthy_before = _none_healthy(config, "utilities")

    alice, bob, watcher = api("alice"), api("bob"), api("alice")
    heads_done = threading.Event()
    answers: list[tuple[str, int, str]] = []  # (kind, status, message) of every answer
    lock = threading.Lock()

    def record(kind: str, response: httpx.Response) -> httpx.Response:
        with lock:
            answers.append((kind, response.status_code, response.text[:200] if response.status_code >= 400 else ""))
        return response

    def slow_head():
        record("head", alice.get(f"{OPS}/head", params={"path": f"{alice_dir}/fifo"}))

    def listings():
        count = 0
        while not heads_done.is_set() or count == 0:
            r = record("ls", bob.get(f"{OPS}/ls", params={"path": f"{bob_dir}/many"}))
            if r.status_code == 200:
                assert len(r.json()["output"]) == ENTRIES
            count += 1

    flags: list[str] = []
    with ThreadPoolExecutor(SLOW_HEADS + BIG_LISTINGS) as pool:
        heads = [pool.submit(slow_head) for _ in range(SLOW_HEADS)]
        lists = [pool.submit(listings) for _ in range(BIG_LISTINGS)]
        while not all(h.done() for h in heads):
            flags += _health_flags(_admin_clusters(config), "utilities")
            record("stat", watcher.get(f"{OPS}/stat", params={"path": f"{alice_dir}/small"}))
        heads_done.set()
        for future in heads + lists:
            future.result()
        flags += _health_flags(_admin_clusters(config), "utilities")

    by_kind = {kind: sorted({status for k, status, _ in answers if k == kind}) for kind in ("head", "ls", "stat")}
    assert [a for a in answers if a[1] == 503] == []
    assert by_kind == {"head": [408], "ls": [200], "stat": [200]}, [a for a in answers if a[1] >= 400][:5]
    assert len(flags) > 1 and set(flags) == {"healthy"}, flags
    assert _none_healthy(config, "utilities") == none_healthy_before
