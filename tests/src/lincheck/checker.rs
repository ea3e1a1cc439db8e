//! The decision procedure: porcupine's `checkSingle` on each key's
//! sub-history, the keys spread over a few threads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::history::{History, Op, Operation, Output};

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult<V> {
    /// Some total order of the operations, each at an instant inside its
    /// interval, explains every output.
    Ok,
    /// No order explains the operations on `key`. `linearized` is the
    /// longest order of its operations the search found that explains their
    /// outputs, after which the key held `state`; none of the operations in
    /// `stuck`, which are the ones that could come next in real time,
    /// explains its own output from there.
    Illegal {
        key: String,
        linearized: Vec<Operation<V>>,
        state: Option<V>,
        stuck: Vec<Operation<V>>,
    },
    /// The time limit passed before every key was decided and none was
    /// found illegal: the history may or may not be linearizable.
    Timeout,
}

impl<V: Debug> fmt::Display for CheckResult<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 10;
        match self {
            CheckResult::Ok => f.write_str("linearizable"),
            CheckResult::Timeout => {
                f.write_str("the check ran out of time: the history may or may not be linearizable")
            }
            CheckResult::Illegal {
                key,
                linearized,
                state,
                stuck,
            } => {
                writeln!(
                    f,
                    "key {key:?} is not linearizable: after {} operations in this order it holds {state:?}",
                    linearized.len()
                )?;
                let hidden = linearized.len().saturating_sub(SHOWN);
                if hidden > 0 {
                    writeln!(f, "  ... {hidden} earlier operations")?;
                }
                for operation in &linearized[hidden..] {
                    writeln!(f, "  {operation}")?;
                }
                write!(
                    f,
                    "and none of the operations that could come next explains its output:"
                )?;
                for operation in stuck {
                    write!(f, "\n  {operation}")?;
                }
                Ok(())
            }
        }
    }
}

/// Decides whether `history` is linearizable with respect to a key-value
/// store (every key initially absent), giving up after about `timeout`.
///
/// Keys are checked independently on up to as many threads as the machine
/// has cores. If several keys are illegal, the first one found is reported
/// (the one sorting first among those found before the others stopped).
pub fn check<V>(history: &History<V>, timeout: Duration) -> CheckResult<V>
where
    V: Clone + Eq + Hash + Debug + Sync,
{
    let deadline = Instant::now().checked_add(timeout);
    let partitions = partition(history);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let outcomes = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(partitions.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= partitions.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = search(&partitions[index], deadline, &stop);
                    if matches!(outcome, Search::Illegal { .. }) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    outcomes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((index, outcome));
                }
            });
        }
    });
    let mut outcomes = outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    outcomes.sort_by_key(|(index, _)| *index);
    let illegal = outcomes.iter().find_map(|(index, outcome)| match outcome {
        Search::Illegal { longest, state } => Some((*index, longest, *state)),
        _ => None,
    });
    if let Some((index, longest, state)) = illegal {
        return explain(&partitions[index], longest, state);
    }
    if outcomes.iter().any(|(_, o)| matches!(o, Search::Timeout)) {
        return CheckResult::Timeout;
    }
    CheckResult::Ok
}

/// The operations on one key, with the store's behaviour reduced to
/// integers: value codes (0 for "absent") and one [`Kernel`] per operation.
#[derive(Debug)]
struct Partition<'h, V> {
    key: &'h str,
    ops: Vec<&'h Operation<V>>,
    kernels: Vec<Kernel>,
    /// The value behind code `c` is `values[c - 1]`.
    values: Vec<&'h V>,
}

/// What one operation does to the key's state (a value code), or `None`
/// when its recorded output cannot have come from that state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// A put or delete, acknowledged or not.
    Write(u32),
    /// A get that saw this value.
    Read(u32),
    /// A compare-and-set that wrote.
    Swapped { expected: u32, new: u32 },
    /// A compare-and-set that found another value.
    Refused { expected: u32 },
    /// A compare-and-set whose outcome is unknown: it writes if, where it is
    /// linearised, the key holds `expected`.
    MaybeSwapped { expected: u32, new: u32 },
}

impl Kernel {
    fn step(self, state: u32) -> Option<u32> {
        match self {
            Kernel::Write(value) => Some(value),
            Kernel::Read(value) => (state == value).then_some(state),
            Kernel::Swapped { expected, new } => (state == expected).then_some(new),
            Kernel::Refused { expected } => (state != expected).then_some(state),
            Kernel::MaybeSwapped { expected, new } => {
                Some(if state == expected { new } else { state })
            }
        }
    }
}

