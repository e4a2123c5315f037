"""Starting this workspace's binaries as local processes for the Python tests."""
import hashlib
import os
import secrets
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, env, health_url, what, **popen):
    """Starts `argv` and waits until `health_url` answers; kills it on failure."""
    proc = subprocess.Popen(argv, env=env, **popen)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it served")
        try:
            urllib.request.urlopen(health_url, timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not start")


# The gateway on its built-in echo provider, with one key known by its hash.
ECHO_GATEWAY_CONFIG = """
[providers.echo]
kind = "echo"
models = { "echo-1" = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }

[routes.default]
targets = ["echo/echo-1"]

[budgets."role:default"]
limit_usd = 1000.0
period = "daily"

[gateway.keys.tests]
hash = "{hash}"
"""


def start_echo_gateway(binary, workdir, log_level="warn", **popen):
    """Starts the gateway on the echo provider; returns (process, base URL, key)."""
    port = free_port()
    key = "vgk_" + secrets.token_hex(32)
    config = os.path.join(workdir, "llm.toml")
    with open(config, "w") as f:
        f.write(ECHO_GATEWAY_CONFIG.replace("{hash}", "sha256:" + hashlib.sha256(key.encode()).hexdigest()))
    env = dict(os.environ, VAPORA_LLM_CONFIG=config, VAPORA_GATEWAY_ADDR=f"127.0.0.1:{port}",
               VAPORA_GATEWAY_BUDGET_FILE=os.path.join(workdir, "budgets.json"), RUST_LOG=log_level, NO_COLOR="1")
    url = f"http://127.0.0.1:{port}"
    return start([os.path.abspath(binary)], env, url + "/health", "the gateway", cwd=workdir, **popen), url, key
