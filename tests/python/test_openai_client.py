"""The official OpenAI Python client against the Vapora gateway, unchanged.

Started by scripts/test with the gateway binary already built. Prints a
closing 'N passed, N failed' line and exits non-zero on any failure.
"""
import os
import sys
import tempfile
import traceback

import openai

from local_processes import start_echo_gateway

GATEWAY = os.environ.get("VAPORA_GATEWAY_BIN", "target/debug/vapora-llm-gateway")
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
        # The gateway knows only the key's hash; the SDK sends it as `Authorization: Bearer`.
        proc, url, key = start_echo_gateway(GATEWAY, workdir)
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
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
