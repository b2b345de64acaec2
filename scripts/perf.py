#!/usr/bin/env python3
"""Measures the service with participants-load and writes docs/performance.md, from one run.

Every figure comes from this run on this machine: the release server and the load generator
share the machine, and each rate is also given as a ratio to Health/Check measured on the same
server (the bare-transport baseline), because absolute figures drift between runs.

Usage: scripts/perf.py [--duration 5] [--quick] [--out docs/performance.md]
       --quick: 64 in flight only, short runs; with --debug, the debug build (what CI runs, to
       keep the script and the load generator from rotting: it checks answers, never speed).
PostgreSQL rows need PARTICIPANTS_TEST_POSTGRES_URL (an admin URL; scripts/postgres.sh prints
one); without it only SQLite is measured. Every load run uses --check: a wrong answer fails.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
SECRET = "perf-secret-perf-secret-perf-secret-0123456789"
CATALOG = os.path.join(ROOT, "catalog", "bench.toml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, db_url, extra=()):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="perf-server-", suffix=".log", delete=False)
        env = dict(os.environ, PARTICIPANTS_JWT_HS256_SECRET=SECRET, PARTICIPANTS_DATA_KEY=DATA_KEY,
                   PARTICIPANTS_LOG_FORMAT="json")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "participants"), "serve", "--listen", f"127.0.0.1:{self.port}",
             "--database-url", db_url, "--catalog", CATALOG, "--http-listen", "", "--admin-listen", "", *extra],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(self.log.name) as f:
                if "listening on" in f.read():
                    return
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {open(self.log.name).read()[-2000:]}")
            time.sleep(0.1)
        raise SystemExit("server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        with open(self.log.name) as f:
            text = f.read()
        os.unlink(self.log.name)
        m = re.search(r'"write_batches":(\d+),"writes":(\d+),"largest_batch":(\d+)', text)
        return {"batches": int(m.group(1)), "writes": int(m.group(2)), "largest": int(m.group(3))} if m else None


def load(server, workloads, concurrency=64, duration=5, rate=None, prefix=None, population=1000,
         check=True):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    cmd = [os.path.join(BIN, "participants-load"), "--target", f"127.0.0.1:{server.port}",
           "--workload", ",".join(workloads), "--duration", f"{duration}s", "--warmup", "1s",
           "--concurrency", str(concurrency), "--connections", str(min(8, max(1, concurrency))),
           "--population", str(population), "--quiet", "--json", out] + (["--check"] if check else [])
    if rate:
        cmd += ["--rate", str(rate)]
    if prefix:
        cmd += ["--key-prefix", prefix]
    env = dict(os.environ, PARTICIPANTS_JWT_HS256_SECRET=SECRET)
    subprocess.run(cmd, check=True, env=env, stdout=sys.stderr)
    with open(out) as f:
        rows = json.load(f)
    os.unlink(out)
    return {r["workload"]: r for r in rows}


class Backend:
    """A fresh database per server, on SQLite (a temp file) or PostgreSQL (a new database)."""

    def __init__(self, name, admin_url=None):
        self.name, self.admin_url, self.dirs, self.databases = name, admin_url, [], []

    def fresh(self):
        if self.name == "SQLite":
            d = tempfile.mkdtemp(prefix="perf-db-")
            self.dirs.append(d)
            return f"sqlite://{d}/perf.db?mode=rwc"
        db = f"perf_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", "-q", self.admin_url, "-c", f"CREATE DATABASE {db}"], check=True)
        self.databases.append(db)
        return self.admin_url.rsplit("/", 1)[0] + "/" + db

    def sql(self, url, statement):
        if self.name == "SQLite":
            import sqlite3
            path = url[len("sqlite://"):].split("?")[0]
            con = sqlite3.connect(path, timeout=30)
            con.executescript(statement)
            con.commit()
            con.close()
        else:
            subprocess.run(["psql", "-q", url, "-v", "ON_ERROR_STOP=1", "-c", statement], check=True)

    def bulk_insert(self, url, n):
        """n enrolled participants at S_BENCH_1, inserted by SQL (the counters follow by trigger)."""
        cols = ("study_id, site_id, subject_key, subject_key_norm, subject_oid, status, "
                "participate_status, etag, create_time, update_time")
        values = ("(SELECT id FROM studies WHERE oid = 'S_BENCH'), (SELECT id FROM sites WHERE oid = 'S_BENCH_1'), "
                  "'BULK-' || i, 'bulk-' || i, 'SS_BULK_' || i, 'available', '', 'e', "
                  "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'")
        if self.name == "SQLite":
            self.sql(url, f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
                          f"INSERT INTO participants ({cols}) SELECT {values} FROM n;")
        else:
            # Row triggers would update the same study row once per insert within one
            # transaction (each update walks the row's version chain): insert without them,
            # then set the counters once, as the migration does.
            self.sql(url, "SET session_replication_role = replica; "
                          f"INSERT INTO participants ({cols}) SELECT {values} FROM generate_series(1, {n}) AS i; "
                          "UPDATE studies SET enrolled = (SELECT COUNT(*) FROM participants p WHERE p.study_id = studies.id "
                          "AND p.status IN ('available', 'signed')); "
                          "UPDATE sites SET enrolled = (SELECT COUNT(*) FROM participants p WHERE p.site_id = sites.id "
                          "AND p.status IN ('available', 'signed'));")

    def cleanup(self):
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        for db in self.databases:
            subprocess.run(["psql", "-q", self.admin_url, "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                           check=False)


def fmt_rate(r):
    return f"{r['per_second']:,.0f}/s" if r else "-"


def measure(backend, levels, duration, big, big_pairs, cpu_workloads):
    res = {"levels": {}, "unbatched": {}}
    for c in levels:
        url = backend.fresh()
        s = Server(url)
        res["levels"][c] = load(s, ["health", "create", "update", "get"], concurrency=c, duration=duration)
        res["levels"][c]["batches"] = s.stop()
    for c in levels:
        url = backend.fresh()
        s = Server(url, ["--write-batch-max", "1"])
        res["unbatched"][c] = load(s, ["health", "create"], concurrency=c, duration=duration)
        s.stop()
    top = max(levels)
    ref = 64 if 64 in levels else top
    # Creations in a study that already holds `big` participants, against an empty study:
    # in pairs, each on a fresh server, one after the other, so that the machine's drift
    # (±20 %) touches both sides of the ratio alike rather than one figure of the table.
    res["big_pairs"] = []
    for _ in range(big_pairs):
        pair = {}
        for filled in (False, True):
            url = backend.fresh()
            s = Server(url)  # started: migrations ran, the catalog is applied
            if filled:
                t = time.time()
                backend.bulk_insert(url, big)
                res["big_insert_s"] = time.time() - t
            pair["big" if filled else "empty"] = load(s, ["health", "create"], concurrency=ref, duration=duration)
            s.stop()
        res["big_pairs"].append(pair)
    # Open loop at half the peak creation rate.
    peak = max(res["levels"][c]["create"]["per_second"] for c in levels)
    rate = max(1, int(peak / 2))
    url = backend.fresh()
    s = Server(url)
    # Refusals under a burst are a figure here, not a failure: they are reported.
    res["open"] = load(s, ["create"], rate=rate, duration=duration, check=False)
    res["open_rate"] = rate
    # Memory at 1,000 idle connections.
    before = rss_kib(s.proc.pid)
    holder = subprocess.Popen(
        ["bash", "-c", f"ulimit -n 8192; exec {os.path.join(BIN, 'participants-load')} --target 127.0.0.1:{s.port} "
                       f"--hold-connections 1000 --duration 6s"], stdout=subprocess.PIPE, text=True)
    held = 0
    for line in holder.stdout:
        if line.startswith("holding"):
            time.sleep(2)
            held = rss_kib(s.proc.pid)
    holder.wait()
    res["rss_idle_kib"], res["rss_1000_kib"] = before, held
    s.stop()
    res["ref"] = ref
    res["cpu"] = cpu_per_call(backend, cpu_workloads)
    return res


def cpu_ticks(pid):
    """User + system CPU of a process so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_per_call(backend, workloads=("health", "get", "update", "create"), concurrency=64):
    """CPU time per call of the server and of the load generator, each workload on a fresh
    server, sampled over 3 s in the middle of a 6 s run (after set-up and warm-up)."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for w in workloads:
        s = Server(backend.fresh())
        js = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
        env = dict(os.environ, PARTICIPANTS_JWT_HS256_SECRET=SECRET)
        loader = subprocess.Popen(
            [os.path.join(BIN, "participants-load"), "--target", f"127.0.0.1:{s.port}", "--workload", w,
             "--duration", "6s", "--warmup", "1s", "--concurrency", str(concurrency), "--connections", "8",
             "--quiet", "--check", "--json", js], env=env, stdout=sys.stderr)
        time.sleep(2.5)
        s0, l0, t0 = cpu_ticks(s.proc.pid), cpu_ticks(loader.pid), time.time()
        time.sleep(3)
        s1, l1, t1 = cpu_ticks(s.proc.pid), cpu_ticks(loader.pid), time.time()
        if loader.wait() != 0:
            raise SystemExit(f"participants-load failed on {w}")
        s.stop()
        with open(js) as f:
            rate = json.load(f)[0]["per_second"]
        os.unlink(js)
        calls = rate * (t1 - t0)
        out[w] = {"rate": rate, "server_us": (s1 - s0) / hz / calls * 1e6, "loader_us": (l1 - l0) / hz / calls * 1e6}
    return out


def cpu_table(results):
    cpus = os.cpu_count()
    lines = ["| backend | call | rate | server CPU per call | load generator CPU per call | "
             f"ceiling if both used all {cpus} cores | reached |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        for w, c in r["cpu"].items():
            ceiling = cpus * 1e6 / (c["server_us"] + c["loader_us"])
            lines.append(f"| {name} | {w} | {c['rate']:,.0f}/s | {c['server_us']:.0f} µs | {c['loader_us']:.0f} µs "
                         f"| {ceiling:,.0f}/s | {c['rate'] / ceiling:.0%} |")
    return "\n".join(lines)


def table(results, levels, big):
    lines = []
    for name, r in results.items():
        lines.append(f"\n### {name}\n")
        lines.append("| in flight | Health/Check | create | create × health | create p99 | update | update × health | get | get × health | batches (writes / largest) | create, one write per transaction |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for c in levels:
            x = r["levels"][c]
            h, cr, up, g = x["health"], x["create"], x["update"], x["get"]
            b = x.get("batches") or {}
            un = r["unbatched"][c]["create"]
            uh = r["unbatched"][c]["health"]
            batches = f"{b.get('writes', 0):,} in {b.get('batches', 0):,} ({b.get('writes', 0) / max(1, b.get('batches', 1)):.1f} / {b.get('largest', 0)})"
            lines.append(
                f"| {c} | {fmt_rate(h)} | {fmt_rate(cr)} | {cr['per_second'] / h['per_second']:.1%} | {cr['p99_ms']:.1f} ms "
                f"| {fmt_rate(up)} | {up['per_second'] / h['per_second']:.1%} | {fmt_rate(g)} | {g['per_second'] / h['per_second']:.1%} | {batches} "
                f"| {fmt_rate(un)} ({un['per_second'] / uh['per_second']:.1%} of its health) |")
        ref = r["ref"]
        pairs = r["big_pairs"]
        big_sum = sum(p["big"]["create"]["per_second"] for p in pairs)
        empty_sum = sum(p["empty"]["create"]["per_second"] for p in pairs)
        shown = ", ".join(f"{fmt_rate(p['big']['create'])} against {fmt_rate(p['empty']['create'])}" for p in pairs)
        health = ", ".join(f"{p['big']['create']['per_second'] / p['big']['health']['per_second']:.1%}" for p in pairs)
        o = r["open"]["create"]
        lines.append("")
        lines.append(f"- Creation in a study that already holds {big:,} participants ({ref} in flight), against an "
                     f"empty study on a fresh server just before it, {len(pairs)} pair{'s' if len(pairs) > 1 else ''}: "
                     f"{shown} ({health} of its health): {big_sum / empty_sum:.0%} of the empty-study rate "
                     f"(the {big:,} rows were inserted by SQL in {r['big_insert_s']:.1f} s).")
        lines.append(f"- Open loop at half the peak creation rate ({r['open_rate']:,}/s, latency from the intended send "
                     f"time): p50 {o['p50_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms, p99.9 {o['p999_ms']:.1f} ms, "
                     f"{o['ok']:,} calls, errors: {o['errors'] or 'none'}.")
        lines.append(f"- Server memory: {r['rss_idle_kib'] / 1024:.0f} MiB RSS after the run, "
                     f"{r['rss_1000_kib'] / 1024:.0f} MiB while holding 1,000 idle HTTP/2 connections.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="where the document goes: docs/performance.md for a full run; "
                    "a --quick or --debug run, whose figures are not the document's, writes a "
                    "temporary file unless told")
    ap.add_argument("--debug", action="store_true",
                    help="use the debug build (CI: it checks answers, not speed)")
    args = ap.parse_args()
    if args.out is None:
        if args.quick or args.debug:
            args.out = tempfile.NamedTemporaryFile(prefix="performance-", suffix=".md", delete=False).name
        else:
            args.out = os.path.join(ROOT, "docs", "performance.md")
    global BIN
    if args.debug:
        BIN = os.path.join(ROOT, "target", "debug")
    levels = [64] if args.quick else [1, 16, 64, 256]
    duration = 2 if args.quick else args.duration
    big = 20_000 if args.quick else 200_000
    subprocess.run(["cargo", "build", "--bins"] + ([] if args.debug else ["--release"]), check=True, cwd=ROOT)
    global DATA_KEY
    DATA_KEY = subprocess.run([os.path.join(BIN, "participants"), "data-key"], check=True,
                              capture_output=True, text=True).stdout.strip()
    backends = [Backend("SQLite")]
    if os.environ.get("PARTICIPANTS_TEST_POSTGRES_URL"):
        backends.append(Backend("PostgreSQL", os.environ["PARTICIPANTS_TEST_POSTGRES_URL"]))
    results = {}
    try:
        for b in backends:
            print(f"== {b.name}", file=sys.stderr)
            cpu_workloads = ("health", "create") if args.quick else ("health", "get", "update", "create")
            results[b.name] = measure(b, levels, duration, big, 1 if args.quick else 3, cpu_workloads)
    finally:
        for b in backends:
            b.cleanup()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpus = os.cpu_count()
    doc = f"""# Performance

