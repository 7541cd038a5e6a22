"""A generated corpus of hostile inputs through the real gateway (issue 7), as alice.

The corpus is built in code from a fixed seed (`corpus()`): paths and file names, chmod modes and
owners, upload file names, job names, environment names and values, working directories and the other
job fields, listing filters, job ids and system names, and the numeric parameters at and past the
int32/int64/uint64 limits (floats, exponents, empty, unicode digits...). Strings mix shell
metacharacters, `$(...)`, backticks, `;`, `|`, `../`, option-looking names, control characters, NUL,
unicode, very long strings and non-UTF-8 percent-encodings. Every shell-looking payload would create a
regular file named by a fresh canary (in /tmp, /var/tmp, /dev/shm, or the current directory) if any
shell, `find -exec`, `dd of=` or sbatch option ever interpreted it.

Destructive operations (mkdir, symlink, chmod, chown, upload, rm) only name paths inside a scratch
folder made for the run, /home/alice/hostile-<token> (or paths outside the file systems, which must be
refused). Job submissions use a script that only echoes; most carry an unsatisfiable constraint, so
that Slurm refuses them after the service has built the whole sbatch command; every 8th runs as a real
job in the scratch folder, and every job is cancelled afterwards.

Asserted after the run:
- no answer is a 5xx (each failure is listed with its input);
- no regular file named like the canary exists anywhere on the machine;
- sentinel folders outside the file systems (in /tmp and /var/tmp, owned by alice so that she *could*
  change them) are unchanged, as are a few system files, and no file owned by alice or bob appeared
  outside /home and /scratch;
- every write the API accepted lies inside the scratch folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import pwd
import random
import shutil
import stat
import subprocess
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SEED = 20261127
SYSTEM = "local"
OPS = f"/filesystem/{SYSTEM}/ops"
JOBS = f"/compute/{SYSTEM}/jobs"
THREADS = 12
SCRIPT = "#!/bin/bash\necho hostile-corpus\n"
UNSATISFIABLE = "f7t-hostile-corpus-no-such-feature"  # sbatch: "Invalid feature specification"
REAL_JOB_EVERY = 8
MIN_CORPUS = 1000
SYSTEM_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/etc/ssh")
FS_ROOTS = ("/home", "/scratch")


# -- the corpus ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One request. `target` is the path a mutating request may write (checked to lie in the folder)."""

    kind: str
    method: str
    url: str
    body: object = None          # JSON, sent with \\u escapes (so NUL and lone surrogates survive)
    content: bytes | None = None  # a raw body instead (invalid JSON, multipart)
    content_type: str | None = None
    value: object = None         # the hostile value, for the report
    target: str | None = None
    real_job: bool = False

    def show(self) -> str:
        return f"{self.kind}: {self.method} {self.url[:160]} value={self.value!r:.160}"


def q(value: str | bytes) -> str:
    """One percent-encoded query or path value; bytes are sent as they are (non-UTF-8 escapes)."""
    if isinstance(value, bytes):
        return urllib.parse.quote_from_bytes(value, safe="")
    return urllib.parse.quote(value, safe="", errors="surrogatepass")


def url(route: str, **params) -> str:
    if not params:
        return route
    return route + "?" + "&".join(f"{k}={q(v)}" for k, v in params.items())


def injections(canary: str) -> list[str]:
    """Payloads that create a regular file named `canary` if anything interprets them."""
    out = []
    for target in (f"/tmp/{canary}", f"/var/tmp/{canary}", f"/dev/shm/{canary}", canary):
        out += [f"$(touch {target})", f"`touch {target}`", f";touch {target}", f"; touch {target} #",
                f"|touch {target}", f"||touch {target}", f"&&touch {target}", f"& touch {target} &",
                f"\ntouch {target}\n", f"\r\ntouch {target}", f"'; touch {target}; '", f'"; touch {target}; "',
                f"${{IFS}}touch${{IFS}}{target}", f">{target}", f"$(touch${{IFS}}{target})"]
    c = f"/tmp/{canary}"
    out += [f"-exec touch {c} ;", f"--output={c}", f"of={c}", f"if=/etc/passwd of={c}",
            f"\n#SBATCH --output={c}\n", f"x\x00;touch {c}", f"<(touch {c})", f"$((`touch {c}`))",
            f"{{touch,{c}}}", f"\\$(touch {c})", f"%0atouch {c}", f"$'\\x3btouch {c}'", f"*(touch {c})",
            f"--export-file=3 $(touch {c})", f"${{PATH:0:0}}$(touch {c})", f"\u037e touch {c}",
            f"\uff04(touch {c})", f"$(printf 'touch {c}'|sh)", f"a\\\n;touch {c}", f"--wrap=touch {c}"]
    return out


