//! The scheduler as the runtime drives it: nodes and pods in, decisions out.

use std::time::Instant;

use flotilla_shared::model::{
    Affinity, Container, ContainerImage, ContainerPort, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSchedulingGate, PreferredSchedulingTerm,
    Taint, Time, Toleration, node_labels, node_taints, pod_phase,
};
use flotilla_shared::quantity::Quantity;

use super::fixtures::{self, node, pod};
use super::*;

fn scheduler_with(nodes: &[Node]) -> Scheduler {
    let mut scheduler = Scheduler::new(Config::default());
    for node in nodes {
        scheduler.node_changed(node);
    }
    scheduler
}

fn decide(scheduler: &mut Scheduler, pods: &[Pod]) -> Vec<Decision> {
    let pending: Vec<&Pod> = pods.iter().collect();
    scheduler.schedule(&pending)
}

/// What a decision says, shortly: the node, or the message.
fn outcome(decision: &Decision) -> String {
    match decision {
        Decision::Bind { node, .. } => format!("bind {node}"),
        Decision::Unschedulable { message, .. } => message.clone(),
    }
}

fn outcomes(scheduler: &mut Scheduler, pods: &[Pod]) -> Vec<String> {
    decide(scheduler, pods).iter().map(outcome).collect()
}

fn bound(mut pod: Pod, node: &str) -> Pod {
    pod.spec.node_name = node.to_owned();
    pod.status.phase = pod_phase::RUNNING.to_owned();
    pod
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: effect.to_owned(),
        time_added: None,
    }
}

fn toleration(key: &str, operator: &str, effect: &str) -> Toleration {
    Toleration {
        key: key.to_owned(),
        operator: operator.to_owned(),
        effect: effect.to_owned(),
        ..Toleration::default()
    }
}

fn with_ready(mut node: Node, status: &str) -> Node {
    node.status.conditions[0].status = status.to_owned();
    node
}

fn with_taints(mut node: Node, taints: Vec<Taint>) -> Node {
    node.spec.taints = taints;
    node
}

fn with_labels(mut node: Node, labels: &[(&str, &str)]) -> Node {
    for (k, v) in labels {
        node.metadata
            .labels
            .insert((*k).to_owned(), (*v).to_owned());
    }
    node
}

fn with_tolerations(mut pod: Pod, tolerations: Vec<Toleration>) -> Pod {
    pod.spec.tolerations = tolerations;
    pod
}

fn with_host_port(mut pod: Pod, port: i32, protocol: &str) -> Pod {
    pod.spec.containers[0].ports.push(ContainerPort {
        host_port: port,
        container_port: port,
        protocol: protocol.to_owned(),
        ..ContainerPort::default()
    });
    pod
}

fn with_request(mut pod: Pod, resource: &str, amount: &str) -> Pod {
    pod.spec.containers[0]
        .resources
        .requests
        .insert(resource.to_owned(), Quantity(amount.to_owned()));
    pod
}

fn with_node_affinity(mut pod: Pod, affinity: NodeAffinity) -> Pod {
    pod.spec.affinity = Some(Affinity {
        node_affinity: Some(affinity),
        ..Affinity::default()
    });
    pod
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn required(terms: Vec<NodeSelectorTerm>) -> NodeAffinity {
    NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: terms,
        }),
        ..NodeAffinity::default()
    }
}

fn pinned_to(pod: Pod, node: &str) -> Pod {
    with_node_affinity(
        pod,
        required(vec![NodeSelectorTerm {
            match_fields: vec![requirement("metadata.name", "In", &[node])],
            ..NodeSelectorTerm::default()
        }]),
    )
}

/// One filter case: the nodes (and pods already bound), the pod, what happens.
struct Case {
    name: &'static str,
    nodes: Vec<Node>,
    bound: Vec<Pod>,
    platforms: Vec<(&'static str, Vec<&'static str>)>,
    pod: Pod,
    expected: &'static str,
}

impl Case {
    fn new(name: &'static str, nodes: Vec<Node>, pod: Pod, expected: &'static str) -> Self {
        Case {
            name,
            nodes,
            bound: vec![],
            platforms: vec![],
            pod,
            expected,
        }
    }

    fn with_bound(mut self, bound: Vec<Pod>) -> Self {
        self.bound = bound;
        self
    }

    fn with_platforms(mut self, platforms: Vec<(&'static str, Vec<&'static str>)>) -> Self {
        self.platforms = platforms;
        self
    }
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let mut scheduler = scheduler_with(&case.nodes);
        for pod in &case.bound {
            scheduler.pod_changed(pod);
        }
        for (image, archs) in &case.platforms {
            scheduler.set_image_platforms(image, archs.iter().map(|a| (*a).to_owned()).collect());
        }
        let got = outcomes(&mut scheduler, std::slice::from_ref(&case.pod));
        assert_eq!(got, vec![case.expected.to_owned()], "{}", case.name);
    }
}

