//! Test support: real HTTP servers that speak provider wire protocols.
//!
//! Tests start them on port 0 and script each response (delay, status,
//! chunks, usage, abrupt disconnect), so provider code is exercised over
//! real sockets instead of against mocks.

mod fake_provider;

pub use fake_provider::{FakeProvider, Protocol, Script};
