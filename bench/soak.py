"""Soak benchmark: many pyfirecrest v2 clients of several users through the gateway for minutes.

32 clients (threads, each with its own `firecrest.v2.Firecrest` and client-credentials login, as a
site's scripts would use it) spread round-robin over the configured test users (`test_users`, at
least 8 in the embedded default) loop for `--minutes` (default 10) over, in each its own folder
`/home/<user>/soak/c<n>`:

    ls · stat · head · upload 64 KiB + checksum (compared with the local SHA-256) · mkdir + rm ·
    submit + job_info · systems · job listing

A 10-minute run crosses token expiry (`token_lifetime_seconds`: pyfirecrest fetches new tokens) and
SSH-certificate renewal (`certificate_lifetime_seconds`) at least once each; the report says how many
tokens were fetched and certificates signed. It prints and saves (bench/results/soak.md and .json):
operations, errors by operation, status and message, p50/p99 per operation, and the RSS of every mesh
process (bench.harness.process_memory) at the start, at minute 2 (half-way in runs of 4 minutes or less)
and at the end, with the growth between those two (a process restarted in between is marked so), and
what the supervisor logged during the run (errors while a process was away are not the load's).

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 32] [--warmup 0] [--quick]

`--warmup N` first runs the same load for N minutes, unmeasured but for its errors (reported): the
measured run then starts on a warm stack. A cold start mixes warm-up into the memory figures: each
user's 24-hour job window grows from nothing to hundreds of jobs during the run (every list answer
with it), and Prometheus's 5-minute rule windows fill until minute 5.

Needs the mesh running (`make up`) and root (reads the test users' generated client secrets, removes
the soak folders afterwards). Nothing here asserts on time; the acceptance figures of issue 13 (no
5xx, 424 or 408; RSS growth < 10 %) are printed beside the results, not checked.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firecrest import ClientCredentialsAuth  # noqa: E402
from firecrest.FirecrestException import FirecrestException  # noqa: E402
from firecrest.v2 import Firecrest  # noqa: E402

from bench.harness import RESULTS, percentile, process_memory  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.idp.clients import credentials  # noqa: E402

SYSTEM = "local"
BLOB_BYTES = 64 * 1024
OPS = ("ls", "stat", "head", "upload", "checksum", "mkdir", "rm", "submit", "job_info", "systems", "jobs")
JOB_SCRIPT = "#!/bin/bash\n#SBATCH --job-name=soak\n#SBATCH --output=/dev/null\n#SBATCH --error=/dev/null\ntrue\n"
NOTES = "".join(f"soak line {n}\n" for n in range(40))
REQUEST_TIMEOUT = 120  # seconds: a hang becomes a counted client error instead of a stuck worker


class WrongAnswer(Exception):
    """A 2xx answer whose content is not what the operation should return."""


class CountingAuth(ClientCredentialsAuth):
    """pyfirecrest's client-credentials login, counting the tokens it fetched (expiry crossings)."""

    fetched = 0
    _lock = threading.Lock()

    def get_access_token(self) -> str:
        before = self._access_token
        token = super().get_access_token()
        if token != before:
            with CountingAuth._lock:
                CountingAuth.fetched += 1
        return token