fn small() -> Node {
    node("a", "1", "1Gi")
}

fn plain_pod() -> Pod {
    pod("default", "p", "100m", "64Mi")
}

#[test]
fn node_unschedulable_filter_refuses_cordoned_nodes_unless_tolerated() {
    let mut cordoned = small();
    cordoned.spec.unschedulable = true;
    run(vec![
        Case::new("schedulable node", vec![small()], plain_pod(), "bind a"),
        Case::new(
            "cordoned node",
            vec![cordoned.clone()],
            plain_pod(),
            "0/1 nodes are available: 1 node(s) were unschedulable.",
        ),
        Case::new(
            "pod tolerating the unschedulable taint",
            vec![cordoned.clone()],
            with_tolerations(
                plain_pod(),
                vec![toleration(
                    node_taints::UNSCHEDULABLE,
                    "Exists",
                    "NoSchedule",
                )],
            ),
            "bind a",
        ),
        Case::new(
            "tolerating another effect is not enough",
            vec![cordoned],
            with_tolerations(
                plain_pod(),
                vec![toleration(
                    node_taints::UNSCHEDULABLE,
                    "Exists",
                    "NoExecute",
                )],
            ),
            "0/1 nodes are available: 1 node(s) were unschedulable.",
        ),
    ]);
}

#[test]
fn readiness_filter_refuses_nodes_that_are_not_ready_with_the_lifecycle_taint() {
    run(vec![
        Case::new("ready", vec![small()], plain_pod(), "bind a"),
        Case::new(
            "ready false",
            vec![with_ready(small(), "False")],
            plain_pod(),
            "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
        ),
        Case::new(
            "ready unknown",
            vec![with_ready(small(), "Unknown")],
            plain_pod(),
            "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.",
        ),
        Case::new(
            "a pod tolerating not-ready may go there",
            vec![with_ready(small(), "False")],
            with_tolerations(
                plain_pod(),
                vec![toleration(node_taints::NOT_READY, "Exists", "")],
            ),
            "bind a",
        ),
    ]);
}

#[test]
fn taint_toleration_filter_refuses_untolerated_no_schedule_and_no_execute_taints() {
    let dedicated = || with_taints(small(), vec![taint("dedicated", "edge", "NoSchedule")]);
    run(vec![
        Case::new(
            "untolerated NoSchedule",
            vec![dedicated()],
            plain_pod(),
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: edge}.",
        ),
        Case::new(
            "untolerated NoExecute",
            vec![with_taints(small(), vec![taint("evict", "", "NoExecute")])],
            plain_pod(),
            "0/1 nodes are available: 1 node(s) had untolerated taint {evict: }.",
        ),
        Case::new(
            "the first untolerated taint is named",
            vec![with_taints(
                small(),
                vec![
                    taint("dedicated", "edge", "NoSchedule"),
                    taint("battery", "low", "NoSchedule"),
                ],
            )],
            with_tolerations(plain_pod(), vec![toleration("dedicated", "Exists", "")]),
            "0/1 nodes are available: 1 node(s) had untolerated taint {battery: low}.",
        ),
        Case::new(
            "tolerated",
            vec![dedicated()],
            with_tolerations(
                plain_pod(),
                vec![toleration("dedicated", "Exists", "NoSchedule")],
            ),
            "bind a",
        ),
        Case::new(
            "PreferNoSchedule does not filter",
            vec![with_taints(
                small(),
                vec![taint("battery", "low", "PreferNoSchedule")],
            )],
            plain_pod(),
            "bind a",
        ),
    ]);
}

#[test]
fn node_affinity_filter_applies_node_selector_and_required_terms() {
    let hall = || with_labels(node("a", "1", "1Gi"), &[("zone", "hall")]);
    let yard = || with_labels(node("b", "1", "1Gi"), &[("zone", "yard")]);
    let mut selecting = plain_pod();
    selecting
        .spec
        .node_selector
        .insert("zone".to_owned(), "yard".to_owned());
    let mut selecting_nothing = plain_pod();
    selecting_nothing
        .spec
        .node_selector
        .insert("zone".to_owned(), "roof".to_owned());
    let in_hall = with_node_affinity(
        plain_pod(),
        required(vec![NodeSelectorTerm {
            match_expressions: vec![requirement("zone", "In", &["hall"])],
            ..NodeSelectorTerm::default()
        }]),
    );
    let not_anywhere = with_node_affinity(
        plain_pod(),
        required(vec![NodeSelectorTerm {
            match_expressions: vec![requirement("zone", "DoesNotExist", &[])],
            ..NodeSelectorTerm::default()
        }]),
    );
    run(vec![
        Case::new(
            "nodeSelector picks the matching node",
            vec![hall(), yard()],
            selecting,
            "bind b",
        ),
        Case::new(
            "nodeSelector matching no node",
            vec![hall(), yard()],
            selecting_nothing,
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
        ),
        Case::new(
            "required terms pick the matching node",
            vec![hall(), yard()],
            in_hall,
            "bind a",
        ),
        Case::new(
            "required terms matching no node",
            vec![hall(), yard()],
            not_anywhere,
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
        ),
    ]);
}

