"""The official OpenAI Python client against the Vapora gateway, unchanged.

Started by scripts/test with the gateway binary already built. Prints a
closing 'N passed, N failed' line and exits non-zero on any failure.
"""
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import openai

GATEWAY = os.environ.get("VAPORA_GATEWAY_BIN", "target/debug/vapora-llm-gateway")
CONFIG = """
[providers.echo]
kind = "echo"
models = { "echo-1" = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }

[routes.default]
targets = ["echo/echo-1"]

[budgets."role:default"]
limit_usd = 100.0
period = "daily"

[gateway.keys.python]
hash = "{hash}"
"""

# The gateway knows only this key's hash; the SDK sends it as `Authorization: Bearer`.
KEY = "vgk_" + secrets.token_hex(32)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(workdir):
    port = free_port()
    config = os.path.join(workdir, "llm.toml")
    with open(config, "w") as f:
        f.write(CONFIG.replace("{hash}", "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()))
    env = dict(os.environ, VAPORA_LLM_CONFIG=config, VAPORA_GATEWAY_ADDR=f"127.0.0.1:{port}",
               VAPORA_GATEWAY_BUDGET_FILE=os.path.join(workdir, "budgets.json"), RUST_LOG="warn")
    proc = subprocess.Popen([GATEWAY], env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not start")


def test_non_streaming(client):
    r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "ping"}])
    assert r.choices[0].message.role == "assistant"
    assert "ping" in r.choices[0].message.content, r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.model == "echo/echo-1"


def test_streaming(client):
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "stream me please"}],
        stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "stream me please" in text, text
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


def test_concrete_provider_model_and_models_list(client):
    r = client.chat.completions.create(model="echo/echo-1", messages=[{"role": "user", "content": "direct"}], max_tokens=50)
    assert "direct" in r.choices[0].message.content
    ids = [m.id for m in client.models.list()]
    assert "default" in ids and "echo/echo-1" in ids, ids


def test_a_wrong_key_is_refused(client):
    wrong = openai.OpenAI(base_url=str(client.base_url), api_key="vgk_wrong", max_retries=0)
    try:
        wrong.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
    except openai.AuthenticationError as e:
        assert e.status_code == 401
        assert e.code == "invalid_api_key", e.code
    else:
        raise AssertionError("a wrong key was accepted")


def test_errors_are_typed(client):
    try:
        client.chat.completions.create(model="no-such-route", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError as e:
        assert e.status_code == 404
    else:
        raise AssertionError("unknown model accepted")
    try:
        client.chat.completions.create(model="default", messages=[])
    except openai.BadRequestError as e:
        assert e.status_code == 400
    else:
        raise AssertionError("empty messages accepted")


def main():
    passed = failed = 0
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_gateway(workdir)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
            for test in [test_non_streaming, test_streaming, test_concrete_provider_model_and_models_list, test_a_wrong_key_is_refused, test_errors_are_typed]:
                try:
                    test(client)
                    print(f"test {test.__name__} ... ok")
                    passed += 1
                except Exception:
                    print(f"test {test.__name__} ... FAILED")
                    traceback.print_exc()
                    failed += 1
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"openai-python: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