Made by `scripts/perf.py` in one run on {time.strftime('%Y-%m-%d')} at commit `{commit}`, on a machine
with {cpus} cores shared by the server and the load generator (`participants-load`, closed loop
unless said otherwise, as many HTTP/2 connections as calls in flight up to 8, {duration} s per
figure after 1 s of warm-up, every answer checked except in the open loop, where refusals under a
burst are a figure). {"Debug" if args.debug else "Release"} build, durable commits: SQLite in WAL mode with `synchronous=FULL`{", PostgreSQL with `synchronous_commit=on`" if "PostgreSQL" in results else ""}.
Each rate is also given as a ratio to `grpc.health.v1.Health/Check` on the same server in the
same run (each figure its own {duration} s window): absolute figures on this shared machine
drift by ±20 %, and a busy machine can move one window more than another.

To make it again: `python3 scripts/perf.py` (about 10 minutes; the PostgreSQL
rows need `PARTICIPANTS_TEST_POSTGRES_URL`, an admin URL: `scripts/postgres.sh` prints one). It
writes this file. `--quick` (64 in flight only, 2 s figures, a study of 20,000 instead of
200,000, health and create only in the CPU table) and `--debug` write a temporary file instead,
unless `--out` says where. To run creations by hand, serve the bench catalog (no caps) and load
it: `participants serve --catalog catalog/bench.toml` with `PARTICIPANTS_JWT_HS256_SECRET` and
`PARTICIPANTS_DATA_KEY` set, then `participants-load --target 127.0.0.1:50051 --workload
health,create` with the same secret (it mints a token for `dm.bench`).