#[test]
fn node_name_fields_narrow_the_search_like_kubes_prefilter() {
    let three = || {
        vec![
            node("a", "1", "1Gi"),
            node("b", "1", "1Gi"),
            node("c", "1", "1Gi"),
        ]
    };
    let conflicting = with_node_affinity(
        plain_pod(),
        required(vec![NodeSelectorTerm {
            match_fields: vec![
                requirement("metadata.name", "In", &["a"]),
                requirement("metadata.name", "In", &["b"]),
            ],
            ..NodeSelectorTerm::default()
        }]),
    );
    run(vec![
        Case::new(
            "daemonset pod goes to its node",
            three(),
            pinned_to(plain_pod(), "b"),
            "bind b",
        ),
        Case::new(
            "its node is full",
            three(),
            pinned_to(pod("default", "p", "2", ""), "b"),
            "0/3 nodes are available: 1 Insufficient cpu, \
             2 node(s) didn't satisfy plugin(s) [NodeAffinity].",
        ),
        Case::new(
            "its node does not exist",
            three(),
            pinned_to(plain_pod(), "z"),
            "0/3 nodes are available: 3 node(s) didn't satisfy plugin(s) [NodeAffinity].",
        ),
        Case::new(
            "conflicting names",
            three(),
            conflicting,
            "0/3 nodes are available: pod affinity terms conflict.",
        ),
    ]);
}

#[test]
fn image_architecture_filter_keeps_pods_off_nodes_their_images_do_not_exist_for() {
    let arm = || node("a", "1", "1Gi");
    let amd = || {
        let mut node = with_labels(node("b", "1", "1Gi"), &[(node_labels::ARCH, "amd64")]);
        node.status.node_info.architecture = "amd64".to_owned();
        node
    };
    run(vec![
        Case::new(
            "unknown images do not constrain",
            vec![arm()],
            plain_pod(),
            "bind a",
        ),
        Case::new(
            "an image for the node's arch",
            vec![arm()],
            plain_pod(),
            "bind a",
        )
        .with_platforms(vec![(fixtures::IMAGE, vec!["amd64", "arm64"])]),
        Case::new(
            "an image for another arch only",
            vec![arm()],
            plain_pod(),
            "0/1 nodes are available: 1 node(s) didn't match the architectures of Pod's images.",
        )
        .with_platforms(vec![(fixtures::IMAGE, vec!["amd64"])]),
        Case::new(
            "a mixed fleet sends the pod to the right arch",
            vec![arm(), amd()],
            plain_pod(),
            "bind b",
        )
        .with_platforms(vec![(fixtures::IMAGE, vec!["amd64"])]),
        Case::new(
            "the names are normalized like pods name them",
            vec![arm()],
            {
                let mut pod = plain_pod();
                pod.spec.containers[0].image = "registry.local/tool".to_owned();
                pod
            },
            "0/1 nodes are available: 1 node(s) didn't match the architectures of Pod's images.",
        )
        .with_platforms(vec![("registry.local/tool:latest", vec!["riscv64"])]),
        Case::new(
            "an empty list forgets the image",
            vec![arm()],
            plain_pod(),
            "bind a",
        )
        .with_platforms(vec![
            (fixtures::IMAGE, vec!["amd64"]),
            (fixtures::IMAGE, vec![]),
        ]),
    ]);
}

#[test]
fn node_ports_filter_refuses_nodes_where_the_host_port_is_taken() {
    let holder = || {
        bound(
            with_host_port(pod("default", "holder", "", ""), 80, ""),
            "a",
        )
    };
    run(vec![
        Case::new(
            "taken on the only node",
            vec![small()],
            with_host_port(plain_pod(), 80, "TCP"),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.",
        )
        .with_bound(vec![holder()]),
        Case::new(
            "another node is free",
            vec![small(), node("b", "1", "1Gi")],
            with_host_port(plain_pod(), 80, ""),
            "bind b",
        )
        .with_bound(vec![holder()]),
        Case::new("another protocol", vec![small()], with_host_port(plain_pod(), 80, "UDP"), "bind a")
            .with_bound(vec![holder()]),
        Case::new("another port", vec![small()], with_host_port(plain_pod(), 81, ""), "bind a")
            .with_bound(vec![holder()]),
    ]);
}

