"""Checks for deploy/ that need more than a schema: run by deploy/check, not by hand.

Every Gatehouse config under deploy/ names absolute paths (/etc/gatehouse/tls/tls.crt, ...)
that exist only where it is deployed. To run `gatehouse check` on it anyway, each variant's
files are *staged*: a temporary directory stands in for the filesystem root, and it is
filled the way the deployment fills the real one, read from the deployment's own files:

- kubernetes: the gatehouse container's volumeMounts in the rendered Deployment; ConfigMap
  contents from the rendered ConfigMaps; the TLS Secret (which comes from outside the repo)
  as throwaway files, under the key names such a Secret has (tls.crt, tls.key); each volume
  laid out as the kubelet does it (files reached through the `..data` symlink);
- compose: the gatehouse service's bind mounts; the dev certificate directory (made by
  `gatehouse certs dev` and `gatehouse dev token`, never committed) made by those commands;
- systemd: the install layout of deploy/README.md (/etc/gatehouse/gatehouse.yaml and
  policies/), certificate and key as throwaway files.

The config then gets exactly one change: every absolute path in `cert_file`, `key_file`,
`jwks_file` and `policies` is prefixed with the staging directory, on its own line, so line
numbers in `gatehouse check`'s errors are those of the shipped file. A config that names a
file its deployment does not provide fails here, which is the point.

Beside that, each variant's files are cross-checked against its config where they must agree
(ports, drain timeout vs. grace period, capabilities), and the compose file's structure is
checked (there is no compose CLI here).

Usage: deploycheck.py GATEHOUSE_BINARY kubernetes RENDERED.yaml LABEL
       deploycheck.py GATEHOUSE_BINARY kubernetes-dir KUSTOMIZATION_DIR LABEL
       deploycheck.py GATEHOUSE_BINARY compose COMPOSE.yaml [KEEP_STAGED_DIR]
       deploycheck.py GATEHOUSE_BINARY systemd UNIT CONFIG POLICIES_DIR
       deploycheck.py - kubernetes-resources KUSTOMIZATION_DIR
Exit status 0 when every check passed, 1 otherwise; each problem is printed.
"""