WEIRD = ["", ".", "..", "...", " ", "-", "--", "-rf", "--help", "--version", "-n", "-c", "-L", "-exec",
         "--reference=/etc/passwd", "--files0-from=/etc/passwd", "--no-preserve-root", "*", "?", "[", "[a-z]*",
         "~", "~root", "$HOME", "${HOME}", "$(id)", "`id`", ";", "|", "&", "&&", "||", ">", "<", "\\", "'", '"',
         "''", "#", "%", "%s%n%x%p", "%00", "%2e%2e", "%2f", "%252e%252e%252f", "\t", "\n", "\r", "\r\n",
         "\x1b[31mred", "\x7f", "\x01", "\x00", "a\x00b", "\x85", "\u2028", "\u202eevil", "\ufeffbom", "caf\u00e9",
         "\u2603", "\U0001f600", "\ufb01", "\uff0e\uff0e", "\u2215etc", "\ud800", "a\udcffb", "a/../../etc",
         "a/./b", "/", "//", "a" * 255, "a" * 256, "\u00e9" * 128, "a" * 1000, "a/" * 1000, "x" * 5000,
         "\U0001f600" * 300, "con", "nul", "a:b", "a=b", "a,b", "-" * 300]

NUMBERS = ["0", "1", "-1", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295",
           "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
           "-9223372036854775809", "18446744073709551615", "18446744073709551616", "1" + "0" * 40, "1e3", "1E3",
           "1e309", "-1e309", "1.0", "1.5", "0.1", "-0", "+1", "0x10", "0o7", "0b1", "010", " 1", "1 ", "1_000",
           "", "NaN", "nan", "Infinity", "-Infinity", "inf", "true", "null", "\u0661\u0662", "\uff11\uff12",
           "1\n", "1\x00", "1,2", "1;2", "$(id)", b"\xff1", "9" * 400]

NON_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xfe\xff", b"\x80", b"\xe2\x82", b"/home/alice/\xff",
            b"/home/alice/\xc0\xae\xc0\xae/etc", b"/home/alice/caf\xe9", b"\xf4\x90\x80\x80"]

ENV_NAMES = ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "SLURM_CONF", "SBATCH_WAIT", "SBATCH_EXPORT",
             "SBATCH_PARTITION", "SBATCH_OUTPUT", "SBATCH_CHDIR", "BASH_ENV", "ENV", "IFS", "HOME", "SHELL",
             "PS4", "_", "A" * 1000, "A\n", "A\nB", "\nA", "A B", "1A", "A=B", "A-B", "A.B", "A;B", "$(id)",
             "`id`", "A\x00", "\u00c9", "BASH_FUNC_x%%", "", " ", "a" * 70000, "A\t", "A\r"]
# Every name gets the value "x": some (BASH_ENV, ENV, PS4) are expanded by the job's own bash, by
# bash's design and as the job's owner, so a canary there would prove nothing about the service.