#[test]
fn resources_fit_filter_checks_requests_against_what_is_left() {
    let mut full_of_pods = small();
    full_of_pods
        .status
        .allocatable
        .insert("pods".to_owned(), Quantity("1".to_owned()));
    let mut gpio_node = small();
    gpio_node
        .status
        .allocatable
        .insert("example.com/gpio".to_owned(), Quantity("1".to_owned()));
    let mut finished = bound(pod("default", "done", "1", ""), "a");
    finished.status.phase = pod_phase::SUCCEEDED.to_owned();
    let mut big_init = plain_pod();
    big_init.spec.init_containers.push(Container {
        name: "migrate".to_owned(),
        resources: flotilla_shared::model::ResourceRequirements {
            requests: [("cpu".to_owned(), Quantity("2".to_owned()))].into(),
            ..Default::default()
        },
        ..Container::default()
    });
    run(vec![
        Case::new(
            "fits",
            vec![small()],
            pod("default", "p", "1", "1Gi"),
            "bind a",
        ),
        Case::new(
            "too much cpu",
            vec![small()],
            pod("default", "p", "1001m", ""),
            "0/1 nodes are available: 1 Insufficient cpu.",
        ),
        Case::new(
            "too much cpu and memory: both reasons",
            vec![small()],
            pod("default", "p", "2", "2Gi"),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.",
        ),
        Case::new(
            "what bound pods request is taken",
            vec![small()],
            pod("default", "p", "600m", ""),
            "0/1 nodes are available: 1 Insufficient cpu.",
        )
        .with_bound(vec![bound(pod("default", "q", "500m", ""), "a")]),
        Case::new(
            "finished pods free their requests",
            vec![small()],
            pod("default", "p", "1", ""),
            "bind a",
        )
        .with_bound(vec![finished]),
        Case::new(
            "too many pods",
            vec![full_of_pods],
            pod("default", "p", "", ""),
            "0/1 nodes are available: 1 Too many pods.",
        )
        .with_bound(vec![bound(pod("default", "q", "", ""), "a")]),
        Case::new(
            "extended resources",
            vec![gpio_node.clone()],
            with_request(plain_pod(), "example.com/gpio", "2"),
            "0/1 nodes are available: 1 Insufficient example.com/gpio.",
        ),
        Case::new(
            "extended resources that fit",
            vec![gpio_node],
            with_request(plain_pod(), "example.com/gpio", "1"),
            "bind a",
        ),
        Case::new(
            "an init container larger than the node",
            vec![small()],
            big_init,
            "0/1 nodes are available: 1 Insufficient cpu.",
        ),
    ]);
}

#[test]
fn failed_scheduling_message_counts_every_reason_as_kube_scheduler_does() {
    let nodes: Vec<Node> = (0..5)
        .map(|i| {
            let node = node(&format!("n{i}"), "4", "1Gi");
            if i < 2 {
                with_ready(node, "Unknown")
            } else {
                node
            }
        })
        .collect();
    let mut scheduler = scheduler_with(&nodes);
    assert_eq!(
        outcomes(&mut scheduler, &[pod("default", "p", "1", "2Gi")]),
        ["0/5 nodes are available: 2 node(s) had untolerated taint \
          {node.kubernetes.io/unreachable: }, 3 Insufficient memory."]
    );
    let nodes = [
        node("a", "1", "1Gi"),
        with_taints(
            node("b", "8", "8Gi"),
            vec![taint("dedicated", "ml", "NoSchedule")],
        ),
        node("c", "1", "8Gi"),
    ];
    let mut scheduler = scheduler_with(&nodes);
    assert_eq!(
        outcomes(&mut scheduler, &[pod("default", "p", "2", "2Gi")]),
        [
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint \
          {dedicated: ml}, 2 Insufficient cpu."
        ]
    );
    let mut empty = scheduler_with(&[]);
    assert_eq!(outcomes(&mut empty, &[plain_pod()]), [NO_NODES_AVAILABLE]);
}

#[test]
fn malformed_requests_are_reported_not_placed() {
    let mut scheduler = scheduler_with(&[small()]);
    let got = outcomes(&mut scheduler, &[pod("default", "p", "lots", "")]);
    assert!(
        got[0].starts_with("0/1 nodes are available: container \"app\" requests cpu: "),
        "{got:?}"
    );
}

/// One score case: nodes (and bound pods), the pod, the node it should go to.
fn place(nodes: &[Node], bound: &[Pod], pod: Pod) -> String {
    let mut scheduler = scheduler_with(nodes);
    for pod in bound {
        scheduler.pod_changed(pod);
    }
    outcomes(&mut scheduler, &[pod]).remove(0)
}

