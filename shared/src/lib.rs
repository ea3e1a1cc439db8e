//! Flotilla's shared types: the Kubernetes-shaped object model, its
//! validation, label selectors, resource quantities and the hub ↔ agent wire
//! protocol. Types only: no runtime, no sockets, no files.
//!
//! Decode a manifest strictly, as the API server will, and validate it:
//!
//! ```
//! use flotilla_shared::manifest::{decode_yaml_documents, FieldValidation};
//! use flotilla_shared::validation::validate;
//!
//! let yaml = "
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata: {name: web}
//! spec:
//!   selector: {matchLabels: {app: web}}
//!   template:
//!     metadata: {labels: {app: web}}
//!     spec:
//!       containers: [{name: web}]
//! ";
//! let objects = decode_yaml_documents(yaml, FieldValidation::Strict).unwrap();
//! let errors = validate(&objects[0].object).unwrap_err();
//! assert_eq!(errors.to_string(), "spec.template.spec.containers[0].image: Required value");
//! ```
//!
//! Select by labels and add quantities exactly:
//!
//! ```
//! use flotilla_shared::quantity::Quantity;
//! use flotilla_shared::selector::Selector;
//!
//! let selector: Selector = "app=web,tier in (edge,core),!canary".parse().unwrap();
//! let labels = [("app", "web"), ("tier", "edge")].map(|(k, v)| (k.to_string(), v.to_string())).into();
//! assert!(selector.matches(&labels));
//!
//! let cpu = Quantity("100m".into()).parse().unwrap();
//! let total = (0..10).try_fold(cpu.checked_sub(cpu).unwrap(), |sum, _| sum.checked_add(cpu)).unwrap();
//! assert_eq!(total, Quantity("1".into()).parse().unwrap());
//! ```
//!
//! The modules: [`model`] (the kinds), [`manifest`] (decoding with
//! Kubernetes' field validation), [`validation`], [`selector`], [`quantity`],
//! [`wire`] (messages, topics, the revision rule).
#![forbid(unsafe_code)]

pub mod enroll;
pub mod manifest;
pub mod model;
pub mod quantity;
pub mod selector;
pub mod validation;
pub mod wire;
