use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::lincheck::history::{OpId, Outcome};

const LIMIT: Duration = Duration::from_secs(30);

/// One operation of a test history, on its own client.
enum Row {
    /// Called at `.0`, returned `.3` at `.1`.
    Done(u64, u64, Op<&'static str>, Output<&'static str>),
    /// Called at `.0`, outcome unknown.
    Lost(u64, Op<&'static str>),
}
use Row::{Done, Lost};

fn put(key: &str, value: &'static str) -> Op<&'static str> {
    Op::put(key, value)
}
fn get(key: &str) -> Op<&'static str> {
    Op::get(key)
}
fn cas(key: &str, expected: Option<&'static str>, new: &'static str) -> Op<&'static str> {
    Op::compare_and_set(key, expected, new)
}
fn read(value: Option<&'static str>) -> Output<&'static str> {
    Output::Read(value)
}
const OK: Output<&str> = Output::Ok;

fn build(rows: Vec<Row>) -> History<&'static str> {
    let mut h = History::new();
    for (client, row) in rows.into_iter().enumerate() {
        let client = client as u64;
        match row {
            Done(call, ret, op, output) => {
                let id = h.call(client, op, call);
                h.ret(id, output, ret).unwrap();
            }
            Lost(call, op) => {
                let id = h.call(client, op, call);
                h.unknown(id).unwrap();
            }
        }
    }
    h
}

fn verdict(h: &History<&'static str>) -> Result<(), String> {
    match check(h, LIMIT) {
        CheckResult::Ok => Ok(()),
        CheckResult::Illegal { key, .. } => Err(key),
        CheckResult::Timeout => panic!("a small history timed out"),
    }
}

#[test]
fn linearizable_histories_are_accepted() {
    let cases: Vec<(&str, Vec<Row>)> = vec![
        ("empty history", vec![]),
        (
            "a read concurrent with a write may see the new value",
            vec![
                Done(0, 100, put("k", "a"), OK),
                Done(10, 20, get("k"), read(Some("a"))),
            ],
        ),
        (
            "a read concurrent with a write may see the old value",
            vec![
                Done(0, 100, put("k", "a"), OK),
                Done(10, 20, get("k"), read(None)),
            ],
        ),
        (
            "a read may return after a later write began and still see the earlier one",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 100, get("k"), read(Some("a"))),
                Done(30, 40, put("k", "b"), OK),
            ],
        ),
        (
            "overlapping writes may take effect in the order they were called",
            vec![
                Done(0, 50, put("k", "a"), OK),
                Done(10, 60, put("k", "b"), OK),
                Done(70, 80, get("k"), read(Some("b"))),
            ],
        ),
        (
            "overlapping writes may take effect in the opposite order",
            vec![
                Done(0, 50, put("k", "a"), OK),
                Done(10, 60, put("k", "b"), OK),
                Done(70, 80, get("k"), read(Some("a"))),
            ],
        ),
        (
            "sequential reads during two concurrent writes see one order",
            vec![
                Done(0, 100, put("k", "a"), OK),
                Done(0, 100, put("k", "b"), OK),
                Done(10, 20, get("k"), read(Some("b"))),
                Done(30, 40, get("k"), read(Some("a"))),
                Done(50, 60, get("k"), read(Some("a"))),
            ],
        ),
        (
            "equal times count as concurrent",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(10, 20, get("k"), read(None)),
            ],
        ),
        (
            "an unknown write may appear later",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Lost(20, put("k", "b")),
                Done(30, 40, get("k"), read(Some("a"))),
                Done(50, 60, get("k"), read(Some("b"))),
                Done(70, 80, get("k"), read(Some("b"))),
            ],
        ),
        (
            "an unknown write may never appear",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Lost(20, put("k", "b")),
                Done(100, 110, get("k"), read(Some("a"))),
                Done(200, 210, get("k"), read(Some("a"))),
            ],
        ),
        (
            "an unknown write may take effect before a later acknowledged one",
            vec![
                Lost(0, put("k", "a")),
                Done(20, 30, get("k"), read(Some("a"))),
                Done(40, 50, put("k", "b"), OK),
                Done(60, 70, get("k"), read(Some("b"))),
            ],
        ),
        (
            "a read with an unknown outcome constrains nothing",
            vec![Done(0, 10, put("k", "a"), OK), Lost(20, get("k"))],
        ),
        (
            "of two racing compare-and-sets one wins",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, cas("k", Some("a"), "b"), Output::Swapped(true)),
                Done(20, 30, cas("k", Some("a"), "c"), Output::Swapped(false)),
                Done(40, 50, get("k"), read(Some("b"))),
            ],
        ),
        (
            "a compare-and-set on an absent key creates it once",
            vec![
                Done(0, 10, cas("k", None, "a"), Output::Swapped(true)),
                Done(5, 15, cas("k", None, "b"), Output::Swapped(false)),
                Done(20, 30, get("k"), read(Some("a"))),
            ],
        ),
        (
            "an unknown compare-and-set may have written",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Lost(20, cas("k", Some("a"), "b")),
                Done(30, 40, get("k"), read(Some("b"))),
            ],
        ),
        (
            "a delete makes the key absent",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, Op::delete("k"), OK),
                Done(40, 50, get("k"), read(None)),
            ],
        ),
        (
            "keys are independent",
            vec![
                Done(0, 10, put("x", "a"), OK),
                Done(20, 30, get("y"), read(None)),
                Done(40, 50, put("y", "b"), OK),
                Done(60, 70, get("x"), read(Some("a"))),
            ],
        ),
    ];
    for (name, rows) in cases {
        assert_eq!(verdict(&build(rows)), Ok(()), "{name}");
    }
}