def _multipart(filename: str, data: bytes, style: int) -> tuple[bytes, str]:
    boundary = f"f7tHostileBoundary{style}"
    if style == 0:  # quoted, backslash escapes (RFC 7578 style), raw bytes otherwise
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        disposition = b'form-data; name="file"; filename="' + escaped.encode("utf-8", "surrogatepass") + b'"'
    else:  # RFC 5987
        disposition = b"form-data; name=\"file\"; filename*=UTF-8''" + q(filename).encode()
    body = (b"--" + boundary.encode() + b"\r\nContent-Disposition: " + disposition +
            b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" + boundary.encode() + b"--\r\n")
    return body, f"multipart/form-data; boundary={boundary}"


def corpus(base: str, canary: str, sentinels: tuple[str, ...], seed: int = SEED) -> tuple[list[Case], list[Case]]:
    """(first phase, rm phase): the whole corpus, deterministic for a given seed, folder and canary."""
    rng = random.Random(seed)
    inj = injections(canary)
    mixes = [rng.choice(WEIRD[:60]) + rng.choice(inj) + rng.choice(WEIRD[:60]) for _ in range(60)]
    names = WEIRD + inj + mixes
    escapes = [f"{s}/victim.txt" for s in sentinels]
    outside = [*escapes, *(f"/home/..{s}/victim.txt" for s in sentinels), f"/scratch/alice/../..{sentinels[0]}",
               f"//tmp/{canary}", "/etc/passwd", "/", "/root/.ssh", "/proc/self/environ", "/dev/zero",
               f"/home/alice/./../../tmp/{canary}", "/homework/alice", "/scratch2", "relative/path", "~/x",
               f"{base}/../../../tmp", f"{base}/%2e%2e/%2e%2e/tmp"]
    cases: list[Case] = []

    # Reads: every name under a few prefixes (sampled), rotating through the read routes.
    prefixes = [f"{base}/{{}}", f"{base}/sub/{{}}", "/home/alice/{}", "/scratch/alice/{}", "/home/{}",
                "/scratch/{}", "/tmp/{}", "/home/alice/../{}", "{}", "//home/alice/{}", f"{base}/./{{}}",
                "/etc/{}"]
    reads = [("ls", {"showHidden": "true"}), ("stat", {}), ("head", {"lines": "3"}), ("tail", {"bytes": "5"}),
             ("view", {}), ("checksum", {}), ("file", {}), ("download", {}), ("ls", {"dereference": "true"}),
             ("stat", {"dereference": "true"})]
    i = 0
    for name in names:
        for prefix in rng.sample(prefixes, 4):
            route, extra = reads[i % len(reads)]
            i += 1
            path = prefix.replace("{}", name)
            cases.append(Case(f"{route} path", "GET", url(f"{OPS}/{route}", path=path, **extra), value=path))
    for path in outside:
        for route, extra in reads:
            cases.append(Case(f"{route} outside", "GET", url(f"{OPS}/{route}", path=path, **extra), value=path))
    for raw in NON_UTF8:
        for route in ("ls", "stat", "head", "checksum"):
            cases.append(Case(f"{route} non-UTF-8 path", "GET", url(f"{OPS}/{route}", path=raw), value=raw))
        cases.append(Case("head non-UTF-8 lines", "GET", url(f"{OPS}/head", path=f"{base}/f.txt", lines=raw),
                          value=raw))

    # Numbers: head/tail/view counts and the boolean flags.
    text = f"{base}/f.txt"
    for n in NUMBERS:
        for route, param in (("head", "lines"), ("head", "bytes"), ("tail", "lines"), ("tail", "bytes"),
                             ("view", "size"), ("view", "offset")):
            flags = {}
            if route != "view" and rng.random() < 0.5:
                flags = {"skipTrailing" if route == "head" else "skipHeading": "true"}
            cases.append(Case(f"{route} {param}", "GET", url(f"{OPS}/{route}", path=text, **{param: n}, **flags),
                              value=n))
        for route, flag in (("ls", "showHidden"), ("ls", "numericUid"), ("stat", "dereference"),
                            ("head", "skipTrailing")):
            cases.append(Case(f"{route} {flag}", "GET", url(f"{OPS}/{route}", path=base, **{flag: n}), value=n))

    # mkdir: inside the folder (with and without parent), and outside the file systems.
    for k, name in enumerate(names):
        path = f"{base}/m/{name}"
        cases.append(Case("mkdir path", "POST", f"{OPS}/mkdir", body={"path": path, "parent": k % 2 == 0},
                          value=name, target=path))
    for path in outside:
        cases.append(Case("mkdir outside", "POST", f"{OPS}/mkdir", body={"sourcePath": path, "parent": True},
                          value=path, target=path))
    for parent in (1, "yes", None, [], {}, 1e300, "true\x00"):
        cases.append(Case("mkdir parent type", "POST", f"{OPS}/mkdir",
                          body={"path": f"{base}/m/typed", "parent": parent}, value=parent, target=f"{base}/m/typed"))

    # symlink: hostile link names in the folder, hostile targets, escapes.
    for k, name in enumerate(names[::2]):
        link = f"{base}/l/{name}"
        target = rng.choice([f"{base}/f.txt", f"{base}/{name}", f"/home/alice/{name}", "/scratch"])
        cases.append(Case("symlink linkPath", "POST", f"{OPS}/symlink", body={"path": target, "linkPath": link},
                          value=name, target=link))
    for path in outside:
        cases.append(Case("symlink target outside", "POST", f"{OPS}/symlink",
                          body={"path": path, "linkPath": f"{base}/l/escape-{len(cases)}"}, value=path,
                          target=f"{base}/l/escape-{len(cases)}"))
        cases.append(Case("symlink link outside", "POST", f"{OPS}/symlink",
                          body={"path": f"{base}/f.txt", "linkPath": path}, value=path, target=path))

    # chmod: hostile modes on one file of the folder; hostile paths in the folder with a harmless mode.
    modes = [*WEIRD, *inj[:30], *(n for n in NUMBERS if isinstance(n, str)), "755", "0", "u+x", "a=", "+t", "-w", "u=rw,go=r", "g=u", "7777",
             "17777", "u+x,", "=755", "1e3", "0755 ", " 0755", "u+s", "+X"]
    for mode in modes:
        cases.append(Case("chmod mode", "PUT", f"{OPS}/chmod", body={"path": f"{base}/chmod-target", "mode": mode},
                          value=mode, target=f"{base}/chmod-target"))
    for route, method, raw in (("mkdir", "POST", b'{"path": "%s/m/a\xffb", "parent": true}'),
                               ("chmod", "PUT", b'{"path": "%s/chmod-target", "mode": "7\xff"}'),
                               ("symlink", "POST", b'{"path": "%s/f.txt", "linkPath": "%s/l/\xc0\xae"}'),
                               ("mkdir", "POST", b'{"path": "%s/m/\\ud800"}')):
        content = raw.replace(b"%s", base.encode())
        cases.append(Case(f"{route} non-UTF-8 JSON", method, f"{OPS}/{route}", content=content,
                          content_type="application/json", value=raw))
    for mode in (755, -1, 1e300, True, None, [], {"a": 1}):
        cases.append(Case("chmod mode type", "PUT", f"{OPS}/chmod",
                          body={"path": f"{base}/chmod-target", "mode": mode}, value=mode, target=f"{base}/chmod-target"))
    for name in names[1::3]:
        path = f"{base}/m/{name}"
        cases.append(Case("chmod path", "PUT", f"{OPS}/chmod", body={"sourcePath": path, "mode": "u+rwx"},
                          value=name, target=path))
    for path in outside:
        cases.append(Case("chmod outside", "PUT", f"{OPS}/chmod", body={"path": path, "mode": "777"}, value=path,
                          target=path))

    # chown: hostile owners and groups on one file of the folder.
    owners = [*WEIRD[:70], *inj[:20], "root", "0", "alice", "bob", "65534", "-1", "4294967295", "99999999999"]
    for k, owner in enumerate(owners):
        body = {"path": f"{base}/chown-target", "owner": owner} if k % 2 else \
            {"path": f"{base}/chown-target", "group": owner}
        cases.append(Case("chown owner/group", "PUT", f"{OPS}/chown", body=body, value=owner,
                          target=f"{base}/chown-target"))
    for path in outside[:8]:
        cases.append(Case("chown outside", "PUT", f"{OPS}/chown", body={"path": path, "owner": "alice"},
                          value=path, target=path))

    # upload: hostile file names (both filename encodings) into the folder, and hostile folders.
    for k, name in enumerate(names):
        content, ctype = _multipart(name, b"hostile\n", k % 2)
        cases.append(Case("upload filename", "POST", url(f"{OPS}/upload", path=f"{base}/u"), content=content,
                          content_type=ctype, value=name, target=f"{base}/u/{name}"))
    for name in names[::4]:
        content, ctype = _multipart("f", b"x", 0)
        cases.append(Case("upload folder", "POST", url(f"{OPS}/upload", path=f"{base}/m/{name}"), content=content,
                          content_type=ctype, value=name, target=f"{base}/m/{name}/f"))
    for path in outside[:10]:
        content, ctype = _multipart("victim.txt", b"overwritten\n", 0)
        cases.append(Case("upload outside", "POST", url(f"{OPS}/upload", path=path), content=content,
                          content_type=ctype, value=path, target=path))
    content, _ = _multipart("f", b"x", 0)
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=", "text/plain", "",
                  "multipart/form-data; boundary=" + "b" * 5000):
        cases.append(Case("upload content type", "POST", url(f"{OPS}/upload", path=f"{base}/u"), content=content,
                          content_type=ctype, value=ctype, target=f"{base}/u/f"))

    # Compute: submissions with one hostile field each.
    submits: list[tuple[str, dict, object]] = []
    for name in names[::2]:
        submits.append(("submit name", {"name": name}, name))
    for name in ENV_NAMES:
        submits.append(("submit env name", {"env": {name: "x"}}, name))
    for value in [*WEIRD, *inj]:
        submits.append(("submit env value", {"env": {"F7T_HOSTILE": value}}, value))
        if rng.random() < 0.3:
            submits.append(("submit env list", {"env": [f"F7T_HOSTILE={value}"]}, value))
    for value in (1e308, -0.0, 9223372036854775807, 18446744073709551616, 1.5, True, None, [1, "a"],
                  {"nested": {"x": [1]}}, "", [], {}):
        submits.append(("submit env typed", {"env": {"F7T_TYPED": value}}, value))
    for env in ([1, 2], ["NOEQUALS"], ["=x"], "A=B", 42, None, [None], [["A=B"]]):
        submits.append(("submit env shape", {"env": env}, env))
    for name in names[::3]:
        submits.append(("submit workingDirectory", {"workingDirectory": f"{base}/{name}"}, name))
    for path in [*outside, *(p.replace("{}", "x") for p in prefixes)]:
        submits.append(("submit workingDirectory outside", {"workingDirectory": path}, path))
    for field in ("account", "partition", "reservation", "constraints"):
        for value in rng.sample([*WEIRD, *inj], 15):
            submits.append((f"submit {field}", {field: value}, value))
    for field in ("standardInput", "standardOutput", "standardError", "scriptPath"):
        for name in rng.sample([*WEIRD, *inj], 12):
            submits.append((f"submit {field}", {field: f"{base}/{name}"}, name))
        submits.append((f"submit {field} relative", {field: "relative.txt"}, "relative.txt"))
    for value in (42, True, None, ["a"], {"a": 1}):
        submits.append(("submit name type", {"name": value}, value))
        submits.append(("submit workingDirectory type", {"workingDirectory": value}, value))
    for k, (kind, fields, value) in enumerate(submits):
        job = {"workingDirectory": base, "script": SCRIPT, **fields}
        if kind == "submit scriptPath" or kind == "submit scriptPath relative":
            del job["script"]
        real = k % REAL_JOB_EVERY == 0 and kind not in ("submit constraints",)
        if not real and "constraints" not in fields:
            job["constraints"] = UNSATISFIABLE
        cases.append(Case(kind, "POST", JOBS, body={"job": job}, value=value, real_job=real))
    for depth in (64, 200, 5000):
        nested = "[" * depth + "]" * depth
        raw = ('{"job": {"workingDirectory": "%s", "script": "#!/bin/bash\\n", "constraints": "%s", '
               '"env": {"A": %s}}}' % (base, UNSATISFIABLE, nested))
        cases.append(Case("submit deep env", "POST", JOBS, content=raw.encode(), content_type="application/json",
                          value=f"depth {depth}"))
    for raw in (b'{"job": {"name": 1e400}}', b'{"job": {"workingDirectory": "/home/alice", "script": "x", '
                b'"env": {"A": NaN}}}', b'{"job": ', b"\xff\xfe", b'{"job": {"name": "\\ud800"}}',
                b'{"job": {"name": "a\xffb", "workingDirectory": "/home/alice", "script": "x"}}', b"[]", b"null",
                b'{"job": {"workingDirectory": "/home/alice", "script": "x", "name": "\\u0000"}}'):
        cases.append(Case("submit raw body", "POST", JOBS, content=raw, content_type="application/json", value=raw))

    # Listing filters, job ids, system names.
    for value in rng.sample([*WEIRD, *inj, *NUMBERS], 50):
        param = rng.choice(["name", "account", "time_window", "allusers"])
        cases.append(Case(f"jobs {param}", "GET", url(JOBS, **{param: value}), value=value))
    for raw in NON_UTF8[:4]:
        cases.append(Case("jobs name non-UTF-8", "GET", url(JOBS, name=raw), value=raw))
    job_ids = ["1;id", "..", "%2e%2e", "1 2", "$(id)", "`id`", "-1", "abc", "a" * 300, "1\n2", "\x00",
               "99999999999999999999", "1.5", "1e3", "\u0661", "\ud800", b"\xff", "1/2", "*", "~"]
    for job_id in job_ids:
        encoded = q(job_id)
        cases.append(Case("job id", "GET", f"{JOBS}/{encoded}", value=job_id))
        cases.append(Case("job id metadata", "GET", f"{JOBS}/{encoded}/metadata", value=job_id))
        if not (isinstance(job_id, str) and job_id.isdigit()):  # never cancel a real job by accident
            cases.append(Case("job id cancel", "DELETE", f"{JOBS}/{encoded}", value=job_id))
            cases.append(Case("job id attach", "PUT", f"{JOBS}/{encoded}/attach",
                              body={"command": f"touch /tmp/{canary}"}, value=job_id))
    for system in ["LOCAL", "local;id", "..", "%2e%2e", "local\x00", "local\n", "a" * 300, "$(id)", b"\xff",
                   b"local\xff", "\u0131ocal", " local"]:
        encoded = q(system)
        cases.append(Case("system name", "GET", url(f"/filesystem/{encoded}/ops/ls", path="/home/alice"),
                          value=system))
        cases.append(Case("system name", "GET", f"/compute/{encoded}/jobs", value=system))

    # rm (second phase): what the first phase created, by hostile names, inside the folder only.
    removals = []
    for sub in ("m", "l", "u"):
        for name in names[::(1 if sub == "m" else 2)]:
            path = f"{base}/{sub}/{name}"
            removals.append(Case("rm path", "DELETE", url(f"{OPS}/rm", path=path), value=name, target=path))
    for path in outside:
        removals.append(Case("rm outside", "DELETE", url(f"{OPS}/rm", path=path), value=path, target=path))
    return cases, removals


