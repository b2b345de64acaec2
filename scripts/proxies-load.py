#!/usr/bin/env python3
"""Closed-loop clients for the proxy tests, on grpcio with the standard gRPC retry policy.

Each client has its own channel whose service config retries UNAVAILABLE only, with exponential
backoff; every call is a creation with system-generated Participant ID and a fresh request_id,
so a call executed twice would show as two Participants. Each acknowledged call is written to
--out as one JSON line (request_id, subject_key, created); the summary goes to stdout as JSON.

Needs grpcio and the generated Python code: PYTHONPATH=sdks/python/gen.
"""

import argparse
import json
import threading
import time
import uuid

import grpc

from openclinica.participants.v1 import participant_pb2 as pb
from openclinica.participants.v1 import participant_service_pb2 as svc
from openclinica.participants.v1 import participant_service_pb2_grpc as svc_grpc

SERVICE = "openclinica.participants.v1.ParticipantService"
# The standard retry policy (gRFC A6): UNAVAILABLE only, backoff 0.1 s doubling to 1 s, jittered.
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": SERVICE}],
            "timeout": "10s",
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--study", default="S_VEGA")
    ap.add_argument("--site", default="S_VEGA_BOS")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    lock = threading.Lock()
    out = open(args.out, "w", encoding="utf-8")
    failures: dict[str, int] = {}
    latencies: list[float] = []
    per_client = [0] * args.clients
    stop_at = time.monotonic() + args.duration
    metadata = (("authorization", f"Bearer {args.token}"),)

    def client(i: int) -> None:
        channel = grpc.insecure_channel(
            args.target,
            options=[
                ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
                ("grpc.enable_retries", 1),
                # Each client its own connection, as four separate callers would have.
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        stub = svc_grpc.ParticipantServiceStub(channel)
        while time.monotonic() < stop_at:
            request_id = str(uuid.uuid4())
            req = svc.UpsertParticipantRequest(
                site=pb.SiteScope(study_oid=args.study, site_oid=args.site),
                request_id=request_id,
            )
            started = time.monotonic()
            try:
                resp = stub.UpsertParticipant(req, metadata=metadata)
            except grpc.RpcError as e:
                with lock:
                    code = e.code().name if e.code() else "UNKNOWN"
                    failures[code] = failures.get(code, 0) + 1
                continue
            took = time.monotonic() - started
            line = json.dumps(
                {
                    "request_id": request_id,
                    "subject_key": resp.participant.subject_key,
                    "created": resp.created,
                }
            )
            with lock:
                out.write(line + "\n")
                latencies.append(took)
                per_client[i] += 1
        channel.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else 0.0

    print(
        json.dumps(
            {
                "ok": len(latencies),
                "failed": sum(failures.values()),
                "failures": failures,
                "per_client": per_client,
                "p50_ms": pct(0.5),
                "p99_ms": pct(0.99),
                "max_ms": pct(1.0),
            }
        )
    )


if __name__ == "__main__":
    main()
