//! The task queue is domain state, not an HTTP concern: it lives in
//! [`crate::queue`]. This path is kept because the design documents name it.

pub use crate::queue::*;