"create" is a creation with contact data and a `request_id`; "update" changes one contact field
of one of 1,000 participants; "get" reads one of them as a data manager (contact data opened).
"batches" are the server's group-commit transactions during the run, warm-up and the 1,000
set-up creations included (writes per transaction on average, and the largest); the last column
is the same server with `--write-batch-max 1`, one transaction per write.
{table(results, levels, big)}

## What bounds these figures

CPU time per call at 64 in flight, in the same run: each workload on a fresh server, sampled
over 3 s after set-up and warm-up, for the server and for the load generator that shares the
machine with it. The ceiling is the rate at which the two together would keep every core busy.

{cpu_table(results)}

**What bounds creations.** The project's targets at 64 in flight are creations at 40 % of the
Health/Check rate and gets at 60 %. A creation costs the server about ten times a health check
in CPU (the table above): it seals each contact field with XChaCha20-Poly1305 (the context binds
it to its participant and column), records its audit events in the study's hash chain, seals
the remembered response for its `request_id`, and crosses HTTP/2 and protobuf twice; on top of
that comes the database work. At 40 % of the health rate it could cost only about 2.5 times a
health check: even with both cores busy (the ceiling column), creations would reach about 15 %
of the health rate, so CPU per creation bounds them first. Creations on SQLite reach about two
thirds of that ceiling; on PostgreSQL about a fifth, because the ceiling counts only this
server's CPU: PostgreSQL's own processes share the 2 cores, and each lane's batch waits on round
trips to them over TCP (a statement per table, of 8 rows, see below). On SQLite the rest of the
gap to the ceiling is the one writer, which runs a batch's statements one after another: an instrumented build (measured
apart from this run, 32 creations per batch on average) spent about 0.3 ms per batch on
`BEGIN IMMEDIATE`, 1.2 ms on the reads of the study, the batch's keys and counters, 1.7 ms on
the commands (sealing, hashing), 3.0 ms on the four multi-row inserts and 1.4 ms on the commit:
about 7.6 ms, one serial path of some 240 µs per creation, while server and load generator
used about 1.2 of the 2 cores. Since then a batch leaves the rows of each 16 commands to one
call, which SQLite's connection thread writes while the writer runs the next 16 (measured:
3,664-3,842 -> 4,258-4,606 creations/s). Such an insert keeps a journal to undo itself should it
fail halfway; SQLite moved it to a temporary file past 64 KiB, created in every write
transaction and written by each insert, until statement journals were kept in memory (migrations
keep theirs in files: an index build sorts a whole table) (`temp_store`: 3,568-3,951
-> 3,854-4,201 creations/s with the next change, and a Participant ID's normal form computed
once instead of at every comparison). Sealing the contact data of a batch's creations on a helper
thread ahead of the writer took the sealing off its path but did not raise the rate (at 256 in
flight it fell: one helper sealed more slowly than the writer ran); it was measured and left
out. Nor did a connection kept for writes alone raise the closed-loop rate, but it is in: SQLite
drops a connection's page cache when another one changed the database, so a writer on any pooled
connection read its pages again in every batch, which showed in the open loop's latency (A/B, 5
pairs at 3,000 creations/s: p99 medians 48 -> 31 ms, p50 13.8 -> 11.6 ms). Measured again later with an instrumented build (64 in flight,
about 32 creations a batch, summed over 2 s windows): the writer was busy all the time, per
batch 1.06 ms to begin (the gate, the pool's checkout and `BEGIN IMMEDIATE`), 0.57 ms on the
reads, 2.95 ms on the commands and their inserts, 0.11 ms on the counters and the chain's head,
and 1.24 ms on the commit, while the server's threads and the load generator used about 1.4 of
the 2 cores (sqlx's SQLite threads 44-51 %, the runtime's 73 %, the load generator 19 %). The
batch's sites are now read in one statement when it starts (the statement log: 1.01 site reads
a batch against 3.98 over the bench's four sites; 5 A/B pairs: 4,079 against 3,935 creations/s
on average, within the machine's noise). Three more changes were measured and left out: the
writer on a thread and runtime of its own, so that its wake-ups do not queue behind the calls'
tasks (4 pairs: 4,866 against 4,876/s); a second connection for writes, so that a batch need
not wait for the previous one's connection to be returned (4 pairs: 4,152 against 4,190/s);
and checkpoints every 10,000 WAL pages instead of 1,000 (4,858-5,029 against 3,995-4,328/s in
2 runs each, but p99 46-47 ms against 25-26 ms: each checkpoint stalls the commit it falls in).
The server allocates with jemalloc: glibc's malloc and free were
some 13 % of its CPU under creations (A/B, 6 pairs: 3,753 -> 4,169 creations/s on average, RSS
at 1,000 connections 67 -> 70 MiB in that A/B's builds; mimalloc was as fast but held 102 MiB there). Sealing and
opening use poly1305's portable backend (`.cargo/config.toml`): on values of tens of bytes its
AVX2 backend cost four times as much (1.7 against 0.43 µs to open 29 bytes; A/B, 3 pairs:
4,653 -> 5,136 creations/s and 12,904 -> 13,755 gets/s on average). The open loop paces its
sends from a thread of its own: the runtime's 1 ms timer sent them up to a millisecond late,
which counted as latency (Health/Check at 200/s: p50 1.97 -> 0.48 ms).

**Where the server's CPU goes.** Profiled with `perf record -g` (measured apart from this run),
about half of the server's samples are thread hand-offs (`finish_task_switch`, futex wake-ups):
sqlx's SQLite driver runs each connection on a thread of its own and sends every statement
there and back, and SQLite's own `sqlite3VdbeExec` is under 2 %. Gets and the replay check of a
`request_id` that arrive together share one statement (`src/service/reader.rs`), and a pool
checkout on SQLite no longer pings its connection, which halved the server's CPU per get. On
PostgreSQL the statement is a `UNION ALL` of one query per key: an `IN (…)` list is planned from
the table's statistics, and until they are gathered after a burst of inserts it scanned the whole
study for each group, while each single-key branch is an index probe. On PostgreSQL, sqlx 0.9.0 no longer sets TCP_NODELAY
(launchbadge/sqlx#4335, fixed upstream, not released), and multi-row statements waited on
delayed acknowledgements, so they are kept to 8 rows.

**What the one SQLite writer waits on.** At 64 creations in flight the server used about 1.2 of
the 2 cores (a `perf` profile over 4 s: 4,855 samples at 999 Hz), yet its writer was busy all
the time. SQLite's connection threads used 45 % of a core, and the writer's own work (sealing,
hashing, building statements) less than that: much of a batch goes to waiting for the hand-offs
between the writer and that thread, about 12 statements a batch, each woken on a machine whose
cores the calls' tasks and the load generator also want. Giving that thread priority over the rest shows it: with sqlx's
SQLite threads set to nice -10 from outside on a running server (measured apart from this run,
3 A/B pairs on fresh servers), creations rose from 4,533 to 5,203/s on average (+15 %); the
server does not do this itself, since raising a thread's priority takes a privilege a service
should not hold. sqlx also pings a connection each time it returns to the pool, so every
batch's checkout waits for one more round trip, and SeaORM 2 has no public way to run
transactions on a connection the writer keeps. The lever left is a writer thread that runs a
whole SQLite batch with a synchronous driver, with no hand-off per statement: SeaORM 2 has one
(rusqlite) only in its separate `sea-orm-sync` crate, whose entities are types of their own, so
it would mean a second definition of every table the writer touches. The other levers: sealing
and audit hashing moved off the one writer, and TCP_NODELAY once sqlx ships it.
"""
    with open(args.out, "w") as f:
        f.write(doc)
    print(doc)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
