#!/usr/bin/env python3
"""Summarizes a conformance run for sdks/run-conformance.sh.

usage: summarize.py WORK_DIR CASES_JSON LANG:RUNNER_EXIT_CODE...

Reads WORK_DIR/<lang>/outcomes.jsonl (one normalized outcome per case, written by each runner) and
prints, per language, how many cases passed. A case passes in a language when its runner met every
expectation of cases.json AND its normalized answer (status code, typed reason, errorCode, ErrorInfo
metadata, field violations, response without volatile fields) equals the first language's answer.
A runner that exited non-zero although every case passed (e.g. a vet or compile step) counts as one
more failure. A case a runner skipped on purpose (its outcome says `skipped`, with the reason: the
gRPC-Web run has no client streaming for ImportParticipants, nor for the cases that require one) is listed with its reason and counts
neither as passed nor as failed. Prints `PASSED FAILED` as its last line.
"""

import json
import sys


# (run, rpc) pairs a runner may skip: gRPC-Web has no client streaming.
SKIPPABLE = {("typescript-web", "ImportParticipants")}


def load(path):
    rows = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    rows[row.pop("name")] = row
    except FileNotFoundError:
        pass
    return rows


def answer(row):
    return {k: v for k, v in row.items() if k != "pass"}


def main():
    work, cases_path = sys.argv[1], sys.argv[2]
    runs = [arg.rsplit(":", 1) for arg in sys.argv[3:]]
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    names = [c["name"] for c in cases]
    # A case that checks what an earlier import wrote stands or falls with that import.
    rpcs = {c["name"]: c.get("requires", c["rpc"]) for c in cases}
    outcomes = {lang: load(f"{work}/{lang}/outcomes.jsonl") for lang, _ in runs}
    reference = runs[0][0] if runs else None
    passed_total = failed_total = 0
    for lang, rc in runs:
        failed, skipped = [], []
        for name in names:
            row = outcomes[lang].get(name)
            ref = outcomes[reference].get(name)
            if ref is not None and "skipped" in ref:
                ref = None
            if row is not None and "skipped" in row and (lang, rpcs[name]) not in SKIPPABLE:
                failed.append(f"{name}: skipped ({row['skipped']}), but only {SKIPPABLE} may be")
            elif row is not None and "skipped" in row:
                skipped.append(f"{name}: skipped ({row['skipped']})")
            elif row is None:
                failed.append(f"{name}: no outcome recorded (runner crashed or case not run)")
            elif not row.get("pass", False):
                failed.append(f"{name}: expectation not met (see {work}/{lang}/runner.log)")
            elif lang != reference and ref is not None and answer(row) != answer(ref):
                failed.append(
                    f"{name}: answer differs from {reference}:\n"
                    f"          {lang}: {json.dumps(answer(row), ensure_ascii=False, sort_keys=True)}\n"
                    f"          {reference}: {json.dumps(answer(ref), ensure_ascii=False, sort_keys=True)}"
                )
        extra = 1 if rc != "0" and not failed else 0
        passed = len(names) - len(failed) - len(skipped)
        passed_total += passed
        failed_total += len(failed) + extra
        note = f", {len(failed)} failed" if failed else ""
        note += f", {len(skipped)} skipped" if skipped else ""
        note += f" (runner exited {rc})" if rc != "0" else ""
        print(f"  {lang:<11} {passed:>3} of {len(names)} cases passed{note}")
        for line in failed + skipped:
            print(f"      - {line}")
    print(f"{passed_total} {failed_total}")


if __name__ == "__main__":
    main()
