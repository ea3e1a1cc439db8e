//! What clients record: operations on a key-value store, each with the time
//! it was called, and its output and return time when it has one.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// An operation on one key of the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op<V> {
    /// Reads the key: outputs [`Output::Read`].
    Get { key: String },
    /// Writes the key: outputs [`Output::Ok`].
    Put { key: String, value: V },
    /// Removes the key: outputs [`Output::Ok`].
    Delete { key: String },
    /// Writes `new` if the key holds `expected` (`None`: if it is absent):
    /// outputs [`Output::Swapped`].
    CompareAndSet {
        key: String,
        expected: Option<V>,
        new: V,
    },
}

impl<V> Op<V> {
    pub fn get(key: impl Into<String>) -> Self {
        Op::Get { key: key.into() }
    }

    pub fn put(key: impl Into<String>, value: V) -> Self {
        Op::Put {
            key: key.into(),
            value,
        }
    }

    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    pub fn compare_and_set(key: impl Into<String>, expected: Option<V>, new: V) -> Self {
        Op::CompareAndSet {
            key: key.into(),
            expected,
            new,
        }
    }

    /// The key the operation acts on: the checker partitions on it.
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Delete { key } => key,
            Op::CompareAndSet { key, .. } => key,
        }
    }

    fn accepts<W>(&self, output: &Output<W>) -> bool {
        matches!(
            (self, output),
            (Op::Get { .. }, Output::Read(_))
                | (Op::Put { .. } | Op::Delete { .. }, Output::Ok)
                | (Op::CompareAndSet { .. }, Output::Swapped(_))
        )
    }
}

impl<V: fmt::Debug> fmt::Display for Op<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get { key } => write!(f, "get({key:?})"),
            Op::Put { key, value } => write!(f, "put({key:?}, {value:?})"),
            Op::Delete { key } => write!(f, "delete({key:?})"),
            Op::CompareAndSet { key, expected, new } => {
                write!(f, "compare_and_set({key:?}, {expected:?}, {new:?})")
            }
        }
    }
}

/// What a completed operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output<V> {
    /// A put or a delete was acknowledged.
    Ok,
    /// A get saw this value (`None`: the key was absent).
    Read(Option<V>),
    /// A compare-and-set wrote (`true`) or found another value (`false`).
    Swapped(bool),
}

impl<V: fmt::Debug> fmt::Display for Output<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Ok => f.write_str("ok"),
            Output::Read(value) => write!(f, "{value:?}"),
            Output::Swapped(swapped) => write!(f, "swapped={swapped}"),
        }
    }
}

/// Names one operation of a [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub usize);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<V> {
    /// No outcome recorded yet: checked as [`Outcome::Unknown`].
    Pending,
    /// The client saw `output` at `at_ns`.
    Returned { at_ns: u64, output: Output<V> },
    /// The client gave up (timeout, dropped connection): the operation may
    /// or may not have taken effect, at any time after its call.
    Unknown,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<V> {
    pub id: OpId,
    /// Which client issued it (for explanations only).
    pub client: u64,
    pub op: Op<V>,
    /// When the client sent it: monotonic nanoseconds, no later than the
    /// moment the request could first have been seen.
    pub call_ns: u64,
    pub outcome: Outcome<V>,
}

impl<V> Operation<V> {
    /// The return time and output, if the client saw one.
    pub fn returned(&self) -> Option<(u64, &Output<V>)> {
        match &self.outcome {
            Outcome::Returned { at_ns, output } => Some((*at_ns, output)),
            Outcome::Pending | Outcome::Unknown => None,
        }
    }
}

impl<V: fmt::Debug> fmt::Display for Operation<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            id,
            client,
            op,
            call_ns,
            ..
        } = self;
        match self.returned() {
            Some((at_ns, output)) => {
                write!(
                    f,
                    "{id} client {client}: {op} -> {output} [{call_ns}, {at_ns}] ns"
                )
            }
            None => write!(
                f,
                "{id} client {client}: {op} -> unknown [{call_ns}, ...] ns"
            ),
        }
    }
}

/// A recording mistake: the history is not one a client could have seen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    #[error("no operation {id} in the history")]
    NoSuchOperation { id: OpId },
    #[error("operation {id} already has an outcome")]
    AlreadySettled { id: OpId },
    #[error("operation {id} returns at {ret_ns} ns, before its call at {call_ns} ns")]
    ReturnBeforeCall { id: OpId, call_ns: u64, ret_ns: u64 },
    #[error("operation {id} ({op}) cannot output {output}")]
    WrongOutput {
        id: OpId,
        op: String,
        output: String,
    },
}

/// A concurrent history of key-value operations, built call by call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<V> {
    ops: Vec<Operation<V>>,
}