# -- running it --------------------------------------------------------------------------------------------

class Runner:
    """Sends cases from a few threads (one httpx client each); retries only while the mesh is being
    redeployed (connection refused or reset, or a 503 from the gateway)."""

    def __init__(self, base_url: str, token: str):
        self._base_url, self._token = base_url, token
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self._base_url, timeout=60,
                                  headers={"Authorization": f"Bearer {self._token}"})
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, case: Case) -> tuple[Case, int, str]:
        headers = {}
        if case.content is not None:
            content = case.content
            headers["content-type"] = case.content_type or ""
        elif case.body is not None:
            content = json.dumps(case.body).encode()  # ensure_ascii: \u escapes
            headers["content-type"] = "application/json"
        else:
            content = None
        for attempt in range(6):
            try:
                r = self._client().request(case.method, case.url, content=content, headers=headers)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                time.sleep(0.5 * (attempt + 1))
                continue
            if r.status_code == 503 and attempt < 5 and "upstream" in r.text.lower():
                time.sleep(0.5 * (attempt + 1))
                continue
            return case, r.status_code, r.text[:300]
        return case, 599, "no answer after retries (gateway unreachable)"

    def run(self, cases: list[Case]) -> list[tuple[Case, int, str]]:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(self.send, cases))

    def close(self):
        for c in self._clients:
            c.close()