#[test]
fn non_linearizable_histories_are_rejected_on_their_key() {
    let cases: Vec<(&str, Vec<Row>)> = vec![
        (
            "stale read after a completed write",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, get("k"), read(None)),
            ],
        ),
        (
            "stale read of the previous value",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, put("k", "b"), OK),
                Done(40, 50, get("k"), read(Some("a"))),
            ],
        ),
        (
            "two clients see two concurrent writes in opposite orders",
            vec![
                Done(0, 100, put("k", "a"), OK),
                Done(0, 100, put("k", "b"), OK),
                Done(10, 20, get("k"), read(Some("a"))),
                Done(30, 40, get("k"), read(Some("b"))),
                Done(10, 20, get("k"), read(Some("b"))),
                Done(30, 40, get("k"), read(Some("a"))),
            ],
        ),
        (
            "an acknowledged write is lost",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, get("k"), read(Some("a"))),
                Done(40, 50, get("k"), read(None)),
            ],
        ),
        (
            "a read sees a value nobody wrote",
            vec![Done(0, 10, get("k"), read(Some("z")))],
        ),
        (
            "a read sees a write that had not been called yet",
            vec![
                Done(0, 10, get("k"), read(Some("a"))),
                Done(20, 30, put("k", "a"), OK),
            ],
        ),
        (
            "an unknown write appears and then disappears",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Lost(20, put("k", "b")),
                Done(30, 40, get("k"), read(Some("b"))),
                Done(50, 60, get("k"), read(Some("a"))),
            ],
        ),
        (
            "a compare-and-set wrote although the key held another value",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, cas("k", Some("b"), "c"), Output::Swapped(true)),
            ],
        ),
        (
            "a compare-and-set refused although the key held the expected value",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, cas("k", Some("a"), "c"), Output::Swapped(false)),
            ],
        ),
        (
            "a read after a delete sees the deleted value",
            vec![
                Done(0, 10, put("k", "a"), OK),
                Done(20, 30, Op::delete("k"), OK),
                Done(40, 50, get("k"), read(Some("a"))),
            ],
        ),
    ];
    for (name, rows) in cases {
        assert_eq!(verdict(&build(rows)), Err("k".to_owned()), "{name}");
    }
}

