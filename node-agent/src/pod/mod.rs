//! The pod state machine: a pure core that takes a pod's spec, its record and
//! what was observed, and returns the commands that move it on.

pub mod backoff;
pub mod machine;
pub mod probes;
pub mod record;
pub mod status;
#[cfg(test)]
mod tests;

pub use machine::{Command, Event, PodState, Step};
pub use probes::ProbeKind;
pub use record::PodRecord;
pub use status::PodStatus;
