#!/usr/bin/python3
"""The shipped DaemonSet (deploy/daemonset.yaml) against the agent it runs:
every flag in the container's args is one netagentd has; the ports the args
listen on are the container's ports; the probes ask the health-only port
(native gRPC probes, no process per probe); the Service's ports lead to the
API and metrics ports and it carries the pods' labels (for a
ServiceMonitor); the scrape annotations name the metrics port; every node
is tolerated and a priority class is set; the host's /proc/sys/net and
/proc/irq are mounted writable where --proc-root says; the socket, state
and TLS paths the args name are mounted; every mount has its volume. And
beside it, servicemonitor.yaml and cert-manager.yaml agree with it.

  tests/deploy/daemonset.py MANIFEST NETAGENTD
"""
import os
import re
import subprocess
import sys

import yaml


def port_of(value):
    m = re.search(r":(\d+)$", value)
    return int(m.group(1)) if m else None


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def check_companions(directory, ds, svc, container, args):
    """servicemonitor.yaml and cert-manager.yaml beside the manifest: the
    ServiceMonitor selects the Service and scrapes a port it has; the
    certificates land in the Secret the DaemonSet mounts, the server's names
    include the Service's DNS name, and the operator's URI is the agents'
    --operator-identity."""
    problems = []
    ns = ds["metadata"]["namespace"]
    sm_path = os.path.join(directory, "servicemonitor.yaml")
    if svc is not None and os.path.exists(sm_path):
        for sm in load(sm_path):
            want = sm["spec"]["selector"]["matchLabels"]
            labels = svc["metadata"].get("labels", {})
            if any(labels.get(k) != v for k, v in want.items()):
                problems.append(f"the ServiceMonitor selects {want}; the Service has {labels}")
            if ns not in sm["spec"].get("namespaceSelector", {}).get("matchNames", [ns]):
                problems.append(f"the ServiceMonitor does not look in namespace {ns}")
            names = {p.get("name") for p in svc["spec"].get("ports", [])}
            for ep in sm["spec"].get("endpoints", []):
                if ep.get("port") not in names:
                    problems.append(f"the ServiceMonitor scrapes port {ep.get('port')}, "
                                    f"the Service has {sorted(names)}")
    cm_path = os.path.join(directory, "cert-manager.yaml")
    if os.path.exists(cm_path):
        certs = [d for d in load(cm_path) if d.get("kind") == "Certificate"]
        pod = ds["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", [])
                   if "secret" in v}
        tls_dir = os.path.dirname(args.get("--tls-cert", ""))
        mount = next((m for m in container.get("volumeMounts", [])
                      if m["mountPath"].rstrip("/") == tls_dir), None)
        secret = secrets.get(mount["name"]) if mount else None
        server = next((c for c in certs if c["spec"].get("secretName") == secret), None)
        if server is None:
            problems.append(f"no Certificate writes the Secret the agents read ({secret})")
        elif svc is not None:
            dns = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
            if dns not in server["spec"].get("dnsNames", []):
                problems.append(f"the server certificate does not name {dns}")
        identity = args.get("--operator-identity", "")
        if identity.startswith("uri:"):
            if not any(identity[4:] in c["spec"].get("uris", []) for c in certs):
                problems.append(f"no Certificate carries the operator identity {identity}")
    return problems


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
        if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
            problems.append(f"prometheus.io/path {annotations['prometheus.io/path']} is not /metrics")
        if annotations.get("prometheus.io/port") != str(port_of(args["--metrics-listen"])):
            problems.append(f"prometheus.io/port {annotations.get('prometheus.io/port')} is not"
                            f" --metrics-listen's port")
    # Every node: a toleration of every taint, and a priority class that
    # keeps the agent from being evicted first.
    if not any(t.get("operator") == "Exists" and "key" not in t and "effect" not in t
               for t in pod.get("tolerations", [])):
        problems.append("no toleration of every taint (operator: Exists, no key, no effect)")
    if pod.get("nodeSelector", {}).get("kubernetes.io/os") != "linux":
        problems.append("tolerating every taint without nodeSelector kubernetes.io/os: linux")
    priority = pod.get("priorityClassName")
    if not priority:
        problems.append("no priorityClassName")
    elif priority.startswith("system-") and ds["metadata"]["namespace"] != "kube-system":
        quota = [d for d in docs if d.get("kind") == "ResourceQuota" and
                 d["metadata"].get("namespace") == ds["metadata"]["namespace"] and
                 any(e.get("scopeName") == "PriorityClass" and priority in e.get("values", [])
                     for e in d["spec"].get("scopeSelector", {}).get("matchExpressions", []))]
        if not quota:
            problems.append(f"{priority} outside kube-system without a ResourceQuota allowing it")
    # The tuners' trees: the host's, writable, where --proc-root says.
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", [])
                  if "hostPath" in v}
    mounted = {host_paths[m["name"]]: m for m in container.get("volumeMounts", [])
               if m["name"] in host_paths}
    sys_root = args.get("--sys-root")
    if sys_root is not None:
        m = mounted.get("/sys")
        if m is None or m["mountPath"].rstrip("/") != sys_root.rstrip("/") or m.get("readOnly"):
            problems.append(f"--sys-root={sys_root} but the host's /sys is not mounted writable"
                            f" there")
        if "--netns" in args:
            problems.append("--sys-root with --netns (the agent mounts that namespace's sysfs)")
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
    problems += check_companions(os.path.dirname(manifest), ds, svc, container, args)
    for p in problems:
        print(p)
    print(f"{len(args)} args, {len(ports)} ports, {len(mounts)} mounts checked;"
          f" {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
