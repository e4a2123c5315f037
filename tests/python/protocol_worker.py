"""A Vapora agent worker in Python, written from docs/protocol.md alone.

It takes task attempts from the durable consumers `workers-<role>` on the
JetStream stream `VAPORA_TASKS`, asks an OpenAI-compatible model, and reports
`started`, one `progress` chunk and `succeeded` (or `failed`) on
`vapora.events.<task_id>`. It heartbeats on `vapora.agents.heartbeat`,
honours `vapora.cancel.<task_id>`, and on SIGTERM stops fetching, lets
running attempts finish within a grace period, naks the rest and exits 0.

Environment: VAPORA_NATS_URL (required), VAPORA_AGENT_ID, VAPORA_AGENT_ROLES,
VAPORA_AGENT_CONCURRENCY, VAPORA_LLM_BASE_URL, VAPORA_LLM_MODEL,
VAPORA_ACK_WAIT_SECS, VAPORA_AGENT_HEARTBEAT_SECS, VAPORA_SHUTDOWN_GRACE_SECS.
"""

import asyncio
import json
import os
import signal
import threading
import urllib.request
from datetime import datetime, timezone

import nats
import nats.errors

NATS_URL = os.environ["VAPORA_NATS_URL"]
AGENT_ID = os.environ.get("VAPORA_AGENT_ID", "py-worker-1")
ROLES = [r.strip() for r in os.environ.get("VAPORA_AGENT_ROLES", "developer").split(",") if r.strip()]
CONCURRENCY = int(os.environ.get("VAPORA_AGENT_CONCURRENCY", "2"))
LLM_BASE_URL = os.environ.get("VAPORA_LLM_BASE_URL", "http://127.0.0.1:8080/v1").rstrip("/")
LLM_MODEL = os.environ.get("VAPORA_LLM_MODEL", "fake-model")
ACK_WAIT = float(os.environ.get("VAPORA_ACK_WAIT_SECS", "30"))
HEARTBEAT_SECS = float(os.environ.get("VAPORA_AGENT_HEARTBEAT_SECS", "0.5"))
GRACE_SECS = float(os.environ.get("VAPORA_SHUTDOWN_GRACE_SECS", "5"))
VERSION = "0.1.0-py"


def log(*args):
    print(f"[{AGENT_ID}]", *args, flush=True)


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def chat(role, attempt):
    """One non-streaming chat completion: (output, model, tokens_in, tokens_out)."""
    body = {"model": LLM_MODEL, "messages": [
        {"role": "system", "content": f"You are a {role}."},
        {"role": "user", "content": attempt["title"] + "\n\n" + attempt.get("description", "")}]}
    request = urllib.request.Request(f"{LLM_BASE_URL}/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    usage = answer.get("usage") or {}
    return (answer["choices"][0]["message"]["content"] or "", answer.get("model", LLM_MODEL),
            usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))


