//! One module per provider wire protocol. [`http`] holds what they share;
//! each protocol module only encodes requests and decodes answers.

pub mod anthropic;
pub mod echo;
pub mod gemini;
pub mod http;
pub mod ollama;
pub mod openai;
pub mod upstream_error;

pub use echo::EchoProvider;
pub use http::{Endpoint, HttpProvider, WirePiece, WireProtocol};