#[test]
fn scores_order_nodes_as_kube_schedulers_default_plugins_do() {
    let busy = bound(pod("default", "busy", "2", "2Gi"), "a");
    let big_image = |mut node: Node| {
        node.status.images.push(ContainerImage {
            names: vec![
                fixtures::IMAGE.to_owned(),
                "registry.local/app@sha256:1".to_owned(),
            ],
            size_bytes: 900 * 1024 * 1024,
        });
        node
    };
    let prefer_b = with_node_affinity(
        plain_pod(),
        NodeAffinity {
            preferred_during_scheduling_ignored_during_execution: vec![
                PreferredSchedulingTerm {
                    weight: 10,
                    preference: NodeSelectorTerm {
                        match_expressions: vec![requirement("tier", "In", &["fast"])],
                        ..NodeSelectorTerm::default()
                    },
                },
                PreferredSchedulingTerm {
                    weight: 50,
                    preference: NodeSelectorTerm {
                        match_fields: vec![requirement("metadata.name", "In", &["b"])],
                        ..NodeSelectorTerm::default()
                    },
                },
            ],
            ..NodeAffinity::default()
        },
    );
    let four = |name| node(name, "4", "4Gi");
    type ScoreCase = (&'static str, Vec<Node>, Vec<Pod>, Pod, &'static str);
    let cases: Vec<ScoreCase> = vec![
        (
            "LeastAllocated prefers the emptier node",
            vec![four("a"), four("b")],
            vec![busy.clone()],
            plain_pod(),
            "bind b",
        ),
        (
            "TaintToleration avoids PreferNoSchedule taints even on an emptier node",
            vec![
                with_taints(four("a"), vec![taint("battery", "low", "PreferNoSchedule")]),
                four("b"),
            ],
            vec![bound(pod("default", "busy", "2", "2Gi"), "b")],
            plain_pod(),
            "bind b",
        ),
        (
            "a tolerated PreferNoSchedule taint is not avoided",
            vec![
                with_taints(four("a"), vec![taint("battery", "low", "PreferNoSchedule")]),
                four("b"),
            ],
            vec![bound(pod("default", "busy", "2", "2Gi"), "b")],
            with_tolerations(plain_pod(), vec![toleration("battery", "Exists", "")]),
            "bind a",
        ),
        (
            "preferred NodeAffinity outweighs a lighter load",
            vec![
                with_labels(four("a"), &[("tier", "fast")]),
                four("b"),
                four("c"),
            ],
            vec![bound(pod("default", "busy", "2", "2Gi"), "b")],
            prefer_b,
            "bind b",
        ),
        (
            "ImageLocality prefers the node that has the image even if a little busier",
            vec![four("a"), big_image(four("b")), four("c")],
            vec![bound(pod("default", "small", "100m", "64Mi"), "b")],
            plain_pod(),
            "bind b",
        ),
    ];
    for (name, nodes, bound, pod, expected) in cases {
        assert_eq!(place(&nodes, &bound, pod), expected, "{name}");
    }
}

#[test]
fn resource_scores_have_kubes_values() {
    let mut scheduler = scheduler_with(&[node("a", "4", "4Gi")]);
    scheduler.pod_changed(&bound(pod("default", "cpu-heavy", "3", "1Gi"), "a"));
    let slot = scheduler.slots["a"];
    let node = &scheduler.nodes[slot];
    let cases = [
        // cpu (4000-3000-1000)/4000 -> 0, memory (4-1-1)/4 -> 50: 25;
        // fractions 1 and 0.5: 1 - 0.25 -> 75.
        (pod("default", "p", "1", "1Gi"), 25, 75),
        // no requests: scored with 100m and 200Mi; balanced sees 0.75 and 0.25.
        (pod("default", "p", "", ""), (22 + 70) / 2, 75),
    ];
    for (pod, least, balanced) in cases {
        let candidate = Candidate::new(&pod, &scheduler.images, &scheduler.platforms).unwrap();
        assert_eq!(
            score::least_allocated(node, &candidate),
            least,
            "{:?}",
            pod.spec.containers[0].resources
        );
        assert_eq!(
            score::balanced_allocation(node, &candidate),
            balanced,
            "{:?}",
            pod.spec.containers[0].resources
        );
    }
}

#[test]
fn a_batch_assumes_each_placement_before_the_next_pod() {
    let pods = [
        pod("default", "p1", "600m", ""),
        pod("default", "p2", "600m", ""),
    ];
    let mut one = scheduler_with(&[small()]);
    assert_eq!(
        outcomes(&mut one, &pods),
        ["bind a", "0/1 nodes are available: 1 Insufficient cpu."]
    );
    let mut two = scheduler_with(&[small(), node("b", "1", "1Gi")]);
    let got = outcomes(&mut two, &pods);
    let mut nodes = got.clone();
    nodes.sort();
    assert_eq!(nodes, ["bind a", "bind b"], "{got:?}");
}

