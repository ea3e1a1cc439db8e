//! The scheduler's pure core: it keeps what it needs to know about nodes and
//! bound pods, and places pending pods on nodes.
//!
//! No clocks, no I/O. The leader-only runtime feeds it every Node and Pod
//! change ([`Scheduler::node_changed`], [`Scheduler::pod_changed`], ...),
//! hands it batches of pending pods ([`is_pending`]) and carries out each
//! [`Decision`]: `Bind` as a `pods/binding` (`Command::Bind`), `Unschedulable`
//! as a `FailedScheduling` Warning Event (`Command::Event`) and the pod's
//! `PodScheduled=False` condition with reason `Unschedulable`. A binding the
//! runtime could not carry out is undone with [`Scheduler::forget`].
//!
//! Placement mirrors kube-scheduler's default profile
//! (`pkg/scheduler/schedule_one.go`, `pkg/scheduler/framework/plugins/`):
//!
//! - **filters** (see `filter.rs`): NodeUnschedulable, TaintToleration (a
//!   node that is not Ready counts as carrying the node lifecycle
//!   controller's `not-ready`/`unreachable` `NoSchedule` taint), NodeAffinity
//!   (nodeSelector, required terms, and its PreFilter narrowing to the nodes
//!   `metadata.name` fields pin), ImageArchitecture (Flotilla's: the node's
//!   `kubernetes.io/arch` must be one the pod's images exist for, as told by
//!   [`Scheduler::set_image_platforms`], which the runtime fills from
//!   registry indexes; images it was not told about do not constrain),
//!   NodePorts, NodeResourcesFit (cpu, memory, pods and any other resource,
//!   requests computed as Kubernetes computes effective requests);
//! - **scores** (see `score.rs`): LeastAllocated, BalancedAllocation,
//!   ImageLocality, TaintToleration `PreferNoSchedule`, preferred
//!   NodeAffinity, and PodTopologySpread's system default constraints
//!   (replicas of a workload spread over nodes and over the zone label);
//! - **percentageOfNodesToScore**: filtering stops once enough feasible
//!   nodes are found (adaptive: 50% minus 1% per 125 nodes, at least 5% and
//!   100 nodes), starting where the previous pod stopped, over nodes ordered
//!   round-robin across zones as kube's node tree orders them;
//! - **assume**: each placement is counted at once, so the next pod of the
//!   batch sees it; the pod's own update confirms it later.
//!
//! Differences from kube-scheduler: no preemption (so no `preemption: ...`
//! suffix in messages), no inter-pod affinity, no volume plugins, a pod's own
//! `topologySpreadConstraints` are not read (the system defaults apply to
//! every pod that belongs to a workload), zone counts include every node
//! rather than only those matching the pod's node affinity, and ties are
//! broken by a hash of the pod's name instead of at random, so the same
//! calls always give the same decisions.

mod affinity;
mod filter;
pub mod fixtures;
mod intern;
mod node;
mod pod;
mod resources;
mod score;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use flotilla_shared::model::{Node, Pod};

use filter::Failure;
use intern::{FxMap, Interner};
use node::NodeState;
use pod::{Candidate, HostPort};
use resources::{Allocatable, PodUsage};

pub use resources::{DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, RequestError};

/// The scheduler name pods get by default; pods naming another are left alone.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// kube-scheduler's message when there is no node at all (`ErrNoNodesAvailable`).
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// kube's smallest number of feasible nodes to look for.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// kube's smallest adaptive percentage.
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How the scheduler searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// kube's `percentageOfNodesToScore`: 0 for the adaptive default,
    /// otherwise the share of nodes (at least 100 of them) to find feasible
    /// before scoring.
    pub percentage_of_nodes_to_score: u32,
    /// The node label whose values are zones, for spreading and node order.
    pub zone_label: String,
    /// The pods' `spec.schedulerName` this scheduler places (kube-scheduler's
    /// profile name); pods for other schedulers are left alone.
    pub scheduler_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            percentage_of_nodes_to_score: 0,
            zone_label: flotilla_shared::model::node_labels::ZONE.to_owned(),
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_owned(),
        }
    }
}

/// What to do about one pending pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod, if it is still at `resource_version`, to `node`.
    Bind {
        namespace: String,
        name: String,
        resource_version: String,
        node: String,
    },
    /// No node fits; `message` is kube-scheduler's, e.g. `0/5 nodes are
    /// available: 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: },
    /// 3 Insufficient memory.`
    Unschedulable {
        namespace: String,
        name: String,
        message: String,
    },
}

