//! The DaemonSet controller's core, tested by the commands it emits, and
//! rollouts driven to the end by a small world that carries out the
//! commands and plays the devices' agents.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Container, ContainerPort, DaemonSet, IntOrString, LabelSelector, Node, NodeCondition, Object,
    OwnerReference, Pod, PodCondition, RollingUpdateDaemonSet, Taint, Time, condition_status,
    node_condition, node_taints, pod_condition, pod_phase, taint_effect,
};
use flotilla_shared::quantity::Quantity;

use super::*;
use crate::api::time::format_time;

const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn time(seconds: u64) -> Option<Time> {
    Some(format_time(at(seconds)))
}

fn daemon_set(image: &str) -> DaemonSet {
    let mut ds = DaemonSet::default();
    ds.metadata.name = "agent".into();
    ds.metadata.namespace = "default".into();
    ds.metadata.uid = "ds-uid".into();
    ds.metadata.generation = 1;
    ds.metadata
        .annotations
        .insert(TEMPLATE_GENERATION_ANNOTATION.into(), "1".into());
    ds.spec.selector = Some(LabelSelector {
        match_labels: BTreeMap::from([("app".to_owned(), "agent".to_owned())]),
        ..LabelSelector::default()
    });
    ds.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "agent".to_owned())]);
    ds.spec.template.spec.containers = vec![Container {
        name: "agent".into(),
        image: image.into(),
        ..Container::default()
    }];
    ds.spec.update_strategy.type_ = "RollingUpdate".into();
    ds.spec.update_strategy.rolling_update = Some(RollingUpdateDaemonSet {
        max_unavailable: Some(IntOrString::Int(1)),
        max_surge: Some(IntOrString::Int(0)),
    });
    ds
}

/// The DaemonSet with a new image, as the API server stores an update.
fn updated(mut ds: DaemonSet, image: &str) -> DaemonSet {
    ds.spec.template.spec.containers[0].image = image.into();
    ds.metadata.generation += 1;
    let generation = ds.metadata.generation.to_string();
    ds.metadata
        .annotations
        .insert(TEMPLATE_GENERATION_ANNOTATION.into(), generation);
    ds
}

fn node(name: &str, online: bool) -> Node {
    let mut node = Node::default();
    node.metadata.name = name.into();
    node.metadata
        .labels
        .insert("kubernetes.io/hostname".into(), name.into());
    node.status.conditions = vec![NodeCondition {
        type_: node_condition::READY.into(),
        status: if online {
            condition_status::TRUE
        } else {
            condition_status::UNKNOWN
        }
        .into(),
        ..NodeCondition::default()
    }];
    if !online {
        for effect in [taint_effect::NO_SCHEDULE, taint_effect::NO_EXECUTE] {
            node.spec.taints.push(Taint {
                key: node_taints::UNREACHABLE.into(),
                effect: effect.into(),
                ..Taint::default()
            });
        }
    }
    node
}

fn labelled(mut node: Node, key: &str, value: &str) -> Node {
    node.metadata.labels.insert(key.into(), value.into());
    node
}

fn tainted(mut node: Node, key: &str, effect: &str) -> Node {
    node.spec.taints.push(Taint {
        key: key.into(),
        effect: effect.into(),
        ..Taint::default()
    });
    node
}

/// A pod of `ds` as the controller would have made it, created at
/// `created` seconds, ready (since then) or not.
fn daemon_pod(ds: &DaemonSet, name: &str, node: &str, created: u64, ready: bool) -> Pod {
    let hash = pods::template_hash(&ds.spec.template);
    let generation = ds.metadata.annotations[TEMPLATE_GENERATION_ANNOTATION]
        .parse()
        .ok();
    let mut pod = template_pod(&Object::DaemonSet(ds.clone()), ds, &hash, generation);
    pod.metadata.name = name.into();
    pod.metadata.uid = format!("uid-{name}");
    pod.metadata.creation_timestamp = time(created);
    pod.spec.node_name = node.into();
    pod.status.phase = if ready {
        pod_phase::RUNNING
    } else {
        pod_phase::PENDING
    }
    .into();
    if ready {
        pod.status.conditions.push(PodCondition {
            type_: pod_condition::READY.into(),
            status: condition_status::TRUE.into(),
            last_transition_time: time(created),
            ..PodCondition::default()
        });
    }
    pod
}