def _snapshot(root: str) -> dict:
    """Everything about a folder tree that a write, chmod, chown or rename would change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *sorted(dirnames), *sorted(filenames)]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                                                st.st_ctime_ns, digest)
    return out


def _system_stats() -> dict:
    return {p: (os.lstat(p).st_mtime_ns, os.lstat(p).st_ctime_ns) for p in SYSTEM_FILES if os.path.lexists(p)}


def _owned_outside_file_systems(slurm_spool: str) -> set[str]:
    """Files owned by alice or bob outside /home and /scratch (root's view of the whole machine), but
    for slurmd's spool, where the job scripts of every running job (the parallel tests' too) live as
    their owner's."""
    out = subprocess.run(["find", "/", "/dev/shm", "/run", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys",
                          "-o", "-path", "/home", "-o", "-path", "/scratch", "-o", "-path", slurm_spool, ")",
                          "-prune", "-o", "(", "-user", "alice", "-o", "-user", "bob", ")", "-print0"],
                         capture_output=True).stdout
    return set(out.decode("utf-8", "surrogateescape").split("\0")) - {""}


def _canary_files(canary: str) -> list[str]:
    """Regular files whose name starts with the canary, anywhere (mkdir and symlink with hostile paths
    make directories and links named like it, never regular files)."""
    out = subprocess.run(["find", "/", "/dev/shm", "/run", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys",
                          ")", "-prune", "-o", "-type", "f", "-name", f"{canary}*", "-print0"],
                         capture_output=True).stdout
    return sorted(set(out.decode("utf-8", "surrogateescape").split("\0")) - {""})


