//! Pod helpers the workload controllers share: the names of the pods they
//! create, template hashes, owner references, and when a pod became
//! available or finished (`pkg/controller/controller_utils.go`,
//! `pkg/api/v1/pod/util.go`, `k8s.io/apimachinery/pkg/util/rand`).
//!
//! Names are chosen by the controller, not by `generateName`: a core is
//! pure, so the name of the n-th pod is a hash of its owner's uid and a
//! discriminator, the first candidate that no pod in the namespace holds.
//! Two reconciles that see the same cache pick the same name, so a
//! reconcile that runs before the cache shows its previous creations makes
//! a create that fails with `AlreadyExists` instead of a second pod (what
//! Kubernetes' expectations guard against), and the `SuccessfulCreate`
//! Event names the pod as Kubernetes' does.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Object, ObjectMeta, OwnerReference, Pod, condition_status, pod_condition,
};

use super::Cache;
use crate::api::time::parse_time;

/// The characters Kubernetes uses in generated names and hashes
/// (`rand.SafeEncodeString`: no vowels, no confusable digits).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// `generateName` prefixes are cut to this many bytes (63 minus the 5 random characters).
const MAX_GENERATED_PREFIX: usize = 58;
const GENERATED_SUFFIX_LEN: usize = 5;

/// 32-bit FNV-1a, the hash Kubernetes uses for template hashes.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// 64-bit FNV-1a, for name suffixes.
fn fnv64a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash: u64, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `rand.SafeEncodeString`: every byte mapped onto [`ALPHANUMS`].
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The hash of a pod template as Kubernetes writes it in `pod-template-hash`
/// and `controller-revision-hash` labels: FNV-1a over the template's JSON
/// (fields in declaration order, maps sorted, so equal templates hash
/// equally), printed in decimal and safe-encoded.
pub fn template_hash<T: serde::Serialize>(template: &T) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    safe_encode(&fnv32a(&json).to_string())
}

/// The name for a new pod of `owner_name`: `<owner_name>-<5 characters>`,
/// the first candidate (derived from `seed` and a counter) that no pod in
/// `namespace` holds and that is not in `taken` (names chosen earlier in the
/// same reconcile). The chosen name is added to `taken`.
pub fn new_pod_name(
    cache: &Cache,
    namespace: &str,
    owner_name: &str,
    seed: &str,
    taken: &mut BTreeSet<String>,
) -> String {
    let mut prefix = format!("{owner_name}-");
    if prefix.len() > MAX_GENERATED_PREFIX {
        let mut cut = MAX_GENERATED_PREFIX;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    for attempt in 0u64.. {
        let mut hash = fnv64a(format!("{seed}/{attempt}").as_bytes());
        let mut name = prefix.clone();
        for _ in 0..GENERATED_SUFFIX_LEN {
            name.push(char::from(
                ALPHANUMS[(hash % ALPHANUMS.len() as u64) as usize],
            ));
            hash /= ALPHANUMS.len() as u64;
        }
        if cache.find("Pod", namespace, &name).is_none() && !taken.contains(&name) {
            taken.insert(name.clone());
            return name;
        }
    }
    unreachable!("the candidate names are unbounded")
}

/// The owner reference a controller puts on the objects it creates
/// (`metav1.NewControllerRef`).
pub fn controller_ref(owner: &Object) -> OwnerReference {
    let info = owner.kind_info();
    let meta = owner.metadata();
    OwnerReference {
        api_version: info.api_version.to_owned(),
        kind: info.kind.to_owned(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` names the owner with `uid` as its controller.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// When the pod's `Ready` condition last changed, if it is `True`.
fn ready_since(pod: &Pod) -> Option<SystemTime> {
    let ready = pod.status.condition(pod_condition::READY)?;
    if ready.status != condition_status::TRUE {
        return None;
    }
    Some(
        ready
            .last_transition_time
            .as_ref()
            .and_then(|t| parse_time(&t.0))
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// `podutil.IsPodAvailable`: ready for more than `min_ready_seconds`;
/// [`Availability::ReadySoon`] says how long a ready pod still has to wait.
pub fn availability(pod: &Pod, min_ready_seconds: i32, now: SystemTime) -> Availability {
    let Some(since) = ready_since(pod) else {
        return Availability::NotReady;
    };
    if min_ready_seconds <= 0 {
        return Availability::Available;
    }
    let available_at = since + Duration::from_secs(u64::from(min_ready_seconds.unsigned_abs()));
    match available_at.duration_since(now) {
        // Kubernetes asks for the ready time plus minReadySeconds to be strictly before now.
        Ok(wait) => Availability::ReadySoon(wait.max(Duration::from_secs(1))),
        Err(_) => Availability::Available,
    }
}

/// A pod's availability at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    NotReady,
    /// Ready, and available after this much longer.
    ReadySoon(Duration),
    Available,
}

impl Availability {
    pub fn is_ready(self) -> bool {
        self != Availability::NotReady
    }

    pub fn is_available(self) -> bool {
        self == Availability::Available
    }
}

/// When a terminal pod finished (the Job controller's `getFinishedTime`):
/// when its `Ready` condition turned `False`, else when its last container
/// terminated, else its deletion time, else its creation time.
pub fn finished_at(pod: &Pod) -> SystemTime {
    let parse =
        |t: &Option<flotilla_shared::model::Time>| t.as_ref().and_then(|t| parse_time(&t.0));
    if let Some(ready) = pod.status.condition(pod_condition::READY)
        && ready.status == condition_status::FALSE
        && let Some(at) = parse(&ready.last_transition_time)
    {
        return at;
    }
    let containers = pod
        .status
        .init_container_statuses
        .iter()
        .chain(&pod.status.container_statuses)
        .filter_map(|c| c.state.terminated.as_ref())
        .filter_map(|t| parse(&t.finished_at))
        .max();
    containers
        .or_else(|| parse(&pod.metadata.deletion_timestamp))
        .or_else(|| parse(&pod.metadata.creation_timestamp))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_maps_digits_as_kubernetes_does() {
        // '0' is byte 48 → 48 % 27 = 21 → '4'; '9' is 57 → 3 → 'f'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn new_names_skip_taken_ones_and_repeat_for_the_same_cache() {
        let cache = Cache::new();
        let mut taken = BTreeSet::new();
        let first = new_pod_name(&cache, "default", "web", "uid-1/n1", &mut taken);
        let second = new_pod_name(&cache, "default", "web", "uid-1/n1", &mut taken);
        assert_ne!(first, second);
        assert!(first.starts_with("web-") && first.len() == "web-".len() + 5);
        let again = new_pod_name(&cache, "default", "web", "uid-1/n1", &mut BTreeSet::new());
        assert_eq!(again, first);
        let long = "x".repeat(70);
        let name = new_pod_name(&cache, "default", &long, "s", &mut BTreeSet::new());
        assert_eq!(name.len(), 63);
    }
}
