#!/usr/bin/env python3
"""Checks what a schema cannot: that the built manifests keep the promises docs/deployment.md
makes (probes, drain timing, security context, mesh ports, admin port).

Usage: manifests.py BUILT_YAML [EXPECTED_REPLICAS]
"""

import sys

import yaml

SERVICE = "openclinica.participants.v1.ParticipantService"


def fail(message):
    sys.exit(f"{sys.argv[1]}: {message}")


def check(ok, message):
    if not ok:
        fail(message)


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    fail(f"cannot read the duration {text!r}")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                 "ConfigMap"]:
        check(len(by_kind.get(kind, [])) == 1, f"expected one {kind}")
    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    args = container.get("args", [])
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"grpc": 50051, "http": 8080, "admin": 9090}, f"container ports {ports}")
    check(flags.get("listen") == "0.0.0.0:50051", "--listen must be 0.0.0.0:50051 in a pod")
    check(flags.get("http-listen") == "0.0.0.0:8080", "--http-listen must be 0.0.0.0:8080")
    annotations = pod["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true"
          and annotations.get("prometheus.io/port") == "9090"
          and annotations.get("prometheus.io/path") == "/metrics",
          "Prometheus scrape annotations for the admin port")

    readiness = container["readinessProbe"].get("grpc", {})
    check(readiness.get("port") == 50051 and readiness.get("service") == SERVICE,
          f"readiness must be the native gRPC probe of {SERVICE}")
    startup = container["startupProbe"].get("grpc", {})
    check(startup.get("port") == 50051 and not startup.get("service"),
          "startupProbe must be the native gRPC probe of the server (\"\")")
    # gRPC health's "" follows the database as well: a liveness probe on it would restart
    # every pod during a database outage.
    liveness = container["livenessProbe"].get("httpGet", {})
    check(liveness.get("path") == "/livez" and liveness.get("port") in ("admin", 9090),
          "livenessProbe must be /livez on the admin port")

    # SIGTERM comes after preStop; then --drain-delay, --grace-period, and up to 1 s for idle
    # connections to close by themselves (docs/deployment.md, Drain).
    grace = duration_seconds(flags.get("grace-period", "20s"))
    drain_delay = duration_seconds(flags.get("drain-delay", "0s"))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    termination = spec["terminationGracePeriodSeconds"]
    check(pre_stop + drain_delay + grace + 1 < termination,
          f"preStop {pre_stop}s + --drain-delay {drain_delay}s + --grace-period {grace}s + 1s "
          f"must stay below terminationGracePeriodSeconds {termination}s")

    pod_security = spec.get("securityContext", {})
    security = container.get("securityContext", {})
    check(pod_security.get("runAsNonRoot") is True, "runAsNonRoot")
    check(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    resources = container.get("resources", {})
    check(resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory"),
          "memory request and limit")

    env = {e["name"]: e for e in container.get("env", [])}
    for name in ["PARTICIPANTS_DATA_KEY", "PARTICIPANTS_DATABASE_URL"]:
        check("secretKeyRef" in env.get(name, {}).get("valueFrom", {}),
              f"{name} must come from a Secret")

    service = by_kind["Service"][0]
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    check(service_ports["grpc"].get("appProtocol") == "grpc"
          and service_ports["grpc"]["port"] == 50051, "Service grpc port with appProtocol grpc")
    check(service_ports["http"].get("appProtocol") == "http"
          and service_ports["http"]["port"] == 8080, "Service http port with appProtocol http")
    check("admin" not in service_ports, "the admin port stays out of the Service")

    labels = pod["metadata"]["labels"]
    for selector in [service["spec"]["selector"],
                     deployment["spec"]["selector"]["matchLabels"],
                     by_kind["PodDisruptionBudget"][0]["spec"]["selector"]["matchLabels"]]:
        check(selector and all(labels.get(k) == v for k, v in selector.items()),
              f"selector {selector} must match the pod's labels {labels}")
    hpa = by_kind["HorizontalPodAutoscaler"][0]["spec"]
    check(hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"], "HPA target")
    catalog = by_kind["ConfigMap"][0]["metadata"]["name"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    check(volumes["catalog"]["configMap"]["name"] == catalog, "catalog volume from the ConfigMap")

    if len(sys.argv) > 2:
        want = int(sys.argv[2])
        check(deployment["spec"]["replicas"] == want, f"replicas must be {want}")
        check(hpa["minReplicas"] == want, f"HPA minReplicas must be {want}")
    print(f"{sys.argv[1]}: probes, drain ({pre_stop}s + {drain_delay}s + {grace}s + 1s < "
          f"{termination}s), "
          f"security context, ports and selectors as documented")


if __name__ == "__main__":
    main()