fn partition<V: Eq + Hash>(history: &History<V>) -> Vec<Partition<'_, V>> {
    let mut by_key: BTreeMap<&str, Vec<&Operation<V>>> = BTreeMap::new();
    for operation in history.operations() {
        let observes_nothing =
            matches!(operation.op, Op::Get { .. }) && operation.returned().is_none();
        if !observes_nothing {
            by_key
                .entry(operation.op.key())
                .or_default()
                .push(operation);
        }
    }
    by_key
        .into_iter()
        .map(|(key, ops)| {
            let mut values = Interner::default();
            let kernels = ops.iter().map(|op| kernel(op, &mut values)).collect();
            Partition {
                key,
                ops,
                kernels,
                values: values.values,
            }
        })
        .collect()
}

/// Numbers the values of one key from 1, in order of appearance.
#[derive(Debug)]
struct Interner<'h, V> {
    codes: HashMap<&'h V, u32>,
    values: Vec<&'h V>,
}

impl<V> Default for Interner<'_, V> {
    fn default() -> Self {
        Self {
            codes: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<'h, V: Eq + Hash> Interner<'h, V> {
    fn code(&mut self, value: Option<&'h V>) -> u32 {
        let Some(value) = value else { return 0 };
        let values = &mut self.values;
        *self.codes.entry(value).or_insert_with(|| {
            values.push(value);
            u32::try_from(values.len()).expect("fewer than 2^32 values per key")
        })
    }
}

fn kernel<'h, V: Eq + Hash>(operation: &'h Operation<V>, values: &mut Interner<'h, V>) -> Kernel {
    let output = operation.returned().map(|(_, output)| output);
    match (&operation.op, output) {
        (Op::Put { value, .. }, _) => Kernel::Write(values.code(Some(value))),
        (Op::Delete { .. }, _) => Kernel::Write(0),
        (Op::Get { .. }, Some(Output::Read(seen))) => Kernel::Read(values.code(seen.as_ref())),
        // Unreachable: unknown gets are left out of partitions and
        // `History::ret` only accepts reads for gets.
        (Op::Get { .. }, _) => Kernel::Read(0),
        (Op::CompareAndSet { expected, new, .. }, Some(Output::Swapped(true))) => Kernel::Swapped {
            expected: values.code(expected.as_ref()),
            new: values.code(Some(new)),
        },
        (Op::CompareAndSet { expected, .. }, Some(Output::Swapped(false))) => Kernel::Refused {
            expected: values.code(expected.as_ref()),
        },
        (Op::CompareAndSet { expected, new, .. }, _) => Kernel::MaybeSwapped {
            expected: values.code(expected.as_ref()),
            new: values.code(Some(new)),
        },
    }
}

/// How the search of one key ended.
#[derive(Debug)]
enum Search {
    Linearizable,
    /// `longest` (indices into the partition's operations) is the longest
    /// prefix found, leaving the key in `state`.
    Illegal {
        longest: Vec<usize>,
        state: u32,
    },
    Timeout,
    /// Another key was found illegal first.
    Stopped,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// One call or return entry of the time-ordered list.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Index of the operation in the partition.
    op: usize,
    /// On a call entry, the node of its return entry; `NIL` on a return.
    ret: usize,
    prev: usize,
    next: usize,
}

/// The call and return entries of `partition` in time order (calls before
/// returns at equal times, unknown returns at +infinity), after a sentinel
/// head at index [`HEAD`].
fn linked_entries<V>(partition: &Partition<'_, V>) -> Vec<Node> {
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * partition.ops.len());
    for (index, operation) in partition.ops.iter().enumerate() {
        let ret_ns = operation.returned().map_or(u64::MAX, |(at_ns, _)| at_ns);
        entries.push((operation.call_ns, false, index));
        entries.push((ret_ns, true, index));
    }
    entries.sort_unstable();
    let mut ret_node = vec![NIL; partition.ops.len()];
    for (position, &(_, is_return, index)) in entries.iter().enumerate() {
        if is_return {
            ret_node[index] = position + 1;
        }
    }
    let last = entries.len();
    let mut nodes = Vec::with_capacity(last + 1);
    nodes.push(Node {
        op: NIL,
        ret: NIL,
        prev: NIL,
        next: if last == 0 { NIL } else { 1 },
    });
    for (position, &(_, is_return, index)) in entries.iter().enumerate() {
        let node = position + 1;
        nodes.push(Node {
            op: index,
            ret: if is_return { NIL } else { ret_node[index] },
            prev: node - 1,
            next: if node == last { NIL } else { node + 1 },
        });
    }
    nodes
}