def _chown(path: str, user: str) -> None:
    pw = pwd.getpwnam(user)
    os.lchown(path, pw.pw_uid, pw.pw_gid)


@pytest.fixture(scope="module")
def hostile_run(api, gateway_url, token, config):
    """Runs the corpus once; returns what the tests below assert on."""
    tag = uuid.uuid4().hex[:12]
    canary = f"f7tcanary{tag}"
    base = f"/home/alice/hostile-{tag}"
    alice = api("alice")

    # Sentinels outside the file systems that alice could change, were a path to reach them.
    sentinels = (f"/tmp/f7t-sentinel-{tag}", f"/var/tmp/f7t-sentinel-{tag}")
    for s in sentinels:
        os.makedirs(f"{s}/sub")
        Path(f"{s}/victim.txt").write_text("untouched\n")
        for p in (s, f"{s}/sub", f"{s}/victim.txt"):
            _chown(p, "alice")
            os.chmod(p, 0o777 if os.path.isdir(p) else 0o666)
    before = {s: _snapshot(s) for s in sentinels}
    system_before = _system_stats()
    slurm_spool = str(config.state("cluster", "slurm", "slurmd"))
    owned_before = _owned_outside_file_systems(slurm_spool)
    home_before = {root: set(os.listdir(root)) for root in ("/home", "/home/alice", "/scratch", "/scratch/alice")}

    for sub in ("", "/sub", "/m", "/l", "/u"):
        r = alice.post(f"{OPS}/mkdir", json={"path": base + sub, "parent": True})
        assert r.status_code == 201, r.text
    for name, data in (("f.txt", b"one\ntwo\nthree\n"), ("chmod-target", b"c\n"), ("chown-target", b"o\n")):
        r = alice.post(f"{OPS}/upload", params={"path": base}, files={"file": (name, data)})
        assert r.status_code == 204, r.text

    first, removals = corpus(base, canary, sentinels)
    runner = Runner(gateway_url, token("alice"))
    try:
        results = runner.run(first)
        # Where accepted writes landed, while they still exist (before the rm phase).
        landed = [(case, os.path.realpath(os.path.dirname(case.target.rstrip("/") or "/")))
                  for case, status, _ in results if case.target and 200 <= status < 300]
        results += runner.run(removals)
    finally:
        runner.close()

    jobs = [json.loads(body)["jobId"] for case, status, body in results
            if case.method == "POST" and case.url == JOBS and status == 201]
    for job_id in jobs:
        alice.delete(f"{JOBS}/{job_id}")
    deadline = time.monotonic() + 60  # a bound on waiting for the cancelled jobs, not an assertion
    while jobs and time.monotonic() < deadline:
        active = subprocess.run(["squeue", "--noheader", "--format=%i", f"--jobs={','.join(jobs)}"],
                                capture_output=True, text=True).stdout.split()
        if not active:
            break
        time.sleep(0.5)

    observed = {
        "corpus_size": len(first) + len(removals),
        "results": results,
        "jobs": jobs,
        "canary_files": _canary_files(canary),
        "sentinels_changed": {s: sorted(set(before[s].items()) ^ set(_snapshot(s).items())) for s in sentinels},
        "system_changed": {p: v for p, v in _system_stats().items() if system_before.get(p) != v},
        "owned_outside": sorted(_owned_outside_file_systems(slurm_spool) - owned_before),
        "landed": landed,
        "base": base,
        "new_top_level": {root: sorted(n for n in set(os.listdir(root)) - names if tag in n or canary in n)
                          for root, names in home_before.items()},
    }
    yield observed

    alice.delete(f"{OPS}/rm", params={"path": base})
    shutil.rmtree(base, ignore_errors=True)
    for s in sentinels:
        shutil.rmtree(s, ignore_errors=True)


