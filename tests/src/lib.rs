//! Flotilla's end-to-end tests (in `tests/`) and benchmarks (`flotilla-bench`).
//!
//! Each benchmark is a module of [`bench`] with a `run(quick) -> Report`; the
//! binary prints the report's figures as one JSON line, last.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api_client;
pub mod bench;
pub mod devices;
pub mod fleet;
pub mod hub;
pub mod kubectl;
pub mod lincheck;
pub mod mqtt;
pub mod netns;
pub mod oci_image;
pub mod registry;
