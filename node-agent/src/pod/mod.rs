//! The pod state machine: a pure core that takes a pod's spec, its record and
//! what was observed, and returns the commands that move it on.
