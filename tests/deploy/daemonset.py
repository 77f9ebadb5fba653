#!/usr/bin/python3
"""The shipped DaemonSet (deploy/daemonset.yaml) against the agent it runs:
every flag in the container's args is one netagentd has; the ports the args
listen on are the container's ports; the probes ask the health-only port
(native gRPC probes, no process per probe); the Service's ports lead to the
API and metrics ports and it carries the pods' labels (for a
ServiceMonitor); the scrape annotations name the metrics port; every node
is tolerated and a priority class is set; the host's /proc/sys/net and
/proc/irq are mounted writable where --proc-root says; the socket, state
and TLS paths the args name are mounted; every mount has its volume.

  tests/deploy/daemonset.py MANIFEST NETAGENTD
"""
import re
import subprocess
import sys

import yaml


def port_of(value):
    m = re.search(r":(\d+)$", value)
    return int(m.group(1)) if m else None


def main():
    manifest, agent = sys.argv[1], sys.argv[2]
    with open(manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    problems = []
    ds = next((d for d in docs if d.get("kind") == "DaemonSet"), None)
    svc = next((d for d in docs if d.get("kind") == "Service"), None)
    if ds is None:
        print("no DaemonSet in", manifest)
        return 1
    pod = ds["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "netagentd")
    helptext = subprocess.run([agent, "--help"], capture_output=True, text=True).stdout
    known = set(re.findall(r"--[a-z][a-z-]*", helptext))
    args = {}
    for a in container.get("args", []):
        flag, _, value = a.partition("=")
        if flag not in known:
            problems.append(f"args pass {flag}, which netagentd does not have")
        args[flag] = value
    ports = {p["containerPort"]: p.get("name") for p in container.get("ports", [])}
    for flag in ("--listen", "--health-listen", "--metrics-listen"):
        if flag in args:
            port = port_of(args[flag])
            if port not in ports:
                problems.append(f"{flag}={args[flag]}: port {port} is not a containerPort")
    health = port_of(args.get("--health-listen", ""))
    if health is None:
        problems.append("no --health-listen: probes would need a client certificate")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = container.get(probe)
        if p is None:
            problems.append(f"no {probe}")
        elif "grpc" not in p:
            problems.append(f"{probe} is not a native gRPC probe: {p}")
        elif p["grpc"].get("port") != health:
            problems.append(f"{probe} asks port {p['grpc'].get('port')}, the health port is {health}")
    if svc is not None:
        api = port_of(args.get("--listen", ""))
        metrics = port_of(args.get("--metrics-listen", ""))
        by_name = {name: port for port, name in ports.items()}
        for sp in svc["spec"].get("ports", []):
            target = by_name.get(sp.get("targetPort"), sp.get("targetPort"))
            want = {"grpc": api, "metrics": metrics}.get(sp.get("name"))
            if target not in ports or (want is not None and target != want):
                problems.append(f"Service port {sp} leads to no agent port of its name")
        labels = svc["metadata"].get("labels", {})
        if not all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()):
            problems.append("the Service lacks its pods' labels (a ServiceMonitor selects by them)")
    annotations = ds["spec"]["template"]["metadata"].get("annotations", {})
    if "--metrics-listen" in args:
        if annotations.get("prometheus.io/scrape") != "true":
            problems.append("no prometheus.io/scrape annotation for the metrics port")
        if annotations.get("prometheus.io/port") != str(port_of(args["--metrics-listen"])):
            problems.append(f"prometheus.io/port {annotations.get('prometheus.io/port')} is not"
                            f" --metrics-listen's port")
    # Every node: a toleration of every taint, and a priority class that
    # keeps the agent from being evicted first.
    if not any(t.get("operator") == "Exists" and "key" not in t
               for t in pod.get("tolerations", [])):
        problems.append("no toleration of every taint (operator: Exists, no key)")
    if not pod.get("priorityClassName"):
        problems.append("no priorityClassName")
    # The tuners' trees: the host's, writable, where --proc-root says.
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", [])
                  if "hostPath" in v}
    mounted = {host_paths[m["name"]]: m for m in container.get("volumeMounts", [])
               if m["name"] in host_paths}
    root = args.get("--proc-root")
    if root is None:
        problems.append("no --proc-root: the container's /proc/sys is read-only, tuning fails")
    else:
        for host, under in (("/proc/sys/net", "/sys/net"), ("/proc/irq", "/irq")):
            m = mounted.get(host)
            if m is None:
                problems.append(f"--proc-root={root} but the host's {host} is not mounted")
            elif m["mountPath"] != root.rstrip("/") + under or m.get("readOnly"):
                problems.append(f"{host} is mounted at {m['mountPath']}"
                                f"{' read-only' if m.get('readOnly') else ''};"
                                f" --proc-root wants it writable at {root.rstrip('/')}{under}")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    for m in container.get("volumeMounts", []):
        if m["name"] not in volumes:
            problems.append(f"volumeMount {m['name']} has no volume")
    for flag in ("--socket", "--state-dir", "--tls-cert", "--tls-key", "--tls-client-ca"):
        path = args.get(flag)
        if path and not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{flag}={path} is not under any volumeMount ({mounts})")
    for p in problems:
        print(p)
    print(f"{len(args)} args, {len(ports)} ports, {len(mounts)} mounts checked;"
          f" {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
