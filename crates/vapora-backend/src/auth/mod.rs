//! Access control: API keys, who is calling, and what they may see.
//!
//! Every `/api/v1` route, the WebSocket included, needs a key
//! ([`middleware::require_key`]); `/health` and `/ready` never do, and
//! `/metrics` only when `VAPORA_METRICS_REQUIRE_KEY` is set. A key has a
//! role: `admin` may do everything, keys included; `member` reads and
//! changes the projects listed on its key (and those it creates); `viewer`
//! only reads its projects. Anything outside a key's projects answers 404,
//! as if it did not exist, so ids cannot be probed.
//!
//! - [`key_material`]: the `vk_…` format, generation, hashing.
//! - [`keys`]: stored keys, issuing, checking (with a short cache), revoking.
//! - [`caller`]: the checked key a handler receives, and its scope checks.
//! - [`middleware`]: finding the key in a request; the 401 answer.
//! - [`bootstrap`]: the first admin key of a new deployment.

pub mod bootstrap;
pub mod caller;
pub mod key_material;
pub mod keys;
pub mod middleware;

pub use caller::Caller;
pub use key_material::{KeyHasher, KeyId, PresentedKey};
pub use keys::{ApiKey, KeyInfo, KeyRole, Keys, NewKey};
