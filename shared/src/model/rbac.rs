//! Filled in by the object-model work.