#[test]
fn assumptions_are_confirmed_forgotten_or_released() {
    let mut scheduler = scheduler_with(&[small()]);
    let first = pod("default", "p1", "600m", "");
    let second = pod("default", "p2", "600m", "");
    assert_eq!(
        outcomes(&mut scheduler, std::slice::from_ref(&first)),
        ["bind a"]
    );
    assert_eq!(
        outcomes(&mut scheduler, std::slice::from_ref(&first)),
        Vec::<String>::new(),
        "an assumed pod is not placed twice"
    );
    // The watch shows the pod still unbound, then bound: counted once.
    scheduler.pod_changed(&first);
    scheduler.pod_changed(&bound(first.clone(), "a"));
    scheduler.pod_changed(&bound(first.clone(), "a"));
    assert_eq!(
        outcomes(&mut scheduler, std::slice::from_ref(&second)),
        ["0/1 nodes are available: 1 Insufficient cpu."]
    );
    // A confirmed pod is not forgotten; a removed one frees its node.
    scheduler.forget("default", "p1");
    assert_eq!(
        outcomes(&mut scheduler, std::slice::from_ref(&second)),
        ["0/1 nodes are available: 1 Insufficient cpu."]
    );
    scheduler.pod_removed("default", "p1");
    assert_eq!(
        outcomes(&mut scheduler, std::slice::from_ref(&second)),
        ["bind a"]
    );
    // A failed binding is forgotten: the pod can be placed again.
    scheduler.forget("default", "p2");
    assert_eq!(
        outcomes(&mut scheduler, std::slice::from_ref(&second)),
        ["bind a"]
    );
}

#[test]
fn pods_on_unknown_or_removed_nodes_count_when_the_node_appears() {
    let mut scheduler = scheduler_with(&[]);
    scheduler.pod_changed(&bound(pod("default", "early", "800m", ""), "a"));
    assert_eq!(scheduler.node_count(), 0);
    scheduler.node_changed(&small());
    assert_eq!(
        outcomes(&mut scheduler, &[pod("default", "p", "500m", "")]),
        ["0/1 nodes are available: 1 Insufficient cpu."]
    );
    scheduler.node_removed("a");
    assert_eq!(
        outcomes(&mut scheduler, &[pod("default", "p", "500m", "")]),
        [NO_NODES_AVAILABLE]
    );
    scheduler.node_changed(&small());
    assert_eq!(
        outcomes(&mut scheduler, &[pod("default", "p", "500m", "")]),
        ["0/1 nodes are available: 1 Insufficient cpu."],
        "the pod still bound to the node that came back counts"
    );
    scheduler.pod_removed("default", "early");
    scheduler.node_removed("a");
    assert!(scheduler.nodes.iter().all(|n| !n.present && n.records == 0));
    assert!(scheduler.slots.is_empty(), "the placeholder is gone");
}

#[test]
fn replicas_spread_over_nodes_and_zones() {
    let zoned = |name, zone| with_labels(node(name, "4", "4Gi"), &[(node_labels::ZONE, zone)]);
    let nodes = [zoned("a", "hall"), zoned("b", "hall"), zoned("c", "yard")];
    let mut scheduler = scheduler_with(&nodes);
    let got = outcomes(&mut scheduler, &fixtures::replica_pods(3, 3));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, ["bind a", "bind b", "bind c"], "{got:?}");

    // Two replicas on four nodes in two zones go to different zones.
    let nodes = [
        zoned("a", "hall"),
        zoned("b", "hall"),
        zoned("c", "yard"),
        zoned("d", "yard"),
    ];
    let mut scheduler = scheduler_with(&nodes);
    let got = outcomes(&mut scheduler, &fixtures::replica_pods(2, 2));
    let zone = |o: &str| {
        if o == "bind a" || o == "bind b" {
            "hall"
        } else {
            "yard"
        }
    };
    assert_ne!(zone(&got[0]), zone(&got[1]), "{got:?}");

    // Pods of another workload do not repel: a second workload's first
    // replica ignores the first workload's pods (only resources differ).
    let deleting = {
        let mut pod = bound(fixtures::replica_pods(1, 1).remove(0), "c");
        pod.metadata.name = "app-0-8".to_owned();
        pod.metadata.deletion_timestamp = Some(Time::default());
        pod
    };
    let mut scheduler = scheduler_with(&nodes[..3]);
    scheduler.pod_changed(&bound(fixtures::replica_pods(1, 1).remove(0), "a"));
    scheduler.pod_changed(&bound(fixtures::replica_pods(2, 1).remove(1), "b"));
    scheduler.pod_changed(&deleting);
    // Workload app-0 has a replica on a and one being deleted on c: its
    // next replica goes to c (the deleting pod does not count for spread,
    // b is in a's zone).
    let mut next = fixtures::replica_pods(2, 2).remove(1);
    next.metadata.name = "app-0-9".to_owned();
    assert_eq!(outcomes(&mut scheduler, &[next]), ["bind c"]);
}

