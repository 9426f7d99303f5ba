//! sheetsync keeps a Google Sheet tab and a SQL table in two-way, near-real-time sync.
//!
//! This facade re-exports [`sheetsync_core`] (model, traits, merge, resolvers, engine) and, by
//! feature, the adapters. See the README for the feature list.
#![deny(missing_docs)]

pub use sheetsync_core::*;
