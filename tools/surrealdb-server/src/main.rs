//! `surreal`: the SurrealDB server, as the official binary runs it
//! (`surreal start --user … --pass … surrealkv:PATH`), built from the
//! `surrealdb-server` crate because no container runtime is available here.

// SurrealDB's query types nest deeply; the crate needs this much.
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