#[test]
fn a_violation_names_the_prefix_the_state_and_the_operations_that_cannot_follow() {
    let h = build(vec![
        Done(0, 10, put("k", "a"), OK),
        Done(20, 30, put("k", "b"), OK),
        Done(40, 50, get("k"), read(Some("a"))),
        Done(45, 55, get("k"), read(Some("b"))),
    ]);
    let result = check(&h, LIMIT);
    let CheckResult::Illegal {
        key,
        linearized,
        state,
        stuck,
    } = &result
    else {
        panic!("expected a violation, got {result}");
    };
    assert_eq!(key, "k");
    let ids = |ops: &[Operation<&str>]| ops.iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(ids(linearized), [OpId(0), OpId(1), OpId(3)]);
    assert_eq!(*state, Some("b"));
    assert_eq!(ids(stuck), [OpId(2)]);
    let text = result.to_string();
    assert!(text.starts_with("key \"k\" is not linearizable"), "{text}");
    assert!(
        text.contains("#2 client 2: get(\"k\") -> Some(\"a\") [40, 50] ns"),
        "{text}"
    );
}

#[test]
fn a_history_checked_with_no_time_left_times_out() {
    let h = build(vec![Done(0, 10, put("k", "a"), OK)]);
    assert_eq!(check(&h, Duration::ZERO), CheckResult::Timeout);
    assert_eq!(
        check(&History::<u8>::new(), Duration::ZERO),
        CheckResult::Ok
    );
}

/// A history of `keys` keys, each written and read by overlapping clients
/// in a linearizable way, optionally with one stale read on key `bad`.
fn many_keys(keys: usize, bad: Option<usize>) -> History<u64> {
    let mut h = History::new();
    for k in 0..keys {
        let key = format!("k{k:04}");
        for round in 0..20u64 {
            let t = round * 100;
            let first = h.call(1, Op::put(key.as_str(), round * 2), t);
            let second = h.call(2, Op::put(key.as_str(), round * 2 + 1), t + 5);
            let read = h.call(3, Op::get(key.as_str()), t + 10);
            h.ret(
                read,
                Output::Read((round > 0).then(|| round * 2 - 1)),
                t + 12,
            )
            .unwrap();
            h.ret(first, Output::Ok, t + 50).unwrap();
            h.ret(second, Output::Ok, t + 60).unwrap();
            let after = h.call(3, Op::get(key.as_str()), t + 70);
            let seen = if bad == Some(k) && round == 7 {
                3
            } else {
                round * 2 + 1
            };
            h.ret(after, Output::Read(Some(seen)), t + 80).unwrap();
            // Client 2's write went second; client 1 retries to restore order.
            let fix = h.call(1, Op::put(key.as_str(), round * 2 + 1), t + 85);
            h.ret(fix, Output::Ok, t + 90).unwrap();
        }
    }
    h
}

#[test]
fn many_keys_are_checked_separately_and_the_bad_one_is_named() {
    assert_eq!(check(&many_keys(300, None), LIMIT), CheckResult::Ok);
    match check(&many_keys(300, Some(137)), LIMIT) {
        CheckResult::Illegal { key, state, .. } => {
            assert_eq!(key, "k0137");
            // Both writes of that round ran concurrently: either may be last.
            assert!(matches!(state, Some(14 | 15)), "{state:?}");
        }
        other => panic!("expected k0137 to be illegal, got {other}"),
    }
}