import base64
import ipaddress
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PATH_KEYS = ("cert_file", "key_file", "jwks_file", "policies")
PATH_LINE = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?(?:%s):\s*)(?P<quote>[\"']?)(?P<path>/[^\"'\s#]*)"
    % "|".join(PATH_KEYS)
)
# The keys of a kubernetes.io/tls Secret, and of the Secret cert-manager writes.
TLS_SECRET_KEYS = {"tls.crt", "tls.key", "ca.crt"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")
    print(f"  FAIL {where}: {message}")


def ok(message):
    print(f"  ok   {message}")


def ok_unless_failed(before, message):
    """`ok` for a group of checks that added no problem since `before` problems."""
    if len(problems) == before:
        ok(message)


# --- shared ---------------------------------------------------------------------------------


def duration_seconds(text, default):
    """Gatehouse durations (500ms, 10s, 5m, 1h) and compose/systemd ones (45s, 1m30s)."""
    if text is None:
        return default
    text = str(text).strip()
    if text.isdigit():
        return float(text)
    total, units = 0.0, {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    for number, unit in re.findall(r"(\d+)\s*([a-z]+)", text):
        if unit not in units:
            raise ValueError(f"unknown duration unit in {text!r}")
        total += int(number) * units[unit]
    return total


def listen_addr(text):
    host, _, port = str(text).rpartition(":")
    return ipaddress.ip_address(host.strip("[]")), int(port)


def dev_certs(gatehouse, directory):
    """What the README tells a developer to run: dev certificates and the dev issuer's JWKS."""
    run = lambda *args: subprocess.run(
        [gatehouse, *args], check=True, stdout=subprocess.DEVNULL
    )
    run("certs", "dev", "--out", str(directory))
    run("dev", "token", "--sub", "deploy-check", "--certs", str(directory))
    return {
        "cert": Path(directory) / "localhost.pem",
        "key": Path(directory) / "localhost-key.pem",
    }


def throwaway(target, certs):
    """A stand-in for a certificate or key the deployment provides from outside the repo."""
    target.parent.mkdir(parents=True, exist_ok=True)
    is_key = "key" in target.name
    shutil.copyfile(certs["key" if is_key else "cert"], target)


def config_paths(text):
    """Absolute paths named by the path keys of a config, with their line numbers."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        match = PATH_LINE.match(line)
        if match:
            key = line.split(":", 1)[0].strip().lstrip("- ").strip()
            found.append((number, key, match.group("path")))
    return found


def run_check(gatehouse, source, root, config_path, text):
    """Writes the config into the staged root with its paths re-rooted; runs gatehouse check."""
    staged = root / config_path.lstrip("/")
    staged.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in text.splitlines(keepends=True):
        match = PATH_LINE.match(line)
        if match:
            start = match.start("path")
            line = line[:start] + str(root) + line[start:]
        lines.append(line)
    staged.write_text("".join(lines))
    result = subprocess.run(
        [gatehouse, "check", "--config", str(staged)], capture_output=True, text=True
    )
    output = (result.stdout + result.stderr).replace(str(root), "")
    if result.returncode == 0:
        ok(f"gatehouse check: {source}, staged as {config_path}")
        for line in result.stderr.splitlines():
            print(f"       {line.replace(str(root), '')}")
    else:
        problem(source, "gatehouse check failed:\n" + _indent(output))


def _indent(text):
    return "\n".join("         " + line for line in text.rstrip().splitlines())


def load_config(text, where):
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        problem(where, f"not YAML: {e}")
        return {}


# --- kubernetes -----------------------------------------------------------------------------


def kustomization_direct(directory, seen=None):
    """Resources of a kustomization without kustomize: its resource files (recursively) and
    its configMapGenerator output, unhashed. Patches, images and namespaces are not applied:
    this is the fallback when no kustomize is installed, and says so."""
    directory = Path(directory)
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    docs = []
    for entry in kust.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs.extend(kustomization_direct(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for generator in kust.get("configMapGenerator", []):
        data = {}
        for item in generator.get("files", []):
            key, _, file = item.rpartition("=")
            data[key or Path(file).name] = (directory / file).read_text()
        name = generator["name"]
        existing = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
        behavior = generator.get("behavior", "create")
        if behavior == "merge" and existing:
            existing[0]["data"].update(data)
            continue
        docs = [d for d in docs if d not in existing]
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    return docs


def kubernetes_resources(directory):
    """A kustomization's own files that hold whole Kubernetes objects: not its bases (each is
    validated on its own), not its patches (partial objects)."""
    directory = Path(directory)
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    for entry in kust.get("resources", []):
        if (directory / entry).is_file():
            yield directory / entry


def kubelet_volume(target, files):
    """Writes `files` (name -> bytes) the way the kubelet fills a ConfigMap or Secret volume:
    into a timestamped directory, `..data` linking to it, and each name a link through
    `..data` (an update swaps `..data` in one rename)."""
    stamp = target / "..2026_01_01_00_00_00.000000000"
    for name, content in files.items():
        (stamp / name).parent.mkdir(parents=True, exist_ok=True)
        (stamp / name).write_bytes(content)
        top = name.split("/")[0]
        if not (target / top).is_symlink():
            (target / top).symlink_to(Path("..data") / top)
    if not (target / "..data").is_symlink():
        (target / "..data").symlink_to(stamp.name)


def container_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_kubernetes(gatehouse, docs, label):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    certificates = {d["spec"].get("secretName"): d for d in by_kind.get("Certificate", [])}

    for c in by_kind.get("Certificate", []):
        spec, name = c.get("spec", {}), c["metadata"]["name"]
        # No schema for cert-manager's CRD offline: its required fields by hand.
        for field in ("secretName", "issuerRef"):
            if not spec.get(field):
                problem(f"{label} Certificate/{name}", f"spec.{field} is required")
        if not (spec.get("dnsNames") or spec.get("commonName") or spec.get("ipAddresses")):
            problem(f"{label} Certificate/{name}", "needs spec.dnsNames")

    deployments = by_kind.get("Deployment", [])
    if not deployments:
        problem(label, "no Deployment")
    for deployment in deployments:
        where = f"{label} Deployment/{deployment['metadata']['name']}"
        pod = deployment["spec"]["template"]["spec"]
        candidates = pod.get("initContainers", []) + pod.get("containers", [])
        gate = next((c for c in candidates if c["name"] == "gatehouse"), None)
        if gate is None:
            problem(where, "no container named gatehouse")
            continue
        args = gate.get("args", [])
        if "--config" not in args:
            problem(where, "the gatehouse container's args name no --config")
            continue
        config_path = args[args.index("--config") + 1]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
            root = Path(tmp) / "root"
            certs = dev_certs(gatehouse, Path(tmp) / "certs")
            secret_mounts = []  # (mountPath, allowed file names)
            config_text = None
            for mount in gate.get("volumeMounts", []):
                volume = volumes.get(mount["name"])
                target = root / mount["mountPath"].lstrip("/")
                target.mkdir(parents=True, exist_ok=True)
                if volume is None:
                    problem(where, f"volumeMount {mount['name']} has no volume")
                elif "configMap" in volume:
                    cm = configmaps.get(volume["configMap"]["name"])
                    if cm is None:
                        problem(where, f"ConfigMap {volume['configMap']['name']} is not in the output")
                        continue
                    items = volume["configMap"].get("items") or [
                        {"key": k, "path": k} for k in cm.get("data", {})
                    ]
                    kubelet_volume(
                        target, {i["path"]: cm["data"][i["key"]].encode() for i in items}
                    )
                    for item in items:
                        if mount["mountPath"].rstrip("/") + "/" + item["path"] == config_path:
                            config_text = cm["data"][item["key"]]
                elif "secret" in volume:
                    name = volume["secret"]["secretName"]
                    if name in secrets:
                        data = secrets[name].get("data", {})
                        kubelet_volume(target, {k: base64.b64decode(v) for k, v in data.items()})
                        allowed = set(data)
                    else:
                        # From outside the repo (cert-manager or kubectl create secret tls).
                        allowed = {i["path"] for i in volume["secret"].get("items", [])} or TLS_SECRET_KEYS
                        how = "cert-manager Certificate" if name in certificates else "external"
                        ok(f"{where}: Secret {name} ({how}) mounted at {mount['mountPath']}")
                    secret_mounts.append((mount["mountPath"].rstrip("/"), target, allowed))
            if config_text is None:
                problem(where, f"--config {config_path} is not in a mounted ConfigMap")
                continue
            # Files the config expects under an external Secret's mount: throwaway stand-ins,
            # and only under names such a Secret has.
            for mount_path, target, allowed in secret_mounts:
                wanted = {}
                for line, key, path in config_paths(config_text):
                    if path.startswith(mount_path + "/"):
                        name = path[len(mount_path) + 1 :]
                        if name not in allowed:
                            problem(where, f"config line {line}: {key} {path}: the Secret mounted at {mount_path} has no key {name} (it has {', '.join(sorted(allowed))})")
                        elif not (target / name).exists():
                            wanted[name] = certs["key" if "key" in name else "cert"].read_bytes()
                kubelet_volume(target, wanted)
            source = f"{label} (from its ConfigMap)"
            run_check(gatehouse, source, root, config_path, config_text)
            cross_check_kubernetes(where, load_config(config_text, source), deployment, gate, docs)


def cross_check_kubernetes(where, config, deployment, gate, docs):
    before = len(problems)
    listen = config.get("listen", {})
    https = listen_addr(listen.get("https", "0.0.0.0:8443"))
    admin = listen_addr(listen.get("admin", "127.0.0.1:9901"))
    if admin[0].is_loopback:
        problem(where, "listen.admin is on loopback: the kubelet's probes cannot reach it")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = gate.get(probe)
        if spec is None:
            problem(where, f"gatehouse has no {probe}")
            continue
        port = container_port(gate, spec["httpGet"]["port"])
        if port != admin[1]:
            problem(where, f"{probe} probes port {port}, the admin listener is on {admin[1]}")
    if container_port(gate, "https") != https[1]:
        problem(where, f"containerPort https is not listen.https's port {https[1]}")
    if gate.get("restartPolicy") == "Always":
        if "startupProbe" not in gate or gate["startupProbe"]["httpGet"]["path"] != "/readyz":
            problem(where, "the native sidecar's startupProbe must be /readyz to gate the app")
    drain = duration_seconds(config.get("limits", {}).get("drain_timeout"), 30)
    grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= drain:
        problem(where, f"terminationGracePeriodSeconds {grace} is not above drain_timeout {drain:g}s")
    security = gate.get("securityContext", {})
    expected = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    for field, value in expected.items():
        if security.get(field) is not value:
            problem(where, f"gatehouse securityContext.{field} must be {value}")
    if security.get("capabilities", {}).get("drop") != ["ALL"]:
        problem(where, "gatehouse securityContext.capabilities.drop must be [ALL]")
    for service in (d for d in docs if d["kind"] == "Service"):
        for port in service["spec"].get("ports", []):
            target = container_port(gate, port.get("targetPort", port["port"]))
            if target != https[1]:
                problem(f"Service/{service['metadata']['name']}", f"port {port['port']} targets {target}, not Gatehouse's TLS port {https[1]}")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not policies:
        problem(where, "no NetworkPolicy")
    for policy in policies:
        ports = {
            container_port(gate, p["port"])
            for rule in policy["spec"].get("ingress", [])
            for p in rule.get("ports", [{"port": "(all)"}])
        }
        if ports != {https[1]}:
            problem(f"NetworkPolicy/{policy['metadata']['name']}", f"admits ports {sorted(map(str, ports))}, not only {https[1]}")
    ok_unless_failed(before, f"{where}: probes, ports, grace period, securityContext, Service and NetworkPolicy agree with the config")


# --- compose --------------------------------------------------------------------------------


def check_compose(gatehouse, compose_file, keep=None):
    """Checks the compose file and its config; with `keep`, leaves the staged tree there (for
    smoke.py) instead of in a temporary directory."""
    compose_file = Path(compose_file)
    where = str(compose_file)
    try:
        doc = yaml.safe_load(compose_file.read_text())
    except yaml.YAMLError as e:
        problem(where, f"not YAML: {e}")
        return
    # The structure Compose requires, by hand (no compose CLI here).
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict) or not services:
        problem(where, "needs a `services` mapping")
        return
    known = {"name", "services", "networks", "volumes", "configs", "secrets", "include"}
    for key in doc:
        if key not in known and not str(key).startswith("x-"):
            problem(where, f"unknown top-level key {key}")
    for name, service in services.items():
        if not isinstance(service, dict) or not ("image" in service or "build" in service):
            problem(f"{where} services.{name}", "needs `image` or `build`")
    gate_name = next(
        (n for n, s in services.items() if "--config" in (s.get("command") or [])), None
    )
    if gate_name is None:
        problem(where, "no service runs gatehouse with --config")
        return
    gate = services[gate_name]
    network = gate.get("network_mode", "")
    owner = network.removeprefix("service:")
    if not network.startswith("service:") or owner not in services:
        problem(f"{where} services.{gate_name}", "network_mode must be service:<app>, as in a pod")
        return
    for field, value in (("read_only", True), ("cap_drop", ["ALL"])):
        if gate.get(field) != value:
            problem(f"{where} services.{gate_name}", f"{field} must be {value}")
    if gate.get("ports"):
        problem(f"{where} services.{gate_name}", "ports belong to the network namespace's owner")
    ok(f"{where}: structure (services, image/build, network_mode service:{owner}, hardening)")

    command = gate["command"]
    config_path = command[command.index("--config") + 1]
    mounts = []
    for volume in gate.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((volume.get("source"), volume.get("target")))
        else:
            mounts.append(tuple(volume.split(":")[:2]))
    config_source = next((s for s, t in mounts if t == config_path), None)
    if config_source is None:
        problem(where, f"--config {config_path} is not a mounted file")
        return
    config_text = (compose_file.parent / config_source).read_text()
    # Mounts that the config's certificate, key or JWKS file lie under are the developer's
    # certificate directory (git-ignored), made by the commands in the compose file's header.
    cert_paths = [p for _, key, p in config_paths(config_text) if key != "policies"]
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        root = Path(keep or tmp) / "root"
        for source, target in mounts:
            host = compose_file.parent / source
            staged = root / target.lstrip("/")
            if any(p.startswith(target.rstrip("/") + "/") for p in cert_paths):
                dev_certs(gatehouse, staged)
                ok(f"{where}: {source} made as its header says (certs dev, dev token)")
            elif host.is_file():
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(host, staged)
            elif host.is_dir():
                shutil.copytree(host, staged)
            else:
                problem(where, f"bind mount source {source} does not exist")
        source = compose_file.parent / config_source
        run_check(gatehouse, str(source), root, config_path, config_text)
    before = len(problems)
    config = load_config(config_text, config_path)
    https = listen_addr(config.get("listen", {}).get("https", "0.0.0.0:8443"))
    published = [str(p).rsplit(":", 1)[-1] for p in services[owner].get("ports", [])]
    if str(https[1]) not in published:
        problem(f"{where} services.{owner}", f"does not publish Gatehouse's port {https[1]}")
    drain = duration_seconds(config.get("limits", {}).get("drain_timeout"), 30)
    grace = duration_seconds(gate.get("stop_grace_period"), 10)
    if grace <= drain:
        problem(f"{where} services.{gate_name}", f"stop_grace_period {grace:g}s is not above drain_timeout {drain:g}s")
    ok_unless_failed(before, f"{where}: published port and stop_grace_period agree with the config")


# --- systemd --------------------------------------------------------------------------------


def unit_values(unit_file):
    values = {}
    for line in Path(unit_file).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def check_systemd(gatehouse, unit_file, config_file, policies_dir):
    where = str(unit_file)
    unit = unit_values(unit_file)
    start = unit.get("ExecStart", [""])[-1].split()
    if "--config" not in start:
        problem(where, "ExecStart names no --config")
        return
    config_path = start[start.index("--config") + 1]
    for pre in unit.get("ExecStartPre", []) + unit.get("ExecReload", [])[:-1]:
        if " check " in f" {pre} " and f"--config {config_path}" not in pre:
            problem(where, f"`{pre}` checks another config than ExecStart runs")
    config_text = Path(config_file).read_text()
    config = load_config(config_text, config_file)
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        root = Path(tmp) / "root"
        certs = dev_certs(gatehouse, Path(tmp) / "certs")
        # The install layout of deploy/README.md: config and policies under /etc/gatehouse;
        # certificate and key are the operator's (throwaway here).
        policies = config.get("policies", "")
        shutil.copytree(policies_dir, root / policies.lstrip("/"))
        for _, key, path in config_paths(config_text):
            if key in ("cert_file", "key_file"):
                throwaway(root / path.lstrip("/"), certs)
        run_check(gatehouse, str(config_file), root, config_path, config_text)
    before = len(problems)
    https = listen_addr(config.get("listen", {}).get("https", "0.0.0.0:8443"))
    if https[1] < 1024:
        for key in ("AmbientCapabilities", "CapabilityBoundingSet"):
            if "CAP_NET_BIND_SERVICE" not in " ".join(unit.get(key, [])):
                problem(where, f"port {https[1]} needs {key}=CAP_NET_BIND_SERVICE")
    drain = duration_seconds(config.get("limits", {}).get("drain_timeout"), 30)
    stop = duration_seconds(unit.get("TimeoutStopSec", ["90s"])[-1], 90)
    if stop <= drain:
        problem(where, f"TimeoutStopSec {stop:g}s is not above drain_timeout {drain:g}s")
    hidden = ("/home", "/root", "/run/user")
    for _, key, path in config_paths(config_text):
        if unit.get("ProtectHome") and path.startswith(hidden):
            problem(where, f"{key} {path} is hidden by ProtectHome")
    ok_unless_failed(before, f"{where}: capabilities, TimeoutStopSec and paths agree with the config")


def main(argv):
    gatehouse, command, *args = argv
    if command == "kubernetes":
        rendered, label = args
        docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
        check_kubernetes(gatehouse, docs, label)
    elif command == "kubernetes-dir":
        directory, label = args
        check_kubernetes(gatehouse, kustomization_direct(directory), label)
    elif command == "kubernetes-resources":
        for path in kubernetes_resources(args[0]):
            print(path)
        return 0
    elif command == "compose":
        check_compose(gatehouse, *args)
    elif command == "systemd":
        check_systemd(gatehouse, *args)
    else:
        sys.exit(f"unknown command {command}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
