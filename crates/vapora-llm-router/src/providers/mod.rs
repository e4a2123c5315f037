//! One module per provider wire protocol, each implementing [`crate::LlmClient`].

pub mod echo;
pub mod openai;

pub use echo::EchoProvider;
pub use openai::OpenAiProvider;
