//! A linearizability checker for the hub store's end-to-end tests: clients
//! record a [`History`] of key-value operations (with the times they were
//! called and returned) while the Raft leader is killed under them, and
//! [`check`] decides whether some total order of those operations, each
//! taking effect at one instant inside its interval, explains every result.
//!
//! # Which checker, and why
//!
//! This is a port of [porcupine]'s checker (`checker.go`), not a dependency:
//!
//! - stateright's `LinearizabilityTester` is built for its model checker: it
//!   serialises by trying every interleaving with no memo, allows one
//!   operation in flight per thread, has no time limit and no partitioning,
//!   and comes with a web explorer and about a dozen dependencies. A recorded
//!   history of thousands of operations with lost replies is not its job.
//! - No maintained Rust port of porcupine exists (the `porcupine` crate is an
//!   unrelated Win32 wrapper); `lincheck` runs scenarios under loom, it does
//!   not check recorded histories.
//!
//! The algorithm is Wing & Gong's search with Lowe's memo ("Testing for
//! Linearizability", 2017), as porcupine implements it: call and return
//! entries in one doubly linked list ordered by time (calls before returns
//! at equal times); linearising an operation lifts its two entries out of the
//! list; a return entry reached before its call was linearised means
//! backtracking; a cache of (linearised set as a bitset, model state) prunes
//! states already explored. Histories are split by key first (P-compositionality,
//! Horn & Kroening 2015): a key-value store is linearizable if and only if each
//! key's sub-history is, and the keys are checked on parallel threads.
//!
//! # Unknown outcomes
//!
//! An operation whose client timed out or lost its connection (during a
//! leader kill) may or may not have taken effect. As in porcupine, it is a
//! call whose return is at +infinity: it may be linearised anywhere after its
//! call, including after everything else (where its effect is unobservable).
//! Mark it with [`History::unknown`]; an operation left without any outcome
//! when the history is checked is treated the same way. Reads with an
//! unknown outcome observe nothing and are left out of the search.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use flotilla_tests::lincheck::{check, CheckResult, History, Op, Output};
//!
//! let mut h = History::new();
//! // Client 1 writes "a"; client 2 reads "a" while the write is in flight.
//! let put = h.call(1, Op::put("k", "a"), 0);
//! let get = h.call(2, Op::get("k"), 10);
//! h.ret(get, Output::Read(Some("a")), 20).unwrap();
//! h.ret(put, Output::Ok, 30).unwrap();
//! assert!(matches!(check(&h, Duration::from_secs(5)), CheckResult::Ok));
//!
//! // A read that starts after the write returned must not see the old value.
//! let late = h.call(3, Op::get("k"), 40);
//! h.ret(late, Output::Read(None), 50).unwrap();
//! match check(&h, Duration::from_secs(5)) {
//!     CheckResult::Illegal { key, .. } => assert_eq!(key, "k"),
//!     other => panic!("expected a violation, got {other}"),
//! }
//! ```
//!
//! [porcupine]: https://github.com/anishathalye/porcupine

mod checker;
mod history;

pub use checker::{CheckResult, check};
pub use history::{History, HistoryError, Op, OpId, Operation, Outcome, Output, Recorder};
