//! Distributed execution over NATS JetStream, with every part a real,
//! separate process (see `cluster`): end to end, chaos, a worker written in
//! Python from `docs/protocol.md`, graceful shutdown, and two replicas.

mod chaos;
mod cluster;
mod end_to_end;
mod python_worker;
mod replicas;
mod shutdown;
