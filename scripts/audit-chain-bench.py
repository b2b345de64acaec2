#!/usr/bin/env python3
"""Builds a SQLite database whose study S_JUNO(PROD) holds N chained audit events, hashed by
this script (an implementation of the chain independent of the service's), then times
`participants audit verify` and `participants audit export` on it and reports their peak
memory. Usage: audit-chain-bench.py BINARY DIR [N]
"""
import hashlib
import os
import sqlite3
import struct
import subprocess
import sys
import time


def s(out, text):
    b = text.encode()
    out += struct.pack(">Q", len(b)) + b


def opt(out, text):
    if text is None:
        out.append(0)
    else:
        out.append(1)
        s(out, text)


def canonical(study, seq, participant, etype, field, old, new, actor, micros, rid, inline, reason):
    out = bytearray([1])
    out += struct.pack(">qqq", study, seq, participant)
    s(out, etype)
    opt(out, field)
    opt(out, old)
    opt(out, new)
    s(out, actor)
    out += struct.pack(">q", micros)
    opt(out, rid)
    opt(out, inline)
    opt(out, reason)
    return bytes(out)


def timed(cmd, env, stdout=subprocess.DEVNULL):
    start = time.monotonic()
    res = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdout=stdout,
                         stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - start
    peak_kib = int(res.stderr.strip().splitlines()[-1])
    return res.returncode, elapsed, peak_kib


def main():
    binary, folder = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "bench.db")
    if os.path.exists(path):
        os.remove(path)
    env = dict(os.environ,
               PARTICIPANTS_DATABASE_URL=f"sqlite://{path}?mode=rwc",
               PARTICIPANTS_DATA_KEY="Y2xpLXRlc3QtZGF0YS1rZXktMzItYnl0ZXMtbG9uZyE=")
    catalog = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "catalog.toml")
    subprocess.run([binary, "catalog", "apply", catalog], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    db = sqlite3.connect(path)
    study = db.execute("SELECT id FROM studies WHERE oid = 'S_JUNO(PROD)'").fetchone()[0]
    participants = 1000
    db.executemany(
        "INSERT INTO participants (study_id, subject_key, subject_key_norm, subject_oid, status, "
        "participate_status, etag, create_time, update_time) VALUES (?, ?, ?, ?, 'available', '', 'e', "
        "'2026-11-28T12:00:00+00:00', '2026-11-28T12:00:00+00:00')",
        [(study, f"B-{i}", f"b-{i}", f"SS_B{i}") for i in range(participants)])
    first_pid = db.execute("SELECT MIN(id) FROM participants").fetchone()[0]
    head, rows = bytes(32), []
    base = 1_795_000_000_000_000
    for seq in range(1, n + 1):
        pid = first_pid + (seq % participants)
        micros = base + seq
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(micros // 1_000_000))
        stamp = f"{t}.{micros % 1_000_000:06d}+00:00"
        values = (pid, "FIELD_CHANGED", "secondary_id", f"old-{seq}", f"new-{seq}", "dm.juno")
        head = hashlib.sha256(head + canonical(study, seq, pid, values[1], values[2], values[3],
                                               values[4], values[5], micros, None, None,
                                               None)).digest()
        rows.append((pid, study) + values[1:] + (stamp, seq, head.hex()))
        if len(rows) == 50_000:
            db.executemany("INSERT INTO audit_events (participant_id, study_id, event_type, "
                           "field_name, old_value, new_value, actor, occurred_at, chain_seq, hash) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            rows = []
    if rows:
        db.executemany("INSERT INTO audit_events (participant_id, study_id, event_type, "
                       "field_name, old_value, new_value, actor, occurred_at, chain_seq, hash) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("UPDATE studies SET audit_seq = ?, audit_head = ? WHERE id = ?",
               (n, head.hex(), study))
    db.commit()
    db.close()

    code, secs, kib = timed([binary, "audit", "verify", "--study", "S_JUNO(PROD)"], env,
                            stdout=subprocess.PIPE)
    print(f"verify: {n} events, exit {code}, {secs:.1f} s ({n / secs:,.0f} events/s), "
          f"peak RSS {kib / 1024:.0f} MiB")
    for fmt in ["jsonl", "csv"]:
        code, secs, kib = timed([binary, "audit", "export", "--study", "S_JUNO(PROD)",
                                 "--format", fmt], env)
        print(f"export {fmt}: exit {code}, {secs:.1f} s, peak RSS {kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
