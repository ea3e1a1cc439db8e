use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    ContainerStatus, LabelSelector, Object, ObjectMeta, OwnerReference, Pod, PodCondition,
    ReplicaSet, ReplicaSetStatus, Time,
};

use super::*;
use crate::api::time::format_time;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(seconds_ago: u64) -> Time {
    format_time(now() - Duration::from_secs(seconds_ago))
}

fn rs(replicas: i32) -> ReplicaSet {
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: "web-5d4c8".into(),
            namespace: "default".into(),
            uid: "rs-uid".into(),
            resource_version: "7".into(),
            generation: 2,
            ..ObjectMeta::default()
        },
        ..ReplicaSet::default()
    };
    rs.spec.replicas = Some(replicas);
    rs.spec.selector = Some(LabelSelector {
        match_labels: [("app".to_owned(), "web".to_owned())].into(),
        ..LabelSelector::default()
    });
    rs.spec.template.metadata.labels = [
        ("app".to_owned(), "web".to_owned()),
        ("tier".to_owned(), "front".to_owned()),
    ]
    .into();
    rs.spec.template.metadata.annotations = [("note".to_owned(), "x".to_owned())].into();
    rs.spec.template.spec.containers = vec![flotilla_shared::model::Container {
        name: "app".into(),
        image: "nginx".into(),
        ..Default::default()
    }];
    rs
}

fn owner(rs: &ReplicaSet) -> OwnerReference {
    controller_ref("apps/v1", "ReplicaSet", &rs.metadata)
}

/// A pod owned by `rs` (or an orphan), labelled app=web.
fn pod(name: &str, owner_ref: Option<OwnerReference>) -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            resource_version: "3".into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            creation_timestamp: Some(at(1000)),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    };
    pod.metadata.owner_references.extend(owner_ref);
    pod
}

fn ready(mut pod: Pod, node: &str, seconds_ago: u64) -> Pod {
    pod.spec.node_name = node.into();
    pod.status.phase = "Running".into();
    pod.status.conditions = vec![PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        last_transition_time: Some(at(seconds_ago)),
        ..PodCondition::default()
    }];
    pod
}

fn cache_with(rs: &ReplicaSet, pods: Vec<Pod>) -> Cache {
    let mut cache = Cache::new();
    cache.apply(Object::ReplicaSet(rs.clone()));
    for pod in pods {
        cache.apply(Object::Pod(pod));
    }
    cache
}

fn key() -> ObjectKey {
    ObjectKey::new("ReplicaSet", "default", "web-5d4c8")
}

fn run(rs: &ReplicaSet, pods: Vec<Pod>) -> Action {
    ReplicaSetController.reconcile(&key(), &cache_with(rs, pods), now())
}

fn status_of(action: &Action) -> Option<ReplicaSetStatus> {
    action.commands.iter().find_map(|c| match c {
        Command::UpdateStatus(object) => match object.as_ref() {
            Object::ReplicaSet(rs) => Some(rs.status.clone()),
            _ => None,
        },
        _ => None,
    })
}

fn deleted(action: &Action) -> Vec<String> {
    action
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Delete { key, .. } => Some(key.name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn missing_pods_are_created_from_the_template_with_a_controller_reference() {
    let rs = rs(2);
    let action = run(
        &rs,
        vec![ready(pod("web-5d4c8-a", Some(owner(&rs))), "n1", 5)],
    );
    let mut want = Pod {
        metadata: ObjectMeta {
            generate_name: "web-5d4c8-".into(),
            namespace: "default".into(),
            labels: rs.spec.template.metadata.labels.clone(),
            annotations: rs.spec.template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-5d4c8".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..ObjectMeta::default()
        },
        ..Pod::default()
    };
    want.spec = rs.spec.template.spec.clone();
    assert_eq!(
        action.commands[0],
        Command::Create(Box::new(Object::Pod(want)))
    );
    assert_eq!(
        action.commands[1],
        Command::Event {
            regarding: rs_reference(&rs),
            type_: EventType::Normal,
            reason: "SuccessfulCreate".into(),
            message: "Created pod from template".into(),
        }
    );
    assert_eq!(action.commands.len(), 3, "and the status");
}

#[test]
fn creations_per_reconcile_are_capped_at_the_burst() {
    for (replicas, existing, creates) in [(3, 0, 3), (600, 0, 500), (600, 550, 50), (2, 2, 0)] {
        let rs = rs(replicas);
        let pods = (0..existing)
            .map(|i| pod(&format!("p{i}"), Some(owner(&rs))))
            .collect();
        let action = run(&rs, pods);
        let count = action
            .commands
            .iter()
            .filter(|c| matches!(c, Command::Create(_)))
            .count();
        assert_eq!(count, creates, "{replicas} wanted, {existing} there");
    }
}

#[test]
fn slow_start_doubles_the_batch() {
    for (total, batches) in [
        (0, vec![]),
        (1, vec![1]),
        (3, vec![1, 2]),
        (10, vec![1, 2, 4, 3]),
        (500, vec![1, 2, 4, 8, 16, 32, 64, 128, 245]),
    ] {
        assert_eq!(slow_start_batches(total), batches, "{total}");
    }
}

#[test]
fn surplus_pods_are_deleted_in_kubernetes_ranking_order() {
    let rs = rs(0);
    let o = || Some(owner(&rs));
    let mut restarted = ready(pod("restarted", o()), "n2", 4000);
    restarted.status.container_statuses = vec![ContainerStatus {
        name: "app".into(),
        restart_count: 3,
        ..ContainerStatus::default()
    }];
    let mut costly = pod("costly", o());
    costly.metadata.annotations = [(POD_DELETION_COST.to_owned(), "100".to_owned())].into();
    let costly = ready(costly, "n3", 4000);
    let mut pending_bound = pod("pending-bound", o());
    pending_bound.spec.node_name = "n1".into();
    pending_bound.status.phase = "Pending".into();
    let mut running_unready = pod("running-unready", o());
    running_unready.spec.node_name = "n1".into();
    running_unready.status.phase = "Running".into();
    let pods = vec![
        ready(pod("old-ready", o()), "n4", 4000),
        costly,
        restarted,
        ready(pod("new-ready", o()), "n5", 10),
        running_unready,
        pending_bound,
        pod("unscheduled", o()),
    ];
    let cache = cache_with(&rs, pods);
    let claimed: Vec<&Pod> = cache.pods().collect();
    let order: Vec<&str> = deletion_order(&claimed, &[], now())
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "unscheduled",
            "pending-bound",
            "running-unready",
            "new-ready",
            "restarted",
            "old-ready",
            "costly"
        ]
    );
}