class Recorder:
    """Latencies of successful operations and errors by (operation, status, message); thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {op: [] for op in OPS}
        self.errors: Counter[tuple[str, str, str]] = Counter()

    def timed(self, op: str, call):
        start = time.perf_counter()
        try:
            result = call()
        except Exception as exc:  # counted and reported by status and message, never hidden
            with self.lock:
                self.errors[(op, *describe(exc))] += 1
            return None, False
        with self.lock:
            self.latencies[op].append((time.perf_counter() - start) * 1000)
        return result, True


def describe(exc: Exception) -> tuple[str, str]:
    """(status, message) of a failed operation: the HTTP status and the FirecREST error's message,
    `check` for a wrong answer, `client` for a transport error (timeout, refused connection)."""
    if isinstance(exc, FirecrestException) and exc.responses:
        response = exc.responses[-1]
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text or "(empty body)"
        return str(response.status_code), normalise(message)
    if isinstance(exc, WrongAnswer):
        return "check", normalise(str(exc))
    return "client", normalise(f"{type(exc).__name__}: {exc}")


def normalise(message: str) -> str:
    """One line, soak paths and long numbers (job ids, ports) generalised, so equal errors count together."""
    message = re.sub(r"/home/[a-z0-9_-]+/soak/c\d+", "<dir>", message)
    message = re.sub(r"\d{4,}", "N", " ".join(message.split()))
    return message[:160]


def soak_client(n: int, user: str, cfg, gateway: str, deadline: float, rec: Recorder) -> None:
    """One client's loop over the mix until `deadline`, in its own folder /home/<user>/soak/c<n>."""
    client_id, secret = credentials(cfg, user)
    auth = CountingAuth(client_id, secret, cfg.identity.token_url)
    fc = Firecrest(firecrest_url=gateway, authorization=auth)
    fc.timeout = REQUEST_TIMEOUT
    auth.timeout = REQUEST_TIMEOUT
    folder = f"/home/{user}/soak/c{n}"
    notes = f"{folder}/notes.txt"
    for attempt in range(5):  # set-up errors are counted like any other (as mkdir/upload)
        _, made = rec.timed("mkdir", lambda: fc.mkdir(SYSTEM, folder, create_parents=True))
        _, uploaded = rec.timed("upload", lambda: fc.upload(SYSTEM, io.BytesIO(NOTES.encode()), folder,
                                                            "notes.txt", file_size=len(NOTES)))
        if made and uploaded:
            break
    cycle = 0
    while time.monotonic() < deadline:
        cycle += 1
        succeeded = sum(map(len, rec.latencies.values()))
        rec.timed("ls", lambda: _expect(fc.list_files(SYSTEM, folder), lambda out: any(
            e["name"] == "notes.txt" for e in out), "notes.txt not listed"))
        rec.timed("stat", lambda: _expect(fc.stat(SYSTEM, notes), lambda out: int(out["size"]) == len(NOTES),
                                          "wrong size"))
        rec.timed("head", lambda: _expect(fc.head(SYSTEM, notes), lambda out: out["content"].count("\n") == 10,
                                          "not 10 lines"))
        blob = os.urandom(BLOB_BYTES)
        _, ok = rec.timed("upload", lambda: fc.upload(SYSTEM, io.BytesIO(blob), folder, "blob.bin",
                                                      file_size=len(blob)))
        if ok:
            digest = hashlib.sha256(blob).hexdigest()
            rec.timed("checksum", lambda: _expect(fc.checksum(SYSTEM, f"{folder}/blob.bin"),
                                                  lambda out: out["checksum"] == digest, "checksum differs"))
        sub = f"{folder}/d{cycle}"
        _, ok = rec.timed("mkdir", lambda: fc.mkdir(SYSTEM, sub))
        if ok:
            rec.timed("rm", lambda: fc.rm(SYSTEM, sub))
        job, ok = rec.timed("submit", lambda: fc.submit(SYSTEM, working_dir=folder, script_str=JOB_SCRIPT))
        if ok:
            rec.timed("job_info", lambda: _expect(fc.job_info(SYSTEM, str(job["jobId"])),
                                                  lambda out: str(out[0]["jobId"]) == str(job["jobId"]),
                                                  "another job"))
        rec.timed("systems", lambda: _expect(fc.systems(), lambda out: out[0]["name"] == SYSTEM, "no system"))
        rec.timed("jobs", lambda: _expect(fc.job_info(SYSTEM), lambda out: isinstance(out, list), "not a list"))
        if sum(map(len, rec.latencies.values())) == succeeded:  # nobody succeeded meanwhile: an outage
            time.sleep(1)  # (whose errors are counted) is not turned into a busy loop


def _expect(output, good, what: str):
    if not good(output):
        raise WrongAnswer(what)
    return output


def sample(cfg) -> dict:
    """RSS (KiB) of every mesh process, its anonymous part (RssAnon) and the pid each ran as
    (bench.harness.process_memory), so that a process restarted during the run is reported as such
    instead of as a growth or a shrinkage."""
    memory = process_memory(cfg.state("run"))
    return {kind: {name: m[key] for name, m in memory.items()}
            for kind, key in (("rss", "rss"), ("anon", "anon"), ("pids", "pid"))}