fn image_of(pod: &Pod) -> &str {
    &pod.spec.containers[0].image
}

/// Commands as lines a test can compare: creations by image and node,
/// deletions by name, Events, the status counts.
fn summary(commands: &[Command]) -> Vec<String> {
    let mut created = String::new();
    commands
        .iter()
        .map(|command| match command {
            Command::Create(object) => {
                let Object::Pod(pod) = object.as_ref() else {
                    panic!("created {object:?}");
                };
                created = pod.metadata.name.clone();
                format!("create {} on {}", image_of(pod), pod.spec.node_name)
            }
            Command::Delete { key, uid, .. } => {
                assert_eq!(uid.as_deref(), Some(format!("uid-{}", key.name).as_str()));
                format!("delete {}", key.name)
            }
            Command::Event {
                type_,
                reason,
                message,
                regarding,
            } => {
                assert_eq!((regarding.kind.as_str(), regarding.name.as_str()), ("DaemonSet", "agent"));
                let message = message.replace(&format!("Created pod: {created}"), "Created pod: <new>");
                format!("{} {reason}: {message}", type_.as_str())
            }
            Command::UpdateStatus(object) => {
                let Object::DaemonSet(ds) = object.as_ref() else {
                    panic!("status of {object:?}");
                };
                let s = &ds.status;
                format!(
                    "status desired={} current={} misscheduled={} ready={} available={} unavailable={} updated={} observed={}",
                    s.desired_number_scheduled,
                    s.current_number_scheduled,
                    s.number_misscheduled,
                    s.number_ready,
                    s.number_available,
                    s.number_unavailable,
                    s.updated_number_scheduled,
                    s.observed_generation
                )
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn cache_of(ds: &DaemonSet, nodes: Vec<Node>, pods: Vec<Pod>) -> Cache {
    let mut cache = Cache::new();
    cache.apply(Object::DaemonSet(ds.clone()));
    for node in nodes {
        cache.apply(Object::Node(node));
    }
    for pod in pods {
        cache.apply(Object::Pod(pod));
    }
    cache
}

fn ds_key() -> ObjectKey {
    ObjectKey::new("DaemonSet", "default", "agent")
}

const CREATED: &str = "Normal SuccessfulCreate: Created pod: <new>";

#[test]
fn placement_creates_and_deletes_pods_per_selector_affinity_and_taints() {
    struct Case {
        name: &'static str,
        edit: fn(&mut DaemonSet),
        nodes: Vec<Node>,
        pods: fn(&DaemonSet) -> Vec<Pod>,
        want: Vec<&'static str>,
    }
    let none: fn(&DaemonSet) -> Vec<Pod> = |_| Vec::new();
    let cases = vec![
        Case {
            name: "one pod per node, offline ones included",
            edit: |_| {},
            nodes: vec![node("n1", true), node("n2", false)],
            pods: none,
            want: vec![
                "create agent:v1 on n1",
                CREATED,
                "create agent:v1 on n2",
                CREATED,
                "status desired=2 current=0 misscheduled=0 ready=0 available=0 unavailable=2 updated=0 observed=1",
            ],
        },
        Case {
            name: "nodeSelector picks the nodes",
            edit: |ds| {
                ds.spec.template.spec.node_selector =
                    BTreeMap::from([("tier".to_owned(), "edge".to_owned())]);
            },
            nodes: vec![labelled(node("n1", true), "tier", "edge"), node("n2", true)],
            pods: none,
            want: vec![
                "create agent:v1 on n1",
                CREATED,
                "status desired=1 current=0 misscheduled=0 ready=0 available=0 unavailable=1 updated=0 observed=1",
            ],
        },
        Case {
            name: "a node that stops matching loses its pod",
            edit: |ds| {
                ds.spec.template.spec.node_selector =
                    BTreeMap::from([("tier".to_owned(), "edge".to_owned())]);
            },
            nodes: vec![node("n1", true)],
            pods: |ds| vec![daemon_pod(ds, "agent-old", "n1", 0, true)],
            want: vec![
                "delete agent-old",
                "Normal SuccessfulDelete: Deleted pod: agent-old",
                "status desired=0 current=0 misscheduled=1 ready=0 available=0 unavailable=0 updated=0 observed=1",
            ],
        },
        Case {
            name: "an untolerated NoSchedule taint keeps the pod there but adds none",
            edit: |_| {},
            nodes: vec![
                tainted(node("n1", true), "dedicated", taint_effect::NO_SCHEDULE),
                tainted(node("n2", true), "dedicated", taint_effect::NO_SCHEDULE),
            ],
            pods: |ds| vec![daemon_pod(ds, "agent-a", "n1", 0, true)],
            want: vec![
                "status desired=0 current=0 misscheduled=1 ready=0 available=0 unavailable=0 updated=0 observed=1",
            ],
        },
        Case {
            name: "an untolerated NoExecute taint evicts",
            edit: |_| {},
            nodes: vec![tainted(
                node("n1", true),
                "dedicated",
                taint_effect::NO_EXECUTE,
            )],
            pods: |ds| vec![daemon_pod(ds, "agent-a", "n1", 0, true)],
            want: vec![
                "delete agent-a",
                "Normal SuccessfulDelete: Deleted pod: agent-a",
                "status desired=0 current=0 misscheduled=1 ready=0 available=0 unavailable=0 updated=0 observed=1",
            ],
        },
        Case {
            name: "node problems are tolerated",
            edit: |_| {},
            nodes: vec![tainted(
                node("n1", true),
                node_taints::MEMORY_PRESSURE,
                taint_effect::NO_SCHEDULE,
            )],
            pods: none,
            want: vec![
                "create agent:v1 on n1",
                CREATED,
                "status desired=1 current=0 misscheduled=0 ready=0 available=0 unavailable=1 updated=0 observed=1",
            ],
        },
        Case {
            name: "duplicates go, the oldest stays",
            edit: |_| {},
            nodes: vec![node("n1", true)],
            pods: |ds| {
                vec![
                    daemon_pod(ds, "agent-b", "n1", 5, true),
                    daemon_pod(ds, "agent-a", "n1", 1, true),
                    daemon_pod(ds, "agent-c", "n1", 9, false),
                ]
            },
            want: vec![
                "delete agent-b",
                "Normal SuccessfulDelete: Deleted pod: agent-b",
                "delete agent-c",
                "Normal SuccessfulDelete: Deleted pod: agent-c",
                "status desired=1 current=1 misscheduled=0 ready=1 available=1 unavailable=0 updated=1 observed=1",
            ],
        },
        Case {
            name: "a terminating pod holds its node until it is gone",
            edit: |_| {},
            nodes: vec![node("n1", true)],
            pods: |ds| {
                let mut pod = daemon_pod(ds, "agent-a", "n1", 0, true);
                pod.metadata.deletion_timestamp = time(50);
                vec![pod]
            },
            want: vec![
                "status desired=1 current=1 misscheduled=0 ready=1 available=1 unavailable=0 updated=1 observed=1",
            ],
        },
        Case {
            name: "nodes being deleted are left alone",
            edit: |_| {},
            nodes: vec![{
                let mut n = node("n1", true);
                n.metadata.deletion_timestamp = time(0);
                n
            }],
            pods: none,
            want: vec![
                "status desired=0 current=0 misscheduled=0 ready=0 available=0 unavailable=0 updated=0 observed=1",
            ],
        },
        Case {
            name: "a pod that does not fit is not placed",
            edit: |ds| {
                ds.spec.template.spec.containers[0].resources.requests =
                    BTreeMap::from([("memory".to_owned(), Quantity("512Mi".into()))]);
            },
            nodes: vec![{
                let mut n = node("n1", true);
                n.status.allocatable =
                    BTreeMap::from([("memory".to_owned(), Quantity("256Mi".into()))]);
                n
            }],
            pods: none,
            want: vec![
                "Warning FailedPlacement: failed to place pod on \"n1\": Insufficient memory",
                "status desired=1 current=0 misscheduled=0 ready=0 available=0 unavailable=1 updated=0 observed=1",
            ],
        },
    ];
    for case in cases {
        let mut ds = daemon_set("agent:v1");
        (case.edit)(&mut ds);
        let pods = (case.pods)(&ds);
        let cache = cache_of(&ds, case.nodes, pods);
        let action = DaemonSetController.reconcile(&ds_key(), &cache, at(100));
        assert_eq!(summary(&action.commands), case.want, "{}", case.name);
    }
}

#[test]
fn created_pods_are_bound_labelled_owned_and_tolerate_node_problems() {
    let mut ds = daemon_set("agent:v1");
    ds.spec.template.spec.containers[0].ports = vec![ContainerPort {
        container_port: 9100,
        host_port: 9100,
        ..ContainerPort::default()
    }];
    let cache = cache_of(&ds, vec![node("n1", true)], vec![]);
    let action = DaemonSetController.reconcile(&ds_key(), &cache, at(0));
    let Command::Create(object) = &action.commands[0] else {
        panic!("{:?}", action.commands);
    };
    let Object::Pod(pod) = object.as_ref() else {
        panic!("{object:?}");
    };
    let hash = pods::template_hash(&ds.spec.template);
    assert!(pod.metadata.name.starts_with("agent-"));
    assert_eq!(pod.metadata.namespace, "default");
    assert_eq!(pod.spec.node_name, "n1");
    assert_eq!(
        pod.metadata.labels,
        BTreeMap::from([
            ("app".to_owned(), "agent".to_owned()),
            (REVISION_HASH_LABEL.to_owned(), hash),
            (TEMPLATE_GENERATION_LABEL.to_owned(), "1".to_owned()),
        ])
    );
    assert_eq!(
        pod.metadata.owner_references,
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            name: "agent".into(),
            uid: "ds-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    );
    let tolerated: Vec<(&str, &str, &str)> = pod
        .spec
        .tolerations
        .iter()
        .map(|t| (t.key.as_str(), t.operator.as_str(), t.effect.as_str()))
        .collect();
    assert_eq!(
        tolerated,
        vec![
            (node_taints::NOT_READY, "Exists", taint_effect::NO_EXECUTE),
            (node_taints::UNREACHABLE, "Exists", taint_effect::NO_EXECUTE),
            (
                node_taints::DISK_PRESSURE,
                "Exists",
                taint_effect::NO_SCHEDULE
            ),
            (
                node_taints::MEMORY_PRESSURE,
                "Exists",
                taint_effect::NO_SCHEDULE
            ),
            (
                node_taints::PID_PRESSURE,
                "Exists",
                taint_effect::NO_SCHEDULE
            ),
            (
                node_taints::UNSCHEDULABLE,
                "Exists",
                taint_effect::NO_SCHEDULE
            ),
        ]
    );
    assert_eq!(pod.spec.containers[0].ports[0].host_port, 9100);
}

#[test]
fn a_stale_cache_repeats_the_same_pod_name_instead_of_adding_a_pod() {
    let ds = daemon_set("agent:v1");
    let cache = cache_of(&ds, vec![node("n1", true)], vec![]);
    let first = DaemonSetController.reconcile(&ds_key(), &cache, at(0));
    let again = DaemonSetController.reconcile(&ds_key(), &cache, at(1));
    assert_eq!(first.commands[0], again.commands[0]);
}

#[test]
fn failed_pods_are_replaced_after_the_retry_delay() {
    let ds = daemon_set("agent:v1");
    let mut failed = daemon_pod(&ds, "agent-a", "n1", 0, false);
    failed.status.phase = pod_phase::FAILED.into();
    failed.status.conditions.push(PodCondition {
        type_: pod_condition::READY.into(),
        status: condition_status::FALSE.into(),
        last_transition_time: time(100),
        ..PodCondition::default()
    });
    let cache = cache_of(&ds, vec![node("n1", true)], vec![failed]);
    let status = "status desired=1 current=1 misscheduled=0 ready=0 available=0 unavailable=1 updated=1 observed=1";

    let early = DaemonSetController.reconcile(&ds_key(), &cache, at(104));
    assert_eq!(summary(&early.commands), vec![status]);
    assert_eq!(early.requeue_after, Some(Duration::from_secs(6)));

    let late = DaemonSetController.reconcile(&ds_key(), &cache, at(110));
    assert_eq!(
        summary(&late.commands),
        vec![
            "Warning FailedDaemonPod: Found failed daemon pod default/agent-a on node n1, will try to kill it",
            "delete agent-a",
            "Normal SuccessfulDelete: Deleted pod: agent-a",
            status,
        ]
    );
}

#[test]
fn status_counts_readiness_availability_and_asks_to_look_again() {
    let mut ds = daemon_set("agent:v1");
    ds.spec.min_ready_seconds = 30;
    let old = updated(ds.clone(), "agent:v0");
    let pods = vec![
        daemon_pod(&ds, "agent-a", "n1", 0, true), // available at 30
        daemon_pod(&ds, "agent-b", "n2", 80, true), // ready, available at 110
        daemon_pod(&ds, "agent-c", "n3", 0, false), // not ready
        daemon_pod(&old, "agent-d", "n4", 0, true), // old template, ready
        daemon_pod(&ds, "agent-e", "n5", 0, true), // offline node: not ready
    ];
    let nodes = vec![
        node("n1", true),
        node("n2", true),
        node("n3", true),
        node("n4", true),
        node("n5", false),
        node("n6", true),
    ];
    ds.spec.update_strategy.type_ = "OnDelete".into();
    let cache = cache_of(&ds, nodes, pods);
    let action = DaemonSetController.reconcile(&ds_key(), &cache, at(100));
    assert_eq!(
        summary(&action.commands),
        vec![
            "create agent:v1 on n6",
            CREATED,
            "status desired=6 current=5 misscheduled=0 ready=3 available=2 unavailable=4 updated=4 observed=1",
        ]
    );
    assert_eq!(action.requeue_after, Some(Duration::from_secs(10)));
}

#[test]
fn selecting_every_pod_is_refused() {
    let mut ds = daemon_set("agent:v1");
    ds.spec.selector = Some(LabelSelector::default());
    let cache = cache_of(&ds, vec![node("n1", true)], vec![]);
    let action = DaemonSetController.reconcile(&ds_key(), &cache, at(0));
    assert_eq!(
        summary(&action.commands),
        vec![
            "Warning SelectingAll: This daemon set is selecting all pods. A non-empty selector is required."
        ]
    );
}

#[test]
fn keys_follow_owners_and_nodes_touch_every_daemon_set() {
    let ds = daemon_set("agent:v1");
    let mut other = daemon_set("agent:v1");
    other.metadata.name = "logs".into();
    other.metadata.namespace = "kube-system".into();
    let cache = cache_of(&ds, vec![], vec![]);
    let mut cache = cache;
    cache.apply(Object::DaemonSet(other));
    let pod = daemon_pod(&ds, "agent-a", "n1", 0, true);
    let mut orphan = pod.clone();
    orphan.metadata.owner_references.clear();
    let cases = vec![
        (Object::DaemonSet(ds.clone()), vec![ds_key()]),
        (Object::Pod(pod), vec![ds_key()]),
        (Object::Pod(orphan), vec![]),
        (
            Object::Node(node("n1", true)),
            vec![
                ObjectKey::new("DaemonSet", "default", "agent"),
                ObjectKey::new("DaemonSet", "kube-system", "logs"),
            ],
        ),
    ];
    for (object, want) in cases {
        assert_eq!(
            DaemonSetController.keys_for(&object, &cache),
            want,
            "{object:?}"
        );
    }
}

/// A cluster in miniature: the store (as the cache), the controller, and
/// the agents of the devices that are online.
struct World {
    cache: Cache,
    clock: u64,
}

impl World {
    fn new(ds: &DaemonSet, nodes: Vec<Node>) -> Self {
        World {
            cache: cache_of(ds, nodes, vec![]),
            clock: 0,
        }
    }

    fn ds(&self) -> DaemonSet {
        match self.cache.get(&ds_key()) {
            Some(Object::DaemonSet(ds)) => ds.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// One reconcile, its commands carried out; answers their summary.
    fn reconcile(&mut self) -> Vec<String> {
        self.clock += 1;
        let action = DaemonSetController.reconcile(&ds_key(), &self.cache, at(self.clock));
        for command in &action.commands {
            self.carry_out(command);
        }
        summary(&action.commands)
    }

    fn carry_out(&mut self, command: &Command) {
        match command {
            Command::Create(object) => {
                let Object::Pod(mut pod) = object.as_ref().clone() else {
                    panic!("{object:?}");
                };
                pod.metadata.uid = format!("uid-{}", pod.metadata.name);
                pod.metadata.creation_timestamp = time(self.clock);
                pod.status.phase = pod_phase::PENDING.into();
                self.cache.apply(Object::Pod(pod));
            }
            Command::Delete { key, .. } => {
                let Some(Object::Pod(pod)) = self.cache.get(key) else {
                    panic!("no {key:?}");
                };
                // Bound pods are deleted gracefully: their device finishes the deletion.
                let mut pod = pod.clone();
                pod.metadata.deletion_timestamp = time(self.clock);
                self.cache.apply(Object::Pod(pod));
            }
            Command::UpdateStatus(object) => self.cache.apply(object.as_ref().clone()),
            Command::Event { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The agents of online devices sync: they stop and remove the pods
    /// being deleted and start the others, which become ready.
    fn agents_sync(&mut self) {
        let online: Vec<String> = self
            .cache
            .nodes()
            .filter(|n| n.is_ready())
            .map(|n| n.metadata.name.clone())
            .collect();
        for node in online {
            let pods: Vec<Pod> = self.cache.pods_on_node(&node).cloned().collect();
            for mut pod in pods {
                if pod.metadata.deletion_timestamp.is_some() {
                    self.cache
                        .remove(&ObjectKey::new("Pod", "default", &pod.metadata.name));
                } else if !pod.is_ready() {
                    pod.status.phase = pod_phase::RUNNING.into();
                    pod.status.conditions = vec![PodCondition {
                        type_: pod_condition::READY.into(),
                        status: condition_status::TRUE.into(),
                        last_transition_time: time(self.clock),
                        ..PodCondition::default()
                    }];
                    self.cache.apply(Object::Pod(pod));
                }
            }
        }
    }

    fn set_online(&mut self, name: &str, online: bool) {
        self.cache.apply(Object::Node(node(name, online)));
    }

    fn update(&mut self, image: &str) {
        let ds = updated(self.ds(), image);
        self.cache.apply(Object::DaemonSet(ds));
    }

    /// The images of the pods on `node` that are not being deleted.
    fn images_on(&self, node: &str) -> Vec<String> {
        self.cache
            .pods_on_node(node)
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| image_of(p).to_owned())
            .collect()
    }

    /// Online nodes without a ready pod that is not being deleted.
    fn unavailable_online(&self) -> usize {
        self.cache
            .nodes()
            .filter(|n| n.is_ready())
            .filter(|n| {
                !self
                    .cache
                    .pods_on_node(&n.metadata.name)
                    .any(|p| p.metadata.deletion_timestamp.is_none() && p.is_ready())
            })
            .count()
    }

    fn status(&self) -> String {
        let ds = self.ds();
        summary(&[Command::UpdateStatus(Box::new(Object::DaemonSet(ds)))]).remove(0)
    }

    /// Reconciles and syncs agents until nothing changes; answers how many
    /// rounds it took, checking after every reconcile that no more than
    /// `max_unavailable` online nodes are without a serving pod.
    fn settle(&mut self, max_unavailable: usize) -> usize {
        for round in 1..=50 {
            let commands = self.reconcile();
            assert!(
                self.unavailable_online() <= max_unavailable,
                "round {round}: {} online nodes unavailable after {commands:?}",
                self.unavailable_online()
            );
            let before = format!("{:?}", self.cache.pods().collect::<Vec<_>>());
            self.agents_sync();
            let after = format!("{:?}", self.cache.pods().collect::<Vec<_>>());
            if commands.iter().all(|c| c.starts_with("status")) && before == after {
                return round;
            }
        }
        panic!("no convergence in 50 rounds");
    }
}

#[test]
fn rolling_update_replaces_one_pod_at_a_time() {
    let nodes: Vec<Node> = (1..=4).map(|i| node(&format!("n{i}"), true)).collect();
    let mut world = World::new(&daemon_set("agent:v1"), nodes);
    world.settle(4);
    world.update("agent:v2");

    // First step: one old pod goes, none else.
    let first = world.reconcile();
    assert_eq!(
        first.iter().filter(|c| c.starts_with("delete")).count(),
        1,
        "{first:?}"
    );
    assert!(!first.iter().any(|c| c.starts_with("create")), "{first:?}");
    world.agents_sync();
    // Next: its replacement comes, nothing else goes while it is not ready.
    let second = world.reconcile();
    assert_eq!(
        second
            .iter()
            .filter(|c| c.starts_with("create"))
            .collect::<Vec<_>>(),
        vec!["create agent:v2 on n1"]
    );
    assert!(
        !second.iter().any(|c| c.starts_with("delete")),
        "{second:?}"
    );

    world.agents_sync();
    world.settle(1);
    for i in 1..=4 {
        assert_eq!(world.images_on(&format!("n{i}")), vec!["agent:v2"]);
    }
    assert_eq!(
        world.status(),
        "status desired=4 current=4 misscheduled=0 ready=4 available=4 unavailable=0 updated=4 observed=2"
    );
}

#[test]
fn rolling_update_takes_a_percentage_of_the_desired_nodes() {
    let nodes: Vec<Node> = (1..=4).map(|i| node(&format!("n{i}"), true)).collect();
    let mut ds = daemon_set("agent:v1");
    ds.spec.update_strategy.rolling_update = Some(RollingUpdateDaemonSet {
        max_unavailable: Some(IntOrString::String("50%".into())),
        max_surge: Some(IntOrString::Int(0)),
    });
    let mut world = World::new(&ds, nodes);
    world.settle(4);
    world.update("agent:v2");
    let first = world.reconcile();
    assert_eq!(
        first.iter().filter(|c| c.starts_with("delete")).count(),
        2,
        "{first:?}"
    );
    world.agents_sync();
    world.settle(2);
    for i in 1..=4 {
        assert_eq!(world.images_on(&format!("n{i}")), vec!["agent:v2"]);
    }
}

#[test]
fn on_delete_waits_for_the_user_to_delete_old_pods() {
    let nodes: Vec<Node> = (1..=2).map(|i| node(&format!("n{i}"), true)).collect();
    let mut ds = daemon_set("agent:v1");
    ds.spec.update_strategy.type_ = "OnDelete".into();
    ds.spec.update_strategy.rolling_update = None;
    let mut world = World::new(&ds, nodes);
    world.settle(2);
    world.update("agent:v2");
    assert_eq!(
        world.reconcile(),
        vec![
            "status desired=2 current=2 misscheduled=0 ready=2 available=2 unavailable=0 updated=0 observed=2"
        ]
    );
    assert_eq!(world.reconcile(), Vec::<String>::new());

    // The user deletes n1's pod; its replacement has the new template.
    let old = world
        .cache
        .pods_on_node("n1")
        .next()
        .expect("a pod on n1")
        .clone();
    world.carry_out(&Command::Delete {
        key: ObjectKey::new("Pod", "default", &old.metadata.name),
        uid: Some(old.metadata.uid.clone()),
        propagation: Propagation::Background,
    });
    world.agents_sync();
    world.settle(2);
    assert_eq!(world.images_on("n1"), vec!["agent:v2"]);
    assert_eq!(world.images_on("n2"), vec!["agent:v1"]);
    assert_eq!(
        world.status(),
        "status desired=2 current=2 misscheduled=0 ready=2 available=2 unavailable=0 updated=1 observed=2"
    );
}

#[test]
fn offline_devices_never_stall_a_rollout_and_converge_when_back() {
    let nodes: Vec<Node> = (1..=5).map(|i| node(&format!("n{i}"), true)).collect();
    let mut world = World::new(&daemon_set("agent:v1"), nodes);
    world.settle(5);
    world.set_online("n4", false);
    world.set_online("n5", false);
    world.update("agent:v2");

    // The offline devices' old pods are replaced at once, outside the
    // budget, and one online node starts too.
    let first = world.reconcile();
    let deletes: Vec<&String> = first.iter().filter(|c| c.starts_with("delete")).collect();
    assert_eq!(deletes.len(), 3, "{first:?}");
    assert_eq!(
        first.last().map(String::as_str),
        Some(
            "status desired=5 current=5 misscheduled=0 ready=3 available=3 unavailable=2 updated=0 observed=2"
        )
    );
    world.agents_sync();

    // The online nodes finish without the offline ones coming back.
    world.settle(1);
    for i in 1..=3 {
        assert_eq!(world.images_on(&format!("n{i}")), vec!["agent:v2"], "n{i}");
    }
    // The offline devices' old pods wait, terminating, for their devices.
    for name in ["n4", "n5"] {
        assert_eq!(world.images_on(name), Vec::<String>::new());
        assert_eq!(world.cache.pods_on_node(name).count(), 1);
    }
    assert_eq!(
        world.status(),
        "status desired=5 current=5 misscheduled=0 ready=3 available=3 unavailable=2 updated=3 observed=2"
    );

    // They reconnect: the old pod goes, the new one comes (both devices
    // are without a pod until then, which no rollout step caused).
    world.set_online("n4", true);
    world.set_online("n5", true);
    world.agents_sync();
    world.settle(2);
    for i in 1..=5 {
        assert_eq!(world.images_on(&format!("n{i}")), vec!["agent:v2"], "n{i}");
    }
    assert_eq!(
        world.status(),
        "status desired=5 current=5 misscheduled=0 ready=5 available=5 unavailable=0 updated=5 observed=2"
    );
}

#[test]
fn a_device_that_goes_offline_mid_rollout_does_not_hold_the_budget() {
    let nodes: Vec<Node> = (1..=3).map(|i| node(&format!("n{i}"), true)).collect();
    let mut world = World::new(&daemon_set("agent:v1"), nodes);
    world.settle(3);
    world.update("agent:v2");
    // n1's old pod is deleted; n1 drops off before it finishes.
    let on_n1 = world
        .cache
        .pods_on_node("n1")
        .next()
        .expect("a pod on n1")
        .metadata
        .name
        .clone();
    let first = world.reconcile();
    assert!(first.contains(&format!("delete {on_n1}")), "{first:?}");
    world.set_online("n1", false);
    world.agents_sync();
    // The rollout moves on to n2 and n3 regardless.
    world.settle(1);
    assert_eq!(world.images_on("n2"), vec!["agent:v2"]);
    assert_eq!(world.images_on("n3"), vec!["agent:v2"]);
    world.set_online("n1", true);
    world.agents_sync();
    world.settle(1);
    assert_eq!(world.images_on("n1"), vec!["agent:v2"]);
}