#[test]
fn doubled_up_pods_go_first_and_close_ready_times_share_a_bucket() {
    let rs = rs(0);
    let o = || Some(owner(&rs));
    let a = ready(pod("alone", o()), "n1", 100);
    let b = ready(pod("crowded", o()), "n2", 100);
    let sibling = ready(pod("sibling", o()), "n2", 100);
    let related = [&a, &b, &sibling];
    let order: Vec<&str> = deletion_order(&[&a, &b], &related, now())
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    assert_eq!(order, ["crowded", "alone"]);
    // Ready 100 s and 110 s ago: the same power-of-two bucket, so uid order.
    let x = ready(pod("x", o()), "n1", 100);
    let y = ready(pod("y", o()), "n2", 110);
    let order: Vec<&str> = deletion_order(&[&y, &x], &[], now())
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    assert_eq!(order, ["x", "y"]);
    // 10 s and 1000 s ago: the newer first.
    let z = ready(pod("z", o()), "n2", 1000);
    let w = ready(pod("w", o()), "n2", 10);
    let order: Vec<&str> = deletion_order(&[&z, &w], &[], now())
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    assert_eq!(order, ["w", "z"]);
}

#[test]
fn scale_down_deletes_by_uid_with_events() {
    let rs = rs(1);
    let action = run(
        &rs,
        vec![
            ready(pod("keep", Some(owner(&rs))), "n1", 100),
            pod("drop", Some(owner(&rs))),
        ],
    );
    assert_eq!(
        action.commands[..2],
        [
            Command::Delete {
                key: ObjectKey::new("Pod", "default", "drop"),
                uid: Some("uid-drop".into()),
                propagation: Propagation::Background,
            },
            Command::Event {
                regarding: rs_reference(&rs),
                type_: EventType::Normal,
                reason: "SuccessfulDelete".into(),
                message: "Deleted pod: drop".into(),
            }
        ]
    );
}

#[test]
fn inactive_pods_do_not_count() {
    let rs = rs(2);
    let mut failed = pod("failed", Some(owner(&rs)));
    failed.status.phase = "Failed".into();
    let mut terminating = ready(pod("terminating", Some(owner(&rs))), "n1", 100);
    terminating.metadata.deletion_timestamp = Some(at(1));
    let action = run(
        &rs,
        vec![failed, terminating, pod("live", Some(owner(&rs)))],
    );
    let creates = action
        .commands
        .iter()
        .filter(|c| matches!(c, Command::Create(_)))
        .count();
    assert_eq!(creates, 1);
    assert!(deleted(&action).is_empty());
    assert_eq!(status_of(&action).unwrap().replicas, 1);
}

