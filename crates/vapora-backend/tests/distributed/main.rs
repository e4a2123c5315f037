//! Distributed execution over NATS JetStream, with every part a real,
//! separate process (see `cluster`): end to end, chaos, the attempt fence
//! against hand-played workers (`fence`), health checks, logs and metrics
//! (`observability`), a worker written in Python from `docs/protocol.md`,
//! graceful shutdown, two replicas, backends on a SurrealDB server
//! (`storage_server`), and what must not wedge the system (`robustness`).

mod chaos;
mod cluster;
mod end_to_end;
mod fence;
mod nats_security;
mod observability;
mod python_worker;
mod raw_worker;
mod replicas;
mod robustness;
mod shutdown;
mod storage_server;
mod topology;
mod traces;
mod workflows;
