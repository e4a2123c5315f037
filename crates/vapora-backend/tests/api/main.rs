//! Integration tests: the real application on a free port, against an
//! embedded SurrealDB and a real local server speaking the OpenAI protocol.
//! One test binary (modules below) so the heavy link happens once.

mod access;
mod bad_input;
mod bounds;
mod budgets;
mod concurrency;
mod concurrency_keys;
mod contract;
mod dependencies;
mod event_resume;
mod idempotency;
mod lifecycle;
mod limits;
mod persistence;
mod request_ids;
mod retries;
mod schedules;
mod shared_state;
mod support;
mod timeouts;
mod websocket;
mod workflows;