def in_daemon_thread(fn, *args):
    """Like asyncio.to_thread, but an abandoned (cancelled) call never delays exit."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(method, value):
        if not future.done():
            getattr(future, method)(value)

    def run():
        try:
            outcome = ("set_result", fn(*args))
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting task
            outcome = ("set_exception", error)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is gone: nobody is waiting any more
            pass

    threading.Thread(target=run, daemon=True).start()
    return future


class Worker:
    def __init__(self):
        self.slots = asyncio.Semaphore(CONCURRENCY)
        self.jobs = set()
        self.stopping = asyncio.Event()

    async def run(self):
        self.nc = await nats.connect(NATS_URL, name=AGENT_ID, max_reconnect_attempts=-1)
        self.js = self.nc.jetstream()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        heartbeat = asyncio.create_task(self.heartbeat())
        fetchers = [asyncio.create_task(self.fetch_loop(role)) for role in ROLES]
        log(f"serving {ROLES} with {CONCURRENCY} slots")
        await self.stopping.wait()
        log("SIGTERM: no more fetching")
        await asyncio.gather(*fetchers)  # each returns after its current fetch
        if self.jobs:
            _, late = await asyncio.wait(set(self.jobs), timeout=GRACE_SECS)
            for job in late:
                job.cancel()  # the job naks its attempt
            await asyncio.gather(*late, return_exceptions=True)
        heartbeat.cancel()
        await self.nc.flush()  # the last acks and naks; drain() can hang on pull subscriptions
        await self.nc.close()
        log("stopped")

    async def heartbeat(self):
        while True:
            beat = {"agent_id": AGENT_ID, "roles": ROLES, "load": len(self.jobs), "capacity": CONCURRENCY,
                    "version": VERSION, "interval_ms": int(HEARTBEAT_SECS * 1000), "sent_at": now()}
            await self.nc.publish("vapora.agents.heartbeat", json.dumps(beat).encode())
            await asyncio.sleep(HEARTBEAT_SECS)

    async def fetch_loop(self, role):
        while True:  # the consumer is created by the backend or an agent server
            try:
                await self.js.consumer_info("VAPORA_TASKS", f"workers-{role}")
                sub = await self.js.pull_subscribe_bind(durable=f"workers-{role}", stream="VAPORA_TASKS")
                break
            except nats.errors.Error as error:
                log(f"waiting for consumer workers-{role}: {error!r}")
                if self.stopping.is_set():
                    return
                await asyncio.sleep(1)
        while not self.stopping.is_set():
            try:  # wait for one free slot (checking for SIGTERM each second), then take all free ones
                await asyncio.wait_for(self.slots.acquire(), 1)
            except asyncio.TimeoutError:
                continue
            free = 1
            while free < CONCURRENCY and not self.slots.locked():
                await self.slots.acquire()
                free += 1
            try:
                messages = await sub.fetch(free, timeout=1)
            except asyncio.TimeoutError:  # nothing there (nats.errors.TimeoutError is one too)
                messages = []
            except nats.errors.Error as error:
                log(f"fetch {role}: {error!r}")
                messages = []
                await asyncio.sleep(0.5)
            for msg in messages:
                if self.stopping.is_set() or free == 0:
                    await msg.nak()  # fetched after SIGTERM (or beyond our slots): for someone else
                    continue
                free -= 1  # the slot is the job's now, released when it ends
                job = asyncio.create_task(self.handle(role, msg))
                self.jobs.add(job)
                job.add_done_callback(self.finished)
            for _ in range(free):
                self.slots.release()

    def finished(self, job):
        self.jobs.discard(job)
        self.slots.release()

    async def report(self, attempt, kind, fields, seq=None):
        task_id, n = attempt["task_id"], attempt["attempt"]
        body = {"type": kind, "task_id": task_id, "attempt": n, "agent_id": AGENT_ID, **fields}
        # The protocol's id scheme: every id names the agent; either result
        # shares one id per agent, so a re-sent result is stored once.
        if kind in ("succeeded", "failed"):
            msg_id = f"{task_id}.{n}.result.{AGENT_ID}"
        elif kind == "progress":
            msg_id = f"{task_id}.{n}.progress.{AGENT_ID}.{seq}"
        else:
            msg_id = f"{task_id}.{n}.{kind}.{AGENT_ID}"
        for retry in range(5):  # a retried publish is deduplicated by its Nats-Msg-Id
            try:
                return await self.js.publish(f"vapora.events.{task_id}", json.dumps(body).encode(),
                                             headers={"Nats-Msg-Id": msg_id})
            except nats.errors.Error:
                if retry == 4:
                    raise
                await asyncio.sleep(0.5)

    async def handle(self, role, msg):
        try:
            attempt = json.loads(msg.data)
            task_id, n = attempt["task_id"], int(attempt["attempt"])
        except (ValueError, KeyError, TypeError):
            log(f"unreadable attempt, terminating it: {msg.data[:200]!r}")
            return await msg.term()
        cancelled = asyncio.Event()

        async def on_cancel(cancel):
            try:
                mine = int(json.loads(cancel.data)["attempt"]) == n
            except (ValueError, KeyError, TypeError):
                mine = True  # a body we cannot read counts as ours
            if mine:
                cancelled.set()

        cancel_sub = await self.nc.subscribe(f"vapora.cancel.{task_id}", cb=on_cancel)
        keepalive = asyncio.create_task(self.keep_alive(msg))
        model_call = None
        try:
            await self.report(attempt, "started", {})
            if not cancelled.is_set():  # (a `started` nobody wants is answered with a cancel)
                model_call = in_daemon_thread(chat, role, attempt)
                cancel_wait = asyncio.create_task(cancelled.wait())
                await asyncio.wait({model_call, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
                cancel_wait.cancel()
            if cancelled.is_set():
                log(f"{task_id}.{n} cancelled")
                return await msg.ack()  # the model call is abandoned in `finally`
            try:
                output, model, tokens_in, tokens_out = model_call.result()
            except Exception as error:  # noqa: BLE001 - any model failure fails the attempt
                await self.report(attempt, "failed", {"error": f"llm call failed: {error}"})
            else:
                await self.report(attempt, "progress", {"project_id": attempt["project_id"], "seq": 0,
                                                        "chunk": output}, seq=0)
                await self.report(attempt, "succeeded", {"result": {
                    "output": output, "provider": "openai", "model": model, "tokens_in": tokens_in,
                    "tokens_out": tokens_out, "cost_usd": 0.0, "attempts": 1}})
            await msg.ack()  # only now: the final report is stored
            log(f"{task_id}.{n} finished")
        except asyncio.CancelledError:  # shutdown deadline: hand the attempt back at once
            log(f"{task_id}.{n} handed back (nak)")
            await msg.nak()
            raise
        except Exception as error:  # noqa: BLE001 - could not report: let it be redelivered
            log(f"{task_id}.{n} failed to report, nak: {error!r}")
            await msg.nak()
        finally:
            if model_call is not None:
                model_call.cancel()
            keepalive.cancel()
            await cancel_sub.unsubscribe()

    async def keep_alive(self, msg):
        while True:
            await asyncio.sleep(ACK_WAIT / 3)
            await msg.in_progress()


if __name__ == "__main__":
    asyncio.run(Worker().run())