#[test]
fn orphans_that_match_are_adopted_and_owned_pods_that_do_not_are_released() {
    let rs = rs(2);
    let mut strayed = pod("strayed", Some(owner(&rs)));
    strayed.metadata.labels = [("app".to_owned(), "other".to_owned())].into();
    let mut other_owner = owner(&rs);
    other_owner.uid = "someone-else".into();
    let mut terminating_orphan = pod("terminating-orphan", None);
    terminating_orphan.metadata.deletion_timestamp = Some(at(1));
    let action = run(
        &rs,
        vec![
            pod("orphan", None),
            strayed,
            pod("theirs", Some(other_owner)),
            terminating_orphan,
            pod("mine", Some(owner(&rs))),
        ],
    );
    let updates: Vec<(&str, Vec<&str>)> = action
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Update(object) => Some((
                object.metadata().name.as_str(),
                object
                    .metadata()
                    .owner_references
                    .iter()
                    .map(|o| o.uid.as_str())
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(updates, [("strayed", vec![]), ("orphan", vec!["rs-uid"])]);
    assert_eq!(
        status_of(&action).unwrap().replicas,
        2,
        "mine and the adopted orphan: nothing to create"
    );
    assert!(
        !action
            .commands
            .iter()
            .any(|c| matches!(c, Command::Create(_)))
    );
}

#[test]
fn status_is_written_only_when_it_changes() {
    let mut rs = rs(2);
    rs.spec.min_ready_seconds = 30;
    let mut unlabelled = ready(pod("b", Some(owner(&rs))), "n1", 10);
    unlabelled.metadata.labels.remove("tier");
    let pods = vec![ready(pod("a", Some(owner(&rs))), "n1", 100), unlabelled];
    let mut labelled = pods.clone();
    labelled[0]
        .metadata
        .labels
        .insert("tier".into(), "front".into());
    let action = run(&rs, labelled.clone());
    let status = status_of(&action).unwrap();
    let want = ReplicaSetStatus {
        replicas: 2,
        fully_labeled_replicas: 1,
        ready_replicas: 2,
        available_replicas: 1,
        observed_generation: 2,
        conditions: Vec::new(),
    };
    assert_eq!(status, want);
    assert_eq!(
        action.requeue_after,
        Some(Duration::from_secs(21)),
        "b becomes available 30 s after it turned ready"
    );
    rs.status = want;
    let action = run(&rs, labelled);
    assert!(action.commands.is_empty(), "{:?}", action.commands);
}

#[test]
fn a_replica_set_being_deleted_is_left_alone() {
    let mut rs = rs(3);
    rs.metadata.deletion_timestamp = Some(at(1));
    assert_eq!(run(&rs, vec![pod("orphan", None)]), Action::await_change());
    let missing = ReplicaSetController.reconcile(&key(), &Cache::new(), now());
    assert_eq!(missing, Action::await_change());
}

#[test]
fn failures_set_the_condition_once_and_a_settled_count_clears_it() {
    let rs = rs(1);
    let commands = ReplicaSetController::replica_failure(&rs, true, "quota exceeded", now());
    assert_eq!(
        commands[0],
        Command::Event {
            regarding: rs_reference(&rs),
            type_: EventType::Warning,
            reason: "FailedCreate".into(),
            message: "Error creating: quota exceeded".into(),
        }
    );
    let Command::UpdateStatus(failed) = &commands[1] else {
        panic!("{commands:?}")
    };
    let Object::ReplicaSet(failed) = failed.as_ref().clone() else {
        panic!()
    };
    let condition = &failed.status.conditions[0];
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_str()
        ),
        ("ReplicaFailure", "True", "FailedCreate")
    );
    assert_eq!(
        ReplicaSetController::replica_failure(&failed, true, "again", now()).len(),
        1,
        "only the Event when the condition is there"
    );
    // Still short of pods: the condition stays.
    let action = run(&failed, vec![]);
    assert_eq!(status_of(&action).unwrap().conditions.len(), 1);
    // The pod exists now: the condition goes.
    let action = run(&failed, vec![pod("p", Some(owner(&failed)))]);
    assert!(status_of(&action).unwrap().conditions.is_empty());
}

#[test]
fn keys_map_pods_to_their_owner_or_to_the_replica_sets_that_could_adopt_them() {
    let rs = rs(1);
    let cache = cache_with(&rs, vec![]);
    let owned = Object::Pod(pod("a", Some(owner(&rs))));
    assert_eq!(ReplicaSetController.keys_for(&owned, &cache), [key()]);
    let orphan = Object::Pod(pod("b", None));
    assert_eq!(ReplicaSetController.keys_for(&orphan, &cache), [key()]);
    let mut stranger = pod("c", None);
    stranger.metadata.labels.clear();
    assert!(
        ReplicaSetController
            .keys_for(&Object::Pod(stranger), &cache)
            .is_empty()
    );
    let mut job_pod = pod("d", None);
    job_pod.metadata.owner_references.push(OwnerReference {
        kind: "Job".into(),
        controller: Some(true),
        ..OwnerReference::default()
    });
    assert!(
        ReplicaSetController
            .keys_for(&Object::Pod(job_pod), &cache)
            .is_empty()
    );
    assert_eq!(
        ReplicaSetController.keys_for(&Object::ReplicaSet(rs), &cache),
        [key()]
    );
}