/// Whether the scheduler should place `pod`: not bound, not being deleted,
/// not finished, for the scheduler named `scheduler_name` (an empty
/// `schedulerName` means the default scheduler), and without scheduling gates.
pub fn is_pending(pod: &Pod, scheduler_name: &str) -> bool {
    let name = match pod.spec.scheduler_name.as_str() {
        "" => DEFAULT_SCHEDULER_NAME,
        name => name,
    };
    !pod.is_bound()
        && pod.metadata.deletion_timestamp.is_none()
        && !pod.is_terminal()
        && name == scheduler_name
        && pod.spec.scheduling_gates.is_empty()
}

/// kube's `numFeasibleNodesToFind`.
pub fn feasible_nodes_to_find(percentage_of_nodes_to_score: u32, all_nodes: usize) -> usize {
    if all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return all_nodes;
    }
    let percentage = match percentage_of_nodes_to_score.min(100) as usize {
        0 => 50usize
            .saturating_sub(all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE),
        p => p,
    };
    (all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// A pod the scheduler counts on a node: bound, or assumed while its
/// binding is in flight.
#[derive(Debug)]
struct PodRecord {
    slot: usize,
    usage: PodUsage,
    ports: Vec<HostPort>,
    /// Interned workload, unless the pod is being deleted (it then still
    /// uses resources but no longer counts for spreading).
    workload: Option<u32>,
    assumed: bool,
}

/// Buffers reused from pod to pod.
#[derive(Debug, Default)]
struct Scratch {
    feasible: Vec<usize>,
    failures: Vec<(usize, Failure)>,
    total: Vec<i64>,
    raw: Vec<i64>,
    counts: Vec<i64>,
    ties: Vec<usize>,
    seen_zones: Vec<bool>,
}

/// The scheduler's state: nodes, what their pods use, workloads' spread.
#[derive(Debug, Default)]
pub struct Scheduler {
    config: Config,
    /// Node states by slot; a slot is reused once its node and pods are gone.
    nodes: Vec<NodeState>,
    free_slots: Vec<usize>,
    slots: HashMap<String, usize>,
    /// Slots of present nodes, round-robin across zones, names sorted.
    order: Vec<usize>,
    order_dirty: bool,
    /// Where the next search starts in `order`.
    next_start: usize,
    /// Bound and assumed pods by `namespace/name`.
    pods: HashMap<String, PodRecord>,
    /// Architectures seen, by bit index.
    archs: Vec<String>,
    zones: Interner,
    /// Image names, referenced once per node holding them.
    images: Interner,
    /// Workloads, referenced once per counted pod.
    workloads: Interner,
    /// Pods of each workload by zone.
    zone_counts: FxMap<u32, FxMap<u32, u32>>,
    /// Architecture bits each (normalized) image exists for.
    platforms: HashMap<String, u64>,
    scratch: Scratch,
}

fn pod_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Scheduler {
    pub fn new(config: Config) -> Self {
        Scheduler {
            config,
            ..Scheduler::default()
        }
    }

    /// How many nodes pods may be placed on (the `N` of `0/N nodes`).
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.present).count()
    }

    /// Records that `image` (as pods name it) exists for the architectures
    /// `archs` (Go's `GOARCH` names, as the `kubernetes.io/arch` label has
    /// them: `arm64`, `arm`, `amd64`); the runtime learns them from the
    /// registry's image index. An empty list forgets the image, which then
    /// constrains nothing, as does any image never named here.
    pub fn set_image_platforms(&mut self, image: &str, archs: Vec<String>) {
        let name = pod::normalized_image_name(image);
        if archs.is_empty() {
            self.platforms.remove(&name);
            return;
        }
        let mask = archs
            .iter()
            .filter_map(|a| self.arch_bit(a))
            .fold(0u64, |mask, bit| mask | 1 << bit);
        self.platforms.insert(name, mask);
    }

    /// The bit of architecture `name` (at most 64 are told apart).
    fn arch_bit(&mut self, name: &str) -> Option<u32> {
        if let Some(i) = self.archs.iter().position(|a| a == name) {
            return Some(i as u32);
        }
        if self.archs.len() >= 64 {
            return None;
        }
        self.archs.push(name.to_owned());
        Some(self.archs.len() as u32 - 1)
    }

    /// The slot of node `name`, made (as a placeholder) if unknown.
    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(&slot) = self.slots.get(name) {
            return slot;
        }
        let state = NodeState {
            name: name.to_owned(),
            ..NodeState::default()
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.nodes[slot] = state;
                slot
            }
            None => {
                self.nodes.push(state);
                self.nodes.len() - 1
            }
        };
        self.slots.insert(name.to_owned(), slot);
        slot
    }

    /// Moves the node's workload counts from its old zone to `zone`.
    fn set_zone(&mut self, slot: usize, zone: Option<u32>) {
        let node = &mut self.nodes[slot];
        let old = std::mem::replace(&mut node.zone, zone);
        if old == zone {
            return;
        }
        for (&workload, &count) in &node.workloads {
            let counts = self.zone_counts.entry(workload).or_default();
            if let Some(old) = old {
                decrement(counts, old, count);
            }
            if let Some(new) = zone {
                *counts.entry(new).or_default() += count;
            }
            if counts.is_empty() {
                self.zone_counts.remove(&workload);
            }
        }
        self.order_dirty = true;
    }

    /// Keeps the node's state current (called for every add or update).
    pub fn node_changed(&mut self, node: &Node) {
        let slot = self.slot_for(&node.metadata.name);
        let zone = node
            .metadata
            .labels
            .get(&self.config.zone_label)
            .map(|z| self.zones.acquire(z));
        if let Some(old) = self.nodes[slot].zone {
            self.zones.release(old);
        }
        self.set_zone(slot, zone);

        // Each name once (a node may list a name under two images).
        let names: BTreeMap<&str, i64> = node
            .status
            .images
            .iter()
            .flat_map(|image| image.names.iter().map(|n| (n.as_str(), image.size_bytes)))
            .collect();
        let mut images: Vec<(u32, i64)> = names
            .into_iter()
            .map(|(name, size)| (self.images.acquire(name), size))
            .collect();
        images.sort_unstable();
        let arch = node::arch(node).map(str::to_owned);
        let arch = arch.and_then(|a| self.arch_bit(&a));
        let (filter_taints, prefer_taints) = node::taints(node);

        let state = &mut self.nodes[slot];
        for (id, _) in std::mem::replace(&mut state.images, images) {
            self.images.release(id);
        }
        if !state.present {
            self.order_dirty = true;
        }
        state.present = true;
        state.unschedulable = node.spec.unschedulable;
        state.labels.clone_from(&node.metadata.labels);
        state.filter_taints = filter_taints;
        state.prefer_taints = prefer_taints;
        state.arch = arch;
        state.allocatable = Allocatable::of(&node.status);
    }

    /// Forgets node `name`; pods still bound to it keep being counted on a
    /// placeholder until they are removed.
    pub fn node_removed(&mut self, name: &str) {
        let Some(&slot) = self.slots.get(name) else {
            return;
        };
        if !self.nodes[slot].present {
            return;
        }
        if let Some(zone) = self.nodes[slot].zone {
            self.zones.release(zone);
        }
        self.set_zone(slot, None);
        let state = &mut self.nodes[slot];
        for (id, _) in std::mem::take(&mut state.images) {
            self.images.release(id);
        }
        state.present = false;
        state.unschedulable = false;
        state.labels.clear();
        state.filter_taints.clear();
        state.prefer_taints.clear();
        state.arch = None;
        state.allocatable = Allocatable::default();
        self.order_dirty = true;
        if state.records == 0 {
            self.free_slot(slot);
        }
    }

    fn free_slot(&mut self, slot: usize) {
        let state = std::mem::take(&mut self.nodes[slot]);
        self.slots.remove(&state.name);
        self.free_slots.push(slot);
    }

    /// Keeps the pod's usage current (called for every add or update). A
    /// bound pod that has not finished counts on its node; a finished pod
    /// stops counting; an unbound pod changes nothing (if it was assumed,
    /// its binding is still in flight).
    pub fn pod_changed(&mut self, pod: &Pod) {
        if !pod.is_bound() {
            return;
        }
        let key = pod_key(&pod.metadata.namespace, &pod.metadata.name);
        self.remove_record(&key);
        if pod.is_terminal() {
            return;
        }
        // Admission refuses requests that do not parse; should one get
        // through, the pod counts as requesting nothing.
        let usage = PodUsage::of(&pod.spec).unwrap_or_default();
        let workload = if pod.metadata.deletion_timestamp.is_some() {
            None
        } else {
            pod::workload_key(pod)
        };
        let slot = self.slot_for(&pod.spec.node_name);
        self.add_record(
            key,
            slot,
            usage,
            pod::host_ports(&pod.spec),
            workload,
            false,
        );
    }

    /// The pod is gone: what it used is free again.
    pub fn pod_removed(&mut self, namespace: &str, name: &str) {
        self.remove_record(&pod_key(namespace, name));
    }

    /// Undoes an assumption whose binding failed (the pod changed or went,
    /// the node refused): the pod may be placed again. A pod whose binding
    /// was confirmed is not affected.
    pub fn forget(&mut self, namespace: &str, name: &str) {
        let key = pod_key(namespace, name);
        if self.pods.get(&key).is_some_and(|r| r.assumed) {
            self.remove_record(&key);
        }
    }

    fn add_record(
        &mut self,
        key: String,
        slot: usize,
        usage: PodUsage,
        ports: Vec<HostPort>,
        workload: Option<String>,
        assumed: bool,
    ) {
        let workload = workload.map(|w| self.workloads.acquire(&w));
        let node = &mut self.nodes[slot];
        node.account(&usage, &ports, 1);
        node.records += 1;
        if let Some(w) = workload {
            *node.workloads.entry(w).or_default() += 1;
            if let Some(zone) = node.zone {
                *self
                    .zone_counts
                    .entry(w)
                    .or_default()
                    .entry(zone)
                    .or_default() += 1;
            }
        }
        self.pods.insert(
            key,
            PodRecord {
                slot,
                usage,
                ports,
                workload,
                assumed,
            },
        );
    }

    fn remove_record(&mut self, key: &str) {
        let Some(record) = self.pods.remove(key) else {
            return;
        };
        let node = &mut self.nodes[record.slot];
        node.account(&record.usage, &record.ports, -1);
        node.records -= 1;
        if let Some(w) = record.workload {
            decrement(&mut node.workloads, w, 1);
            if let Some(zone) = node.zone
                && let Some(counts) = self.zone_counts.get_mut(&w)
            {
                decrement(counts, zone, 1);
                if counts.is_empty() {
                    self.zone_counts.remove(&w);
                }
            }
            self.workloads.release(w);
        }
        if !node.present && node.records == 0 {
            self.free_slot(record.slot);
        }
    }

    /// Rebuilds the search order if nodes came, went or changed zone:
    /// kube's node tree, one node of each zone in turn.
    fn refresh_order(&mut self) {
        if !self.order_dirty {
            return;
        }
        let mut by_zone: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
        for (slot, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.present) {
            let zone = node.zone.map_or("", |z| self.zones.name(z));
            by_zone.entry(zone).or_default().push((&node.name, slot));
        }
        let mut groups: Vec<_> = by_zone.into_values().collect();
        for group in &mut groups {
            group.sort_unstable();
        }
        let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
        let mut order = Vec::with_capacity(self.nodes.len());
        for i in 0..longest {
            order.extend(
                groups
                    .iter()
                    .filter_map(|g| g.get(i))
                    .map(|(_, slot)| *slot),
            );
        }
        self.order = order;
        self.order_dirty = false;
    }

    /// Places a batch of pending pods, in order; each placement counts at
    /// once for the pods after it. Pods that are not pending ([`is_pending`])
    /// and pods already assumed (their binding in flight) get no decision.
    pub fn schedule(&mut self, pending: &[&Pod]) -> Vec<Decision> {
        self.refresh_order();
        let mut decisions = Vec::with_capacity(pending.len());
        for pod in pending {
            if !is_pending(pod, &self.config.scheduler_name)
                || self
                    .pods
                    .contains_key(&pod_key(&pod.metadata.namespace, &pod.metadata.name))
            {
                continue;
            }
            decisions.push(self.schedule_one(pod));
        }
        decisions
    }

    fn schedule_one(&mut self, pod: &Pod) -> Decision {
        let all = self.order.len();
        let unschedulable = |message: String| Decision::Unschedulable {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            message,
        };
        if all == 0 {
            return unschedulable(NO_NODES_AVAILABLE.to_owned());
        }
        let candidate = match Candidate::new(pod, &self.images, &self.platforms) {
            Ok(candidate) => candidate,
            Err(err) => return unschedulable(filter::prefilter_error(all, &err.to_string())),
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.feasible.clear();
        scratch.failures.clear();
        let mut left_out = 0;
        match &candidate.pinned {
            affinity::Pinned::Conflict => {
                self.scratch = scratch;
                return unschedulable(filter::prefilter_error(all, filter::AFFINITY_CONFLICT));
            }
            affinity::Pinned::Names(names) => {
                for name in names {
                    let Some(&slot) = self.slots.get(name) else {
                        continue;
                    };
                    if !self.nodes[slot].present {
                        continue;
                    }
                    match filter::filter(&self.nodes[slot], &candidate) {
                        Ok(()) => scratch.feasible.push(slot),
                        Err(failure) => scratch.failures.push((slot, failure)),
                    }
                }
                left_out = all - scratch.feasible.len() - scratch.failures.len();
            }
            affinity::Pinned::All => {
                let wanted = feasible_nodes_to_find(self.config.percentage_of_nodes_to_score, all);
                let start = self.next_start % all;
                let mut processed = 0;
                for k in 0..all {
                    let slot = self.order[(start + k) % all];
                    processed += 1;
                    match filter::filter(&self.nodes[slot], &candidate) {
                        Ok(()) => {
                            scratch.feasible.push(slot);
                            if scratch.feasible.len() >= wanted {
                                break;
                            }
                        }
                        Err(failure) => scratch.failures.push((slot, failure)),
                    }
                }
                self.next_start = (start + processed) % all;
            }
        }
        let decision = if scratch.feasible.is_empty() {
            let reasons = scratch
                .failures
                .iter()
                .flat_map(|&(slot, f)| filter::reasons(f, &self.nodes[slot], &candidate))
                .chain(std::iter::repeat_n(filter::NOT_PINNED.to_owned(), left_out));
            unschedulable(filter::fit_error(all, reasons))
        } else {
            let slot = if scratch.feasible.len() == 1 {
                scratch.feasible[0]
            } else {
                self.select(&candidate, &mut scratch)
            };
            let key = pod_key(&pod.metadata.namespace, &pod.metadata.name);
            self.add_record(
                key,
                slot,
                candidate.usage.clone(),
                candidate.ports.clone(),
                candidate.workload.clone(),
                true,
            );
            Decision::Bind {
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                node: self.nodes[slot].name.clone(),
            }
        };
        self.scratch = scratch;
        decision
    }

    /// Scores the feasible nodes and picks the best; ties go to the node
    /// the pod's name hashes to among them.
    fn select(&self, candidate: &Candidate<'_>, scratch: &mut Scratch) -> usize {
        let all = self.order.len();
        let nodes: Vec<&NodeState> = scratch.feasible.iter().map(|&s| &self.nodes[s]).collect();
        let n = nodes.len();
        let Scratch {
            total,
            raw,
            counts,
            ties,
            seen_zones,
            ..
        } = scratch;
        total.clear();
        total.extend(nodes.iter().map(|node| {
            score::least_allocated(node, candidate) * score::FIT_WEIGHT
                + score::balanced_allocation(node, candidate) * score::BALANCED_WEIGHT
                + if candidate.images.is_empty() {
                    0
                } else {
                    score::image_locality(node, candidate, all) * score::IMAGE_WEIGHT
                }
        }));
        let mut add = |raw: &mut Vec<i64>, weight: i64| {
            for (t, r) in total.iter_mut().zip(raw.iter()) {
                *t += r * weight;
            }
        };
        if nodes.iter().any(|n| !n.prefer_taints.is_empty()) {
            raw.clear();
            raw.extend(
                nodes
                    .iter()
                    .map(|n| score::untolerated_preferences(n, candidate)),
            );
            score::default_normalize(raw, true);
            add(raw, score::TAINT_WEIGHT);
        }
        if !candidate.preferred.is_empty() {
            raw.clear();
            raw.extend(
                nodes
                    .iter()
                    .map(|n| score::preferred_affinity(n, candidate)),
            );
            score::default_normalize(raw, false);
            add(raw, score::AFFINITY_WEIGHT);
        }
        if let Some(workload) = candidate
            .workload
            .as_deref()
            .and_then(|w| self.workloads.get(w))
        {
            counts.clear();
            counts.extend(
                nodes
                    .iter()
                    .map(|n| i64::from(n.workloads.get(&workload).copied().unwrap_or(0))),
            );
            raw.clear();
            raw.resize(n, 0);
            score::topology_spread(
                &nodes,
                counts,
                self.zone_counts.get(&workload),
                seen_zones,
                raw,
            );
            add(raw, score::SPREAD_WEIGHT);
        }
        let best = total.iter().copied().max().unwrap_or(0);
        ties.clear();
        ties.extend((0..n).filter(|&i| total[i] == best));
        let pick = ties[(candidate.hash % ties.len() as u64) as usize];
        scratch.feasible[pick]
    }
}

/// Lowers `map[key]` by `by`, dropping the entry at zero.
fn decrement(map: &mut FxMap<u32, u32>, key: u32, by: u32) {
    if let Some(count) = map.get_mut(&key) {
        *count = count.saturating_sub(by);
        if *count == 0 {
            map.remove(&key);
        }
    }
}