#[test]
fn the_same_calls_give_the_same_decisions_whatever_the_node_order() {
    let nodes = fixtures::fleet(40, 3);
    let pods = fixtures::replica_pods(60, 7);
    let mut forward = scheduler_with(&nodes);
    let mut reversed: Vec<Node> = nodes.clone();
    reversed.reverse();
    let mut backward = scheduler_with(&reversed);
    let first = decide(&mut forward, &pods);
    assert_eq!(first, decide(&mut backward, &pods));
    assert_eq!(first, decide(&mut scheduler_with(&nodes), &pods));
    assert!(first.iter().all(|d| matches!(d, Decision::Bind { .. })));
    // Identical nodes and pods still use every node.
    let used: std::collections::BTreeSet<_> = first.iter().map(outcome).collect();
    assert_eq!(used.len(), 40);
}

#[test]
fn search_stops_at_enough_feasible_nodes_and_resumes_where_it_stopped() {
    let nodes = fixtures::fleet(300, 3);
    let mut scheduler = scheduler_with(&nodes);
    let wanted = feasible_nodes_to_find(0, 300);
    assert_eq!(wanted, 144);
    let pods = [pod("default", "p", "", "")];
    assert_eq!(decide(&mut scheduler, &pods).len(), 1);
    assert_eq!(scheduler.next_start, 144);
    // Unfit nodes on the way count as processed too: a pod that only fits
    // the 100 nodes of one zone makes the search go round once, back to
    // where it started.
    let mut selective = pod("default", "q", "", "");
    selective
        .spec
        .node_selector
        .insert(node_labels::ZONE.to_owned(), "zone-0".to_owned());
    assert_eq!(decide(&mut scheduler, &[selective]).len(), 1);
    assert_eq!(scheduler.next_start, 144);
    // Nodes are visited one zone after the other.
    let zones: Vec<_> = scheduler.order[..4]
        .iter()
        .map(|&slot| scheduler.nodes[slot].labels[node_labels::ZONE].as_str())
        .collect();
    assert_eq!(zones, ["zone-0", "zone-1", "zone-2", "zone-0"]);
}

#[test]
fn feasible_nodes_to_find_follows_percentage_of_nodes_to_score() {
    let cases = [
        (0, 50, 50),
        (0, 100, 100),
        (0, 200, 100), // 48% would be 96
        (0, 1_000, 420),
        (0, 5_000, 500),
        (0, 10_000, 500),
        (0, 100_000, 5_000),
        (30, 1_000, 300),
        (30, 200, 100),
        (100, 5_000, 5_000),
        (250, 5_000, 5_000),
    ];
    for (percentage, nodes, expected) in cases {
        assert_eq!(
            feasible_nodes_to_find(percentage, nodes),
            expected,
            "{percentage}% of {nodes}"
        );
    }
}

#[test]
fn a_named_scheduler_places_only_its_own_pods() {
    let mut edge = plain_pod();
    edge.spec.scheduler_name = "edge-scheduler".to_owned();
    assert!(is_pending(&edge, "edge-scheduler"));
    assert!(!is_pending(&plain_pod(), "edge-scheduler"));
    let mut unnamed = plain_pod();
    unnamed.spec.scheduler_name.clear();
    assert!(!is_pending(&unnamed, "edge-scheduler"));
    let mut scheduler = Scheduler::new(Config {
        scheduler_name: "edge-scheduler".to_owned(),
        ..Config::default()
    });
    scheduler.node_changed(&small());
    assert_eq!(decide(&mut scheduler, &[plain_pod()]).len(), 0);
    assert_eq!(decide(&mut scheduler, &[edge]).len(), 1);
}

#[test]
fn only_pending_pods_for_the_default_scheduler_are_placed() {
    let mut gated = plain_pod();
    gated.spec.scheduling_gates.push(PodSchedulingGate {
        name: "wait".to_owned(),
    });
    let mut deleting = plain_pod();
    deleting.metadata.deletion_timestamp = Some(Time::default());
    let mut failed = plain_pod();
    failed.status.phase = pod_phase::FAILED.to_owned();
    let mut other_scheduler = plain_pod();
    other_scheduler.spec.scheduler_name = "edge-scheduler".to_owned();
    let mut unnamed_scheduler = plain_pod();
    unnamed_scheduler.spec.scheduler_name.clear();
    let cases = [
        ("pending", plain_pod(), true),
        ("no scheduler name", unnamed_scheduler, true),
        ("bound", bound(plain_pod(), "a"), false),
        ("gated", gated, false),
        ("being deleted", deleting, false),
        ("failed", failed, false),
        ("another scheduler", other_scheduler, false),
    ];
    for (name, pod, pending) in cases {
        assert_eq!(is_pending(&pod, DEFAULT_SCHEDULER_NAME), pending, "{name}");
        let mut scheduler = scheduler_with(&[small()]);
        assert_eq!(
            decide(&mut scheduler, &[pod]).len(),
            usize::from(pending),
            "{name}"
        );
    }
}

