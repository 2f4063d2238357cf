//! bext's ACME client, one job: getting and keeping certificates.
//!
//! - [`AcmeConfig`] is `[platform.acme]` (directory, email, ca_root,
//!   on_demand_ask, challenge type, limits), decoded strictly.
//! - [`Manager`] holds the account and the [`Storage`] under
//!   `data_dir/acme/`, orders certificates ([`Manager::certificate`]) and
//!   keeps sets of names fresh in the background ([`Manager::run`]),
//!   handing each new [`Certificate`] to a callback; stored certificates
//!   are served again after a restart without a new order.
//! - [`Challenges`] is what the listeners answer while an order is
//!   validated: HTTP-01 tokens on the plain listener, TLS-ALPN-01
//!   certificates ([`ChallengeResolver`]) on the TLS listener.
//! - [`OnDemand`] orders certificates for names nobody configured, when an
//!   ask URL allows them, within the limits of a [`Gate`].
//! - [`renewal`] is the pure renewal policy.
//! - [`SharedStore`] is an edge fleet's store (Redis, lent by the kernel):
//!   with it, a fleet orders each certificate once ([`Manager::share`]).
//!
//! How it fits the kernel, storage layout and tests: `docs/acme.md`.

mod certificate;
mod challenges;
mod config;
mod error;
mod fleet;
mod http;
mod kind;
mod manager;
mod names;
mod ondemand;
mod order;
pub mod renewal;
mod storage;

pub use certificate::Certificate;
pub use challenges::{ACME_TLS_ALPN, ChallengeResolver, Challenges, HTTP01_PREFIX};
pub use config::{AcmeConfig, LETS_ENCRYPT};
pub use error::{AcmeError, Problem};
pub use fleet::SharedStore;
pub use kind::ChallengeKind;
pub use manager::{Manager, OnCertificate};
pub use names::acme_name;
pub use ondemand::{Gate, OnDemand};
pub use storage::Storage;
