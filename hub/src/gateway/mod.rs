//! The device gateway: what a hub replica tells devices and hears from them
//! over MQTT.
//!
//! Its pure core is [`desired`]: from the store's pods bound to a node (with
//! the ConfigMaps and Secrets they use, and the Node itself) to the one
//! [`flotilla_shared::wire::DesiredState`] message that device gets, with
//! everything resolved, so that an agent never asks the hub anything else.
//! The transport (publishing it retained, taking statuses and heartbeats in)
//! builds on it.

pub mod desired;
mod expand;
pub mod fleet;
pub mod status;
