//! Small tools for the hot loop: a fast hasher for integer keys, a
//! reference-counted string interner, and a stable string hash for ties.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash (rustc's): a multiply and a rotate per word, good for the
/// small integer keys the scheduler looks up per node.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by small integers, hashed with [`FxHasher`].
pub(super) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// FNV-1a over `text`: stable across runs and Rust versions, unlike std's
/// hasher, so tie-breaking is reproducible.
pub(super) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(&[0u8]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Strings to dense ids, each with a reference count; an id whose count
/// drops to zero is forgotten and its number reused.
#[derive(Debug, Default)]
pub(super) struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    refs: Vec<u32>,
    free: Vec<u32>,
}

impl Interner {
    /// The id of `name`, if anything holds it.
    pub(super) fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Takes a reference to `name`, giving it an id if it has none.
    pub(super) fn acquire(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            self.refs[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = name.to_owned();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.names.push(name.to_owned());
                self.refs.push(1);
                u32::try_from(self.names.len() - 1).expect("fewer than 2^32 interned names")
            }
        };
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// Drops a reference taken by [`Interner::acquire`].
    pub(super) fn release(&mut self, id: u32) {
        let refs = &mut self.refs[id as usize];
        *refs -= 1;
        if *refs == 0 {
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
        }
    }

    pub(super) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// How many references `id` has (for images: how many nodes hold it).
    pub(super) fn refs(&self, id: u32) -> u32 {
        self.refs[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_counts_references_and_reuses_forgotten_ids() {
        let mut interner = Interner::default();
        let a = interner.acquire("a");
        assert_eq!(interner.acquire("a"), a);
        let b = interner.acquire("b");
        assert_ne!(a, b);
        assert_eq!(interner.refs(a), 2);
        interner.release(a);
        assert_eq!(interner.get("a"), Some(a));
        interner.release(a);
        assert_eq!(interner.get("a"), None);
        let c = interner.acquire("c");
        assert_eq!(c, a, "the forgotten id is reused");
        assert_eq!(interner.name(c), "c");
        assert_eq!(interner.name(b), "b");
    }

    #[test]
    fn stable_hash_separates_parts_and_does_not_change() {
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        assert_eq!(
            stable_hash(&["default", "web-1"]),
            stable_hash(&["default", "web-1"])
        );
        assert_eq!(stable_hash(&[]), 0xcbf2_9ce4_8422_2325);
    }
}