def minute_peaks(timeline: list[tuple[float, dict]], mid_at: float, elapsed: float) -> dict:
    """The highest VmRSS and RssAnon (KiB) of each process in the minute up to `mid_at` and in the
    run's last minute: a snapshot catches whatever requests happen to be in flight, the peak of a
    minute is that minute's high-water mark. Only samples of the process as it ran at the end."""
    windows = {"mid": (mid_at - 60, mid_at + 0.5), "end": (elapsed - 60, elapsed + 0.5)}
    final_pids = timeline[-1][1]["pids"] if timeline else {}
    peaks: dict = {}
    for label, (low, high) in windows.items():
        for kind in ("rss", "anon"):
            best: dict[str, int] = {}
            for at, snap in timeline:
                if low <= at <= high:
                    for name, kib in snap[kind].items():
                        if snap["pids"].get(name) == final_pids.get(name):
                            best[name] = max(best.get(name, 0), kib)
            peaks.setdefault(label, {})[kind] = best
    return peaks


def log_offset(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def supervisor_events(log: Path, offset: int, limit: int = 30) -> list[str]:
    """What the supervisor logged since `offset` (starts, stops, crashes and restarts during the run):
    errors at those moments come from the process being away, not from the load."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            lines = [line.decode(errors="replace").rstrip() for line in f if line.strip()]
    except OSError:
        return []
    return lines if len(lines) <= limit else [*lines[:limit], f"… and {len(lines) - limit} more"]


def certificates_signed(log: Path, offset: int) -> int:
    """Certificates the certificator signed since `offset` of its log (renewals during the run)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return sum(b'"signed certificate"' in line for line in f)
    except OSError:
        return -1


def report(args, cfg, users, rec: Recorder, elapsed: float, rss: dict, mid_label: str,
           tokens: int, certificates: int, events: list[str], warmup: dict | None = None) -> tuple[str, dict]:
    """The markdown report and its JSON data; `warmup` (minutes, ok, errors by (op, status, message)) when
    the measured run followed a warm-up."""
    rows, data_ops = [], {}
    for op in OPS:
        ok = sorted(rec.latencies[op])
        errors = sum(n for (o, _, _), n in rec.errors.items() if o == op)
        data_ops[op] = {"ok": len(ok), "errors": errors, "p50_ms": round(percentile(ok, 0.5), 1) if ok else None,
                        "p99_ms": round(percentile(ok, 0.99), 1) if ok else None}
        p50, p99 = (data_ops[op][k] if ok else "—" for k in ("p50_ms", "p99_ms"))
        rows.append(f"| {op} | {len(ok) + errors} | {errors} | {p50} | {p99} |")
    total_ok = sum(v["ok"] for v in data_ops.values())
    total_err = sum(rec.errors.values())
    by_status = Counter()
    for (_, status, _), n in rec.errors.items():
        by_status[status] += n
    bad = {s: n for s, n in by_status.items() if s.startswith("5") or s in ("424", "408")}
    lines = [
        "# soak", "", time.strftime("%Y-%m-%d %H:%M:%S %Z"), "",
        f"{args.clients} pyfirecrest v2 clients over {len(users)} users ({', '.join(users)}) for "
        f"{elapsed / 60:.1f} min through the gateway; token lifetime "
        f"{cfg.identity.embedded_provider.token_lifetime_seconds if cfg.identity.embedded_provider else '?'} s, "
        f"certificate lifetime {cfg.certificator.certificate_lifetime_seconds} s. "
        f"Tokens fetched: {tokens}; certificates signed: {certificates}.", "",
        f"{total_ok + total_err} operations, {total_err} errors, {total_ok / elapsed:.1f} ok ops/s. "
        f"5xx/424/408: {sum(bad.values())} ({', '.join(f'{s}: {n}' for s, n in sorted(bad.items())) or 'none'}).",
        "", "| operation | operations | errors | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|", *rows, "",
        *warmup_lines(warmup),
        "## Errors", "",
    ]
    if rec.errors:
        lines += error_table(rec.errors)
    else:
        lines.append("none")
    lines += ["", f"## RSS of the mesh processes (MiB): start, {mid_label}, end", "",
              "VmRSS, and its anonymous part (RssAnon: heap and stacks, what a leak grows; the rest is "
              "file-backed: code pages of the binary and libraries, memory-mapped files).", "",
              f"| process | start | {mid_label} | end | growth {mid_label} → end | anon {mid_label} | anon end "
              f"| anon growth |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    growth, anon_growth, restarted = {}, {}, []
    names = sorted(set().union(*(rss[k]["rss"] for k in ("start", "mid", "end"))))
    mib = lambda kib: f"{kib / 1024:.1f}" if kib else "—"  # noqa: E731
    for name in names:
        start, mid, end = (rss[k]["rss"].get(name) for k in ("start", "mid", "end"))
        anon_mid, anon_end = (rss[k].get("anon", {}).get(name) for k in ("mid", "end"))
        pids = [rss[k]["pids"].get(name.split(" ")[0]) for k in ("start", "mid", "end")]
        if len({p for p in pids if p is not None}) > 1:
            restarted.append(name)
        same = pids[1] is not None and pids[1] == pids[2]
        growth[name] = round((end - mid) / mid * 100, 1) if mid and end and same else None
        anon_growth[name] = (round((anon_end - anon_mid) / anon_mid * 100, 1)
                             if anon_mid and anon_end and same else None)
        shown = [f"{g:+.1f} %" if g is not None else "restarted" if mid and end else "—"
                 for g in (growth[name], anon_growth[name])]
        lines.append(f"| {name} | {mib(start)} | {mib(mid)} | {mib(end)} | {shown[0]} | {mib(anon_mid)} "
                     f"| {mib(anon_end)} | {shown[1]} |")
    peak_growth = {}
    if rss.get("peaks"):
        lines += ["", f"Peaks: the highest sample (every 5 s) of the minute up to {mid_label} and of the last "
                  "minute, which does not depend on what was in flight at one instant.", "",
                  f"| process | peak {mid_label} | peak last minute | growth | anon peak {mid_label} | "
                  "anon peak last minute | anon growth |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name in names:
            cells = []
            for kind in ("rss", "anon"):
                a, b = (rss["peaks"][w][kind].get(name) for w in ("mid", "end"))
                g = round((b - a) / a * 100, 1) if a and b else None
                peak_growth[(name, kind)] = g
                cells += [mib(a), mib(b), f"{g:+.1f} %" if g is not None else "—"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst_peak = max((g for (n, k), g in peak_growth.items() if k == "rss" and g is not None), default=None)
    worst = max((g for g in growth.values() if g is not None), default=None)
    worst_anon = max((g for g in anon_growth.values() if g is not None), default=None)
    lines += ["", f"Largest RSS growth {mid_label} → end: "
              f"{'—' if worst is None else f'{worst:+.1f} %'}; of anonymous memory: "
              f"{'—' if worst_anon is None else f'{worst_anon:+.1f} %'}; of the minute's peak RSS: "
              f"{'—' if worst_peak is None else f'{worst_peak:+.1f} %'} (issue 13's target: < 10 % from minute 2 "
              f"to 10)."]
    if restarted:
        lines += ["", f"Restarted during the run (another pid at a later sample): {', '.join(restarted)}."]
    lines += ["", "## Supervisor events during the run", ""]
    lines += [f"    {e}" for e in events] if events else ["none (no process started, stopped or restarted)"]
    if args.note:
        lines += ["", args.note]
    data = {"minutes": round(elapsed / 60, 2), "clients": args.clients, "users": users, "operations": data_ops,
            "errors": error_records(rec.errors),
            "rss": rss, "rss_mid": mid_label, "rss_growth_percent": growth,
            "anon_growth_percent": anon_growth,
            "peak_growth_percent": {f"{n} {k}": g for (n, k), g in peak_growth.items()}, "restarted": restarted,
            "supervisor_events": events, "tokens_fetched": tokens,
            "certificates_signed": certificates,
            "warmup": warmup and {**warmup, "errors": error_records(warmup["errors"])}}
    return "\n".join(lines) + "\n", data


def error_table(errors: Counter) -> list[str]:
    """Markdown rows of errors by (operation, status, message), the most frequent first."""
    return ["| operation | status | message | count |", "|---|---|---|---:|",
            *(f"| {op} | {status} | {message.replace('|', '/')} | {n} |"
              for (op, status, message), n in sorted(errors.items(), key=lambda kv: -kv[1]))]


def error_records(errors: Counter) -> list[dict]:
    """The same errors for the JSON report."""
    return [{"op": op, "status": status, "message": message, "count": n}
            for (op, status, message), n in errors.items()]


def warmup_lines(warmup: dict | None) -> list[str]:
    """The report's account of the warm-up before the measured run, or a line saying there was none."""
    if not warmup:
        return ["Cold start: the measured run began on the stack as it was (no warm-up).", ""]
    errors = warmup["errors"]
    lines = [f"Warm-up before the measured run: {warmup['minutes']:.1f} min of the same load on the same stack, "
             f"{warmup['ok'] + sum(errors.values())} operations, {sum(errors.values())} errors. Tokens and "
             "certificates above include it; every other figure is the measured run's.", ""]
    if errors:
        lines += [*error_table(errors), ""]
    return lines


def run_load(cfg, users: list[str], gateway: str, clients: int, seconds: float, rec: Recorder,
             sampled: Callable[[float, dict], None]) -> float:
    """`clients` soak clients over `users` for `seconds`, recording into `rec`; every 5 s the mesh's
    memory goes to `sampled(seconds into the run, sample)` and progress to stdout. Returns the
    elapsed seconds, once every client has finished its cycle."""
    began = time.monotonic()
    deadline = began + seconds
    workers = [threading.Thread(target=soak_client, name=f"soak-{n}", daemon=True,
                                args=(n, users[n % len(users)], cfg, gateway, deadline, rec))
               for n in range(clients)]
    for w in workers:
        w.start()
    while time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        now = time.monotonic() - began
        sampled(now, sample(cfg))
        with rec.lock:
            done, failed = sum(map(len, rec.latencies.values())), sum(rec.errors.values())
        print(f"  {now / 60:4.1f} min: {done} ok, {failed} errors", flush=True)
    for w in workers:  # each finishes its cycle; a request hangs at most REQUEST_TIMEOUT
        w.join(timeout=REQUEST_TIMEOUT * 2)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute smoke run (as --minutes 1)")
    parser.add_argument("--note", default="", help="a closing note for the saved report")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="minutes of the same load before the measured run (default 0: a cold start). "
                             "Its errors are reported; the memory figures are the measured run's only")
    parser.add_argument("--users", default="", help="comma-separated test users to spread the clients over "
                                                     "(default: every configured test user)")
    args, _ = parser.parse_known_args()  # make bench passes every script the same flags
    if args.quick:
        args.minutes = 1.0
    cfg = load_config()
    users = [u.name for u in cfg.test_users]
    if args.users:
        wanted = args.users.split(",")
        unknown = sorted(set(wanted) - set(users))
        if unknown:
            sys.exit(f"not configured test users: {', '.join(unknown)}")
        users = wanted
    if not users:
        sys.exit("no test_users in the configuration")
    gateway = f"http://{cfg.gateway.listen}"
    cert_log, supervisor_log = cfg.state("logs", "certificator.log"), cfg.state("logs", "supervisor.log")
    cert_offset, supervisor_offset = log_offset(cert_log), log_offset(supervisor_log)

    warmup = None
    if args.warmup > 0:  # the same load, unmeasured but for its errors, on the same stack first
        warm = Recorder()
        print(f"warm-up: {args.clients} clients over {len(users)} users for {args.warmup} min", flush=True)
        warm_elapsed = run_load(cfg, users, gateway, args.clients, args.warmup * 60, warm, lambda now, snap: None)
        warmup = {"minutes": round(warm_elapsed / 60, 2), "ok": sum(map(len, warm.latencies.values())),
                  "errors": warm.errors}
    rec = Recorder()
    duration = args.minutes * 60
    mid_at = 120.0 if duration > 240 else duration / 2
    mid_label = "minute 2" if duration > 240 else f"minute {mid_at / 60:.1f}"
    rss = {"start": sample(cfg), "mid": {}, "end": {}}
    timeline: list[tuple[float, dict]] = []  # (seconds into the run, sample) every 5 s: the peaks

    def sampled(now: float, snap: dict) -> None:
        timeline.append((now, snap))
        if not rss["mid"] and now >= mid_at:
            rss["mid"] = snap

    print(f"soak: {args.clients} clients over {len(users)} users for {args.minutes} min", flush=True)
    elapsed = run_load(cfg, users, gateway, args.clients, duration, rec, sampled)
    rss["end"] = sample(cfg)
    rss["peaks"] = minute_peaks(timeline, mid_at, elapsed)
    text, data = report(args, cfg, users, rec, elapsed, rss, mid_label, CountingAuth.fetched,
                        certificates_signed(cert_log, cert_offset),
                        supervisor_events(supervisor_log, supervisor_offset), warmup)
    for user in users:
        shutil.rmtree(f"/home/{user}/soak", ignore_errors=True)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.md").write_text(text)
    (RESULTS / "soak.json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