def test_the_corpus_is_large_and_deterministic(hostile_run):
    assert hostile_run["corpus_size"] >= MIN_CORPUS
    again = corpus("/home/alice/hostile-x", "f7tcanaryx", ("/tmp/s", "/var/tmp/s"))
    assert again == corpus("/home/alice/hostile-x", "f7tcanaryx", ("/tmp/s", "/var/tmp/s"))
    assert sum(map(len, again)) == hostile_run["corpus_size"]


def test_no_hostile_input_gets_a_5xx(hostile_run):
    failures = [f"{status} {case.show()} -> {body[:200]}" for case, status, body in hostile_run["results"]
                if status >= 500]
    assert not failures, f"{len(failures)} inputs got a 5xx:\n" + "\n".join(failures[:80])


def test_no_canary_command_ever_ran(hostile_run):
    assert hostile_run["canary_files"] == []


def test_nothing_outside_the_file_systems_changed(hostile_run):
    assert hostile_run["sentinels_changed"] == {s: [] for s in hostile_run["sentinels_changed"]}
    assert hostile_run["system_changed"] == {}
    assert hostile_run["owned_outside"] == []


def test_accepted_writes_landed_inside_the_scratch_folder(hostile_run):
    base = hostile_run["base"]
    real_base = os.path.realpath(base)
    assert hostile_run["landed"], "the corpus made no successful write at all"
    def under(path: str, root: str) -> bool:
        return (path + "/").startswith(root + "/")

    outside = [(case.show(), parent) for case, parent in hostile_run["landed"]
               if not under(posixpath.normpath(case.target), base) or not under(parent, real_base)]
    assert outside == []
    assert all(names == [] or names == [os.path.basename(base)] for names in hostile_run["new_top_level"].values()), \
        hostile_run["new_top_level"]


def test_some_jobs_really_ran_and_were_cancelled(hostile_run):
    # The corpus is only meaningful for compute if some hostile submissions became real jobs.
    assert len(hostile_run["jobs"]) >= 5
    active = subprocess.run(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(hostile_run['jobs'])}"],
                            capture_output=True, text=True).stdout
    assert all(state not in ("PENDING", "RUNNING") for _, state in
               (line.split() for line in active.splitlines())), active
