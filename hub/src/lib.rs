//! `flotilla-hub`: Flotilla's control plane.
//!
//! One binary per replica (1, 3 or 5): a Raft store over SQLite, a
//! Kubernetes-compatible API server, the scheduler and controllers (on the Raft
//! leader), and the device gateway that speaks MQTT to the fleet. The components
//! arrive one issue at a time; today the hub offers the offline manifest checks
//! that `kubectl apply` meets at admission ([`check`]), the Raft store
//! ([`store`], [`replica`]), and the Kubernetes API server on every replica
//! ([`api`]), started together by [`server::run`].
#![forbid(unsafe_code)]

pub mod api;
pub mod check;
pub mod controllers;
pub mod gateway;
pub mod listener;
pub mod pki;
pub mod replica;
pub mod scheduler;
pub mod server;
pub mod store;
