//! The device gateway: what a hub replica tells devices and hears from them
//! over MQTT.
//!
//! Its pure core is [`desired`]: from the store's pods bound to a node (with
//! the ConfigMaps and Secrets they use, and the Node itself) to the one
//! [`flotilla_shared::wire::DesiredState`] message that device gets, with
//! everything resolved, so that an agent never asks the hub anything else.
//! [`fleet`] knows which devices' states changed, [`status`] turns what
//! devices report into Node and pod status, and [`liveness`] keeps who is
//! alive in memory and says when a Lease is due. [`link`] is the
//! transport: a client of the broker devices connect to, on the Raft
//! leader, publishing desired states retained and handing what devices
//! report to [`ingest`], which writes it into the store.

mod broker;
pub mod desired;
pub mod endpoint;
pub mod enroll;
mod expand;
pub mod fleet;
mod ingest;
pub mod link;
pub mod liveness;
pub mod logs;
pub mod status;