impl<V> Default for History<V> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<V> History<V> {
    pub fn operations(&self) -> &[Operation<V>] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl<V: fmt::Debug> History<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` sent `op` at `at_ns`.
    pub fn call(&mut self, client: u64, op: Op<V>, at_ns: u64) -> OpId {
        let id = OpId(self.ops.len());
        self.ops.push(Operation {
            id,
            client,
            op,
            call_ns: at_ns,
            outcome: Outcome::Pending,
        });
        id
    }

    /// Records that operation `id` returned `output` at `at_ns`.
    pub fn ret(&mut self, id: OpId, output: Output<V>, at_ns: u64) -> Result<(), HistoryError> {
        let operation = self.pending(id)?;
        if !operation.op.accepts(&output) {
            return Err(HistoryError::WrongOutput {
                id,
                op: operation.op.to_string(),
                output: output.to_string(),
            });
        }
        if at_ns < operation.call_ns {
            return Err(HistoryError::ReturnBeforeCall {
                id,
                call_ns: operation.call_ns,
                ret_ns: at_ns,
            });
        }
        operation.outcome = Outcome::Returned { at_ns, output };
        Ok(())
    }

    /// Records that the client of operation `id` gave up on it.
    pub fn unknown(&mut self, id: OpId) -> Result<(), HistoryError> {
        self.pending(id)?.outcome = Outcome::Unknown;
        Ok(())
    }

    fn pending(&mut self, id: OpId) -> Result<&mut Operation<V>, HistoryError> {
        let operation = self
            .ops
            .get_mut(id.0)
            .ok_or(HistoryError::NoSuchOperation { id })?;
        match operation.outcome {
            Outcome::Pending => Ok(operation),
            Outcome::Returned { .. } | Outcome::Unknown => Err(HistoryError::AlreadySettled { id }),
        }
    }
}

/// A [`History`] shared by concurrent clients, time-stamped with a monotonic
/// clock started when the recorder was made.
///
/// Call [`Recorder::call`] just before sending a request and
/// [`Recorder::ret`] just after its reply arrives: the recorded interval then
/// contains the moment the store acted, which is all the checker assumes.
#[derive(Clone, Debug)]
pub struct Recorder<V> {
    start: Instant,
    history: Arc<Mutex<History<V>>>,
}

impl<V> Default for Recorder<V> {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            history: Arc::new(Mutex::new(History::default())),
        }
    }
}

impl<V: fmt::Debug + Clone> Recorder<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn call(&self, client: u64, op: Op<V>) -> OpId {
        let at = self.now_ns();
        self.lock().call(client, op, at)
    }

    pub fn ret(&self, id: OpId, output: Output<V>) -> Result<(), HistoryError> {
        let at = self.now_ns();
        self.lock().ret(id, output, at)
    }

    pub fn unknown(&self, id: OpId) -> Result<(), HistoryError> {
        self.lock().unknown(id)
    }

    /// A copy of what has been recorded so far.
    pub fn history(&self) -> History<V> {
        self.lock().clone()
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History<V>> {
        // A client that panicked mid-record leaves a history that is still
        // well formed: every method updates it in one step.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_is_recorded_once_with_a_matching_output_after_its_call() {
        let mut h = History::new();
        let put = h.call(1, Op::put("k", 1), 10);
        assert_eq!(
            h.ret(put, Output::Read(Some(1)), 20),
            Err(HistoryError::WrongOutput {
                id: put,
                op: "put(\"k\", 1)".into(),
                output: "Some(1)".into()
            })
        );
        assert_eq!(
            h.ret(put, Output::Ok, 5),
            Err(HistoryError::ReturnBeforeCall {
                id: put,
                call_ns: 10,
                ret_ns: 5
            })
        );
        assert_eq!(h.ret(put, Output::Ok, 20), Ok(()));
        assert_eq!(
            h.ret(put, Output::Ok, 30),
            Err(HistoryError::AlreadySettled { id: put })
        );
        assert_eq!(
            h.unknown(put),
            Err(HistoryError::AlreadySettled { id: put })
        );
        assert_eq!(
            h.unknown(OpId(7)),
            Err(HistoryError::NoSuchOperation { id: OpId(7) })
        );
        assert_eq!(h.operations()[0].returned(), Some((20, &Output::Ok)));
    }

    #[test]
    fn the_recorder_stamps_returns_no_earlier_than_calls() {
        let recorder = Recorder::new();
        let worker = recorder.clone();
        let id = std::thread::spawn(move || {
            let id = worker.call(2, Op::compare_and_set("k", None, "v"));
            worker.ret(id, Output::Swapped(true)).unwrap();
            id
        })
        .join()
        .unwrap();
        let lost = recorder.call(3, Op::delete("k"));
        recorder.unknown(lost).unwrap();
        let h = recorder.history();
        let (ret_ns, _) = h.operations()[id.0].returned().unwrap();
        assert!(ret_ns >= h.operations()[id.0].call_ns);
        assert_eq!(h.operations()[lost.0].outcome, Outcome::Unknown);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn operations_display_with_their_interval_and_output() {
        let mut h = History::new();
        let get = h.call(4, Op::<&str>::get("k"), 1);
        h.ret(get, Output::Read(None), 2).unwrap();
        let put = h.call(5, Op::put("k", "v"), 3);
        h.unknown(put).unwrap();
        assert_eq!(
            h.operations()[0].to_string(),
            "#0 client 4: get(\"k\") -> None [1, 2] ns"
        );
        assert_eq!(
            h.operations()[1].to_string(),
            "#1 client 5: put(\"k\", \"v\") -> unknown [3, ...] ns"
        );
    }
}
