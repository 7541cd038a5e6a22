"""The hostile-input corpus of tests/security/test_hostile_inputs.py, built in code from a fixed seed:
one `Case` per request (method, URL, JSON or multipart body) over every route's parameters, with
shell metacharacters, option-looking names, control characters, NUL, unicode, very long strings,
non-UTF-8 percent-encodings and numbers at and past the integer limits; every shell-looking payload
would create a regular file named by a fresh canary if anything interpreted it."""

from __future__ import annotations

import random
import urllib.parse
from dataclasses import dataclass

SEED = 20261127
SYSTEM = "local"
OPS = f"/filesystem/{SYSTEM}/ops"
JOBS = f"/compute/{SYSTEM}/jobs"
SCRIPT = "#!/bin/bash\necho hostile-corpus\n"
UNSATISFIABLE = "f7t-hostile-corpus-no-such-feature"  # sbatch: "Invalid feature specification"
REAL_JOB_EVERY = 8
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
