"""A smoke run of the compose variant without Docker, and the systemd sandbox against it.

Runs the built gatehouse with the compose config as deploycheck.py staged it (dev
certificates, dev issuer, the compose policy), on loopback ports chosen by the OS, in front of
deploy/compose/echo.py; sends the requests a person trying compose would send; then stops it
with SIGTERM and expects a clean exit. With strace available, the system calls and socket
address families Gatehouse used are compared with what gatehouse.service's SystemCallFilter=
and RestrictAddressFamilies= allow, since no systemd runs here to enforce them for real.

Usage: smoke.py GATEHOUSE STAGED_CONFIG ECHO_PY UNIT
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

failures = []


def check(condition, message):
    print(f"  {'ok  ' if condition else 'FAIL'} {message}")
    if not condition:
        failures.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"  FAIL timed out waiting for {what}")


def request(port, path, context=None, headers=None):
    """(status, body) of one GET; `context` makes it HTTPS."""
    if context:
        conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError:
        return None, ""
    finally:
        conn.close()


def gatehouse_pid(strace_pid):
    """The traced process: strace's only child."""
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split()
    return int(children[0])


def token(gatehouse, certs, *args):
    return subprocess.run(
        [gatehouse, "dev", "token", "--certs", str(certs), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def smoke(gatehouse, config_file, echo_py, trace):
    config = yaml.safe_load(Path(config_file).read_text())
    certs = Path(config["tls"]["certificates"][0]["cert_file"]).parent
    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, echo_py, "127.0.0.1", str(echo_port)], stderr=subprocess.DEVNULL
    )
    strace = ["strace", "-f", "-qq", "-o", str(trace)] if trace else []
    log = tempfile.TemporaryFile(mode="w+")
    command = [
        *strace,
        gatehouse,
        "run",
        "--config",
        str(config_file),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--upstream",
        f"http://127.0.0.1:{echo_port}",
        "--log-format",
        "text",
    ]
    proxy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:

        def serving():
            log.seek(0)
            text = log.read()
            if proxy.poll() is not None:
                raise SystemExit(f"  FAIL gatehouse exited ({proxy.returncode}):\n{text}")
            match = re.search(r"https=127\.0\.0\.1:(\d+).*admin=127\.0\.0\.1:(\d+)", text)
            return match and (int(match.group(1)), int(match.group(2)))

        https, admin = wait_for("gatehouse to listen", serving)
        wait_for("the echo app", lambda: request(echo_port, "/")[0] == 200)
        check(
            wait_for("/readyz", lambda: request(admin, "/readyz")[0] == 200),
            "admin /readyz is 200 once certificates and the dev issuer's keys are loaded",
        )
        tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        status, body = request(https, "/", tls)
        check(status == 200 and '"path": "/"' in body, f"public route / reaches the app over TLS ({status})")
        status, _ = request(https, "/api/orders", tls)
        check(status == 401, f"/api/orders without a token is refused with 401 ({status})")
        alice = token(gatehouse, certs, "--sub", "alice", "--roles", "admin")
        status, body = request(https, "/admin/users", tls, {"Authorization": f"Bearer {alice}"})
        seen = {k.lower(): v for k, v in json.loads(body).get("headers", {}).items()} if status == 200 else {}
        check(
            status == 200 and seen.get("x-user-id") == "alice" and "authorization" not in seen,
            f"admin token reaches /admin with X-User-Id alice and no Authorization ({status})",
        )
        bob = token(gatehouse, certs, "--sub", "bob")
        status, _ = request(https, "/admin/users", tls, {"Authorization": f"Bearer {bob}"})
        check(status == 403, f"a token without the admin role gets 403 on /admin ({status})")
        status, body = request(https, "/metrics", tls)
        check(status != 200 and "gatehouse_" not in body, f"/metrics is not served on the public port ({status})")
        status, body = request(admin, "/metrics")
        check(status == 200 and "gatehouse_requests_total" in body, "admin /metrics counts the requests")
        # Under strace, the signal goes to Gatehouse (strace's child), not to strace.
        target = gatehouse_pid(proxy.pid) if trace else proxy.pid
        os.kill(target, signal.SIGTERM)
        code = proxy.wait(timeout=30)
        check(code == 0, f"SIGTERM: drained and exited 0 ({code})")
    finally:
        if proxy.poll() is None:
            if trace:
                os.kill(gatehouse_pid(proxy.pid), signal.SIGKILL)
            proxy.kill()
            proxy.wait()
        echo.terminate()
        echo.wait()
        if failures:
            log.seek(0)
            print("  gatehouse log:\n" + "".join("    " + line for line in log))


# --- the systemd sandbox ------------------------------------------------------------------------


def syscall_groups():
    """systemd's named syscall groups, nested groups expanded."""
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter"], check=True, capture_output=True, text=True
    ).stdout
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())

    def expand(name, seen=()):
        if not name.startswith("@"):
            return {name}
        return set().union(*(expand(n, seen + (name,)) for n in groups.get(name, []) if n not in seen))

    return expand


def unit_settings(unit):
    values = {}
    for line in Path(unit).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.split())
    return values


def sandbox(unit, trace):
    settings = unit_settings(unit)
    expand = syscall_groups()
    allowed = None
    for words in settings.get("SystemCallFilter", []):
        deny = words[0].startswith("~")
        names = set().union(*(expand(w.lstrip("~")) for w in words))
        if deny:
            allowed = (allowed if allowed is not None else set()) - names
        else:
            allowed = (allowed or set()) | names
    families = {w for words in settings.get("RestrictAddressFamilies", []) for w in words}
    used, used_families = set(), set()
    for path in Path(trace).parent.glob(Path(trace).name + "*"):
        for line in path.read_text().splitlines():
            # `PID name(args) = result`, or `... <unfinished ...>` (resumed lines repeat it).
            match = re.match(r"^\d+\s+([a-z0-9_]+)\(", line)
            if match:
                used.add(match.group(1))
            family = re.search(r"\bsocket\((AF_[A-Z0-9]+)", line)
            if family:
                used_families.add(family.group(1))
    # execve happens before systemd applies the filter, in systemd's own process.
    outside = sorted(used - allowed - {"execve"})
    if outside:
        check(False, f"system calls outside SystemCallFilter=: {', '.join(outside)}")
    else:
        check(True, f"all {len(used)} system calls used are allowed by SystemCallFilter=")
    check(
        used_families <= families,
        f"socket families {', '.join(sorted(used_families))} allowed by RestrictAddressFamilies=",
    )


def main(gatehouse, config_file, echo_py, unit):
    trace = None
    if shutil.which("strace") and subprocess.run(["strace", "-o", "/dev/null", "true"]).returncode == 0:
        tmp = tempfile.mkdtemp(prefix="deploy-smoke-")
        trace = Path(tmp) / "trace"
    else:
        print("  strace unusable here: the systemd sandbox comparison is not run")
    smoke(gatehouse, config_file, echo_py, trace)
    if trace:
        sandbox(unit, trace)
        shutil.rmtree(trace.parent)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