/// Takes call entry `call` and its return entry out of the list.
fn lift(nodes: &mut [Node], call: usize) {
    let Node {
        prev, next, ret, ..
    } = nodes[call];
    nodes[prev].next = next;
    nodes[next].prev = prev;
    let Node { prev, next, .. } = nodes[ret];
    nodes[prev].next = next;
    if next != NIL {
        nodes[next].prev = prev;
    }
}

/// Puts back what [`lift`] took out, in the reverse order.
fn unlift(nodes: &mut [Node], call: usize) {
    let ret = nodes[call].ret;
    let Node { prev, next, .. } = nodes[ret];
    nodes[prev].next = ret;
    if next != NIL {
        nodes[next].prev = ret;
    }
    let Node { prev, next, .. } = nodes[call];
    nodes[prev].next = call;
    nodes[next].prev = call;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bitset(Box<[u64]>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Self(vec![0; bits.div_ceil(64)].into_boxed_slice())
    }

    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.0[bit / 64] &= !(1 << (bit % 64));
    }
}

/// Porcupine's `checkSingle`: a depth-first search for a linearisation,
/// trying at each point the call entries before the first return entry
/// still in the list, with a memo of (linearised set, state) pairs.
fn search<V>(partition: &Partition<'_, V>, deadline: Option<Instant>, stop: &AtomicBool) -> Search {
    const CHECK_EVERY: u64 = 1024;
    let mut nodes = linked_entries(partition);
    let mut linearized = Bitset::new(partition.ops.len());
    let mut cache: HashSet<(Bitset, u32)> = HashSet::new();
    // The call entries linearised so far, each with the state before it.
    let mut calls: Vec<(usize, u32)> = Vec::new();
    let mut longest = (Vec::new(), 0);
    let mut state = 0;
    let mut entry = nodes[HEAD].next;
    let mut steps: u64 = 0;
    while nodes[HEAD].next != NIL {
        if steps.is_multiple_of(CHECK_EVERY) {
            if stop.load(Ordering::Relaxed) {
                return Search::Stopped;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Search::Timeout;
            }
        }
        steps += 1;
        let node = nodes[entry];
        if node.ret != NIL {
            let stepped = partition.kernels[node.op].step(state).filter(|&new_state| {
                let mut next = linearized.clone();
                next.set(node.op);
                cache.insert((next, new_state))
            });
            match stepped {
                Some(new_state) => {
                    calls.push((entry, state));
                    state = new_state;
                    linearized.set(node.op);
                    lift(&mut nodes, entry);
                    entry = nodes[HEAD].next;
                }
                None => entry = node.next,
            }
        } else {
            // A return entry: every operation that must come before it has
            // been tried from here; undo the last choice.
            if calls.len() > longest.0.len() {
                longest = (
                    calls.iter().map(|&(call, _)| nodes[call].op).collect(),
                    state,
                );
            }
            let Some((call, before)) = calls.pop() else {
                return Search::Illegal {
                    longest: longest.0,
                    state: longest.1,
                };
            };
            state = before;
            linearized.clear(nodes[call].op);
            unlift(&mut nodes, call);
            entry = nodes[call].next;
        }
    }
    Search::Linearizable
}

fn explain<V: Clone>(
    partition: &Partition<'_, V>,
    longest: &[usize],
    state: u32,
) -> CheckResult<V> {
    let mut done = vec![false; partition.ops.len()];
    for &index in longest {
        done[index] = true;
    }
    let remaining = || (0..partition.ops.len()).filter(|&index| !done[index]);
    let first_return = remaining()
        .map(|index| {
            partition.ops[index]
                .returned()
                .map_or(u64::MAX, |(at_ns, _)| at_ns)
        })
        .min()
        .unwrap_or(u64::MAX);
    let mut stuck: Vec<Operation<V>> = remaining()
        .map(|index| partition.ops[index])
        .filter(|operation| operation.call_ns <= first_return)
        .cloned()
        .collect();
    stuck.sort_by_key(|operation| (operation.call_ns, operation.id));
    CheckResult::Illegal {
        key: partition.key.to_owned(),
        linearized: longest
            .iter()
            .map(|&index| partition.ops[index].clone())
            .collect(),
        state: state
            .checked_sub(1)
            .map(|code| partition.values[code as usize].clone()),
        stuck,
    }
}

#[cfg(test)]
mod tests;