#[test]
fn a_bind_carries_the_pods_resource_version() {
    let mut scheduler = scheduler_with(&[small()]);
    let mut pod = plain_pod();
    pod.metadata.resource_version = "4711".to_owned();
    assert_eq!(
        decide(&mut scheduler, &[pod]),
        [Decision::Bind {
            namespace: "default".to_owned(),
            name: "p".to_owned(),
            resource_version: "4711".to_owned(),
            node: "a".to_owned(),
        }]
    );
}

#[test]
fn node_updates_keep_image_counts_and_zones_exact() {
    let with_images = |mut node: Node, names: &[&str]| {
        node.status.images = vec![ContainerImage {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            size_bytes: 1,
        }];
        node
    };
    let mut scheduler = scheduler_with(&[
        with_images(node("a", "1", "1Gi"), &["x:1", "x@sha256:1", "x:1"]),
        with_images(node("b", "1", "1Gi"), &["x:1"]),
    ]);
    let id = scheduler.images.get("x:1").unwrap();
    assert_eq!(scheduler.images.refs(id), 2, "each node counts once");
    scheduler.node_changed(&with_images(node("a", "1", "1Gi"), &["y:1"]));
    assert_eq!(scheduler.images.refs(id), 1);
    assert!(scheduler.images.get("x@sha256:1").is_none());
    scheduler.node_removed("b");
    assert!(scheduler.images.get("x:1").is_none());

    // A replica counted in a zone moves with its node's zone label.
    let mut scheduler = scheduler_with(&[with_labels(small(), &[(node_labels::ZONE, "hall")])]);
    scheduler.pod_changed(&bound(fixtures::replica_pods(1, 1).remove(0), "a"));
    let workload = scheduler.workloads.get("uid\0rs-0").unwrap();
    let hall = scheduler.zones.get("hall").unwrap();
    assert_eq!(scheduler.zone_counts[&workload][&hall], 1);
    scheduler.node_changed(&with_labels(small(), &[(node_labels::ZONE, "yard")]));
    let yard = scheduler.zones.get("yard").unwrap();
    assert_eq!(scheduler.zone_counts[&workload].get(&yard), Some(&1));
    assert!(scheduler.zones.get("hall").is_none());
    scheduler.pod_removed("default", "app-0-0");
    assert!(scheduler.zone_counts.is_empty());
    assert!(scheduler.workloads.get("uid\0rs-0").is_none());
}

/// Not a timed assertion: prints how fast a fleet-sized batch is placed
/// (`cargo test -p flotilla-hub scheduler::tests::fleet_sized_batch -- --nocapture`)
/// and checks that every pod found a node and no node went over.
#[test]
fn fleet_sized_batch_places_every_pod_within_capacity() {
    let (node_count, pod_count) = match std::env::var("FLOTILLA_SCHEDULER_BENCH") {
        Ok(v) if v == "full" => (5_000, 10_000),
        _ => (1_000, 2_000),
    };
    let nodes = fixtures::fleet(node_count, 10);
    let pods = fixtures::replica_pods(pod_count, 50);
    let pending: Vec<&Pod> = pods.iter().collect();
    let started = Instant::now();
    let mut scheduler = scheduler_with(&nodes);
    let loaded = started.elapsed();
    let started = Instant::now();
    let decisions = scheduler.schedule(&pending);
    let elapsed = started.elapsed();
    println!(
        "{pod_count} pods on {node_count} nodes: {:?} to load nodes, {:?} to place \
         ({:.1} µs per pod, {:.0} pods/s)",
        loaded,
        elapsed,
        elapsed.as_secs_f64() * 1e6 / pod_count as f64,
        pod_count as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(decisions.len(), pod_count);
    assert!(decisions.iter().all(|d| matches!(d, Decision::Bind { .. })));
    assert!(
        scheduler
            .nodes
            .iter()
            .all(|n| n.requested.cpu_m <= 4000 && n.pods <= 110)
    );
    let busiest = scheduler.nodes.iter().map(|n| n.pods).max().unwrap();
    assert!(
        busiest <= 3,
        "replicas spread: busiest node has {busiest} pods"
    );
}