#[test]
fn a_long_busy_single_key_history_is_decided_quickly() {
    // 8 clients, 4000 operations, each overlapping about 8 others.
    let ops = sequential_ops(4000, 1, 8, 40, 0x5eed);
    let h = build_sequential(&ops, None);
    let started = Instant::now();
    assert_eq!(check(&h, LIMIT), CheckResult::Ok);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// One operation of a sequential execution: its kind, key, value, how far
/// its interval reaches before and after its linearisation point, and its
/// fate (0: unknown, took effect; 1: unknown, no effect; else returned).
#[derive(Clone, Debug)]
struct Planned {
    kind: u8,
    key: u8,
    value: u8,
    before: u64,
    after: u64,
    fate: u8,
}

fn planned() -> impl Strategy<Value = Planned> {
    (0u8..4, 0u8..3, 0u8..4, 0u64..40, 0u64..40, 0u8..8).prop_map(
        |(kind, key, value, before, after, fate)| Planned {
            kind,
            key,
            value,
            before,
            after,
            fate,
        },
    )
}

/// Deterministic pseudo-random plans for the larger tests (xorshift).
fn sequential_ops(n: usize, keys: u8, values: u8, reach: u64, seed: u64) -> Vec<Planned> {
    let mut x = seed;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    (0..n)
        .map(|_| Planned {
            kind: next(4) as u8,
            key: next(u64::from(keys)) as u8,
            value: next(u64::from(values)) as u8,
            before: next(reach),
            after: next(reach),
            fate: if next(50) == 0 { next(2) as u8 } else { 2 },
        })
        .collect()
}

/// Runs `plan` one operation at a time against a map, the i-th taking
/// effect at 10·(i + 1) inside a random interval around that instant, and
/// records what each client saw. `corrupt` makes the given completed get
/// report a value that was never written.
fn build_sequential(plan: &[Planned], corrupt: Option<usize>) -> History<u8> {
    const NEVER_WRITTEN: u8 = 99;
    let mut store: BTreeMap<u8, u8> = BTreeMap::new();
    let mut h = History::new();
    let mut gets = 0;
    for (i, p) in plan.iter().enumerate() {
        let point = 100 + 10 * (i as u64 + 1);
        let key = format!("k{}", p.key);
        let current = store.get(&p.key).copied();
        let (op, output, effect) = match p.kind {
            0 => (Op::get(key), Output::Read(current), None),
            1 => (Op::put(key, p.value), Output::Ok, Some(Some(p.value))),
            2 => (Op::delete(key), Output::Ok, Some(None)),
            _ => {
                let expected = (p.value % 2 == 0).then_some(p.value / 2);
                let swapped = current == expected;
                let op = Op::compare_and_set(key, expected, p.value);
                (
                    op,
                    Output::Swapped(swapped),
                    swapped.then_some(Some(p.value)),
                )
            }
        };
        let applied = p.fate != 1;
        if let (true, Some(effect)) = (applied, effect) {
            match effect {
                Some(value) => store.insert(p.key, value),
                None => store.remove(&p.key),
            };
        }
        let id = h.call(i as u64, op, point - p.before);
        if p.fate <= 1 {
            h.unknown(id).unwrap();
            continue;
        }
        let output = match output {
            Output::Read(_) if corrupt == Some(gets) => Output::Read(Some(NEVER_WRITTEN)),
            other => other,
        };
        if matches!(output, Output::Read(_)) {
            gets += 1;
        }
        h.ret(id, output, point + p.after).unwrap();
    }
    h
}

proptest! {
    #[test]
    fn histories_of_a_real_sequential_execution_are_accepted(
        plan in prop::collection::vec(planned(), 0..60)
    ) {
        let h = build_sequential(&plan, None);
        prop_assert_eq!(check(&h, LIMIT), CheckResult::Ok);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_always_rejected(
        plan in prop::collection::vec(planned(), 1..60),
        pick in any::<prop::sample::Index>(),
    ) {
        let clean = build_sequential(&plan, None);
        let completed_gets = clean
            .operations()
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Returned { output: Output::Read(_), .. }))
            .count();
        prop_assume!(completed_gets > 0);
        let h = build_sequential(&plan, Some(pick.index(completed_gets)));
        let result = check(&h, LIMIT);
        prop_assert!(matches!(result, CheckResult::Illegal { .. }), "{}", result);
    }
}
