use std::time::Duration;

use flotilla_shared::model::{
    Container, Deployment, IntOrString, LabelSelector, Object, ObjectMeta, OwnerReference,
    ReplicaSet, RollingUpdateDeployment,
};

use super::harness::{Cluster, rollout_status};
use super::util::{self, POD_TEMPLATE_HASH, REVISION, compute_hash};
use super::*;
use crate::controllers::Propagation;

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    let mut d = Deployment::default();
    d.metadata.name = name.into();
    d.metadata.namespace = "default".into();
    d.spec.replicas = Some(replicas);
    d.spec.selector = Some(LabelSelector {
        match_labels: [("app".to_owned(), name.to_owned())].into(),
        ..LabelSelector::default()
    });
    d.spec.template.metadata.labels = [("app".to_owned(), name.to_owned())].into();
    d.spec.template.spec.containers = vec![Container {
        name: "app".into(),
        image: image.into(),
        ..Container::default()
    }];
    d
}

fn set_image(d: &mut Deployment, image: &str) {
    d.spec.template.spec.containers[0].image = image.into();
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("Deployment", "default", name)
}

/// A cluster with `d` created and rolled out completely.
fn rolled_out(d: Deployment) -> Cluster {
    let mut cluster = Cluster::new();
    let name = d.metadata.name.clone();
    assert!(cluster.create(Object::Deployment(d)));
    run_to_completion(&mut cluster, &name);
    cluster
}

/// Settles and lets the kubelet make pods ready until `kubectl rollout
/// status` says done; answers the (new, old...) ReplicaSet sizes after each settle.
fn run_to_completion(cluster: &mut Cluster, name: &str) -> Vec<Vec<i32>> {
    let mut trace = Vec::new();
    for _ in 0..50 {
        cluster.settle();
        let sizes: Vec<i32> = cluster
            .replica_sets()
            .iter()
            .rev()
            .map(|rs| rs.spec.replicas.unwrap_or(1))
            .collect();
        trace.push(sizes);
        let status = rollout_status(cluster.deployment(name)).expect("no deadline");
        if status.ends_with("successfully rolled out") {
            return trace;
        }
        cluster.kubelet();
    }
    panic!("rollout never finished: {trace:?}");
}

fn events_with_reason<'a>(cluster: &'a Cluster, reason: &str) -> Vec<&'a str> {
    cluster
        .events
        .iter()
        .filter(|(_, r, _)| r == reason)
        .map(|(_, _, m)| m.as_str())
        .collect()
}

#[test]
fn first_reconcile_creates_revision_one_replica_set_at_full_size() {
    let mut cluster = Cluster::new();
    assert!(cluster.create(Object::Deployment(deployment("web", 3, "nginx:1"))));
    let d = cluster.deployment("web").clone();
    let action = DeploymentController.reconcile(&key("web"), &cluster.cache, cluster.now);

    let hash = compute_hash(&d.spec.template, None);
    let name = format!("web-{hash}");
    let mut want = ReplicaSet::default();
    want.metadata.name = name.clone();
    want.metadata.namespace = "default".into();
    want.metadata.labels = [
        ("app".to_owned(), "web".to_owned()),
        (POD_TEMPLATE_HASH.to_owned(), hash.clone()),
    ]
    .into();
    want.metadata.annotations = [
        (REVISION.to_owned(), "1".to_owned()),
        (util::DESIRED_REPLICAS.to_owned(), "3".to_owned()),
        (util::MAX_REPLICAS.to_owned(), "4".to_owned()),
    ]
    .into();
    want.metadata.owner_references = vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        uid: d.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }];
    want.spec.replicas = Some(3);
    let mut selector = d.spec.selector.clone().unwrap();
    selector
        .match_labels
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    want.spec.selector = Some(selector);
    want.spec.template = d.spec.template.clone();
    want.spec
        .template
        .metadata
        .labels
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());

    assert_eq!(action.commands.len(), 3, "{:#?}", action.commands);
    assert_eq!(
        action.commands[0],
        Command::Create(Box::new(Object::ReplicaSet(want)))
    );
    assert_eq!(
        action.commands[1],
        Command::Event {
            regarding: r_ref(&d),
            type_: EventType::Normal,
            reason: "ScalingReplicaSet".into(),
            message: format!("Scaled up replica set {name} to 3"),
        }
    );
    let Command::UpdateStatus(status) = &action.commands[2] else {
        panic!("{:?}", action.commands[2]);
    };
    let Object::Deployment(updated) = status.as_ref() else {
        panic!()
    };
    assert_eq!(updated.metadata.annotations[REVISION], "1");
    assert_eq!(updated.status.observed_generation, 1);
    let conditions: Vec<(&str, &str, &str)> = updated
        .status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        conditions,
        [
            ("Progressing", "True", "NewReplicaSetCreated"),
            ("Available", "False", "MinimumReplicasUnavailable"),
        ]
    );
    assert_eq!(
        action.requeue_after,
        Some(Duration::from_secs(601)),
        "looks again when the progress deadline passes"
    );
}

fn r_ref(d: &Deployment) -> flotilla_shared::model::ObjectReference {
    crate::controllers::reference_to(&Object::Deployment(d.clone()))
}

#[test]
fn first_rollout_completes_with_the_status_kubectl_rollout_status_reads() {
    let cluster = rolled_out(deployment("web", 3, "nginx:1"));
    let d = cluster.deployment("web");
    let s = &d.status;
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (3, 3, 3, 3, 0)
    );
    assert_eq!(s.observed_generation, d.metadata.generation);
    let rs = cluster.replica_sets()[0];
    let progressing = util::get_condition(s, "Progressing").unwrap();
    assert_eq!(progressing.reason, "NewReplicaSetAvailable");
    assert_eq!(
        progressing.message,
        format!(
            "ReplicaSet {:?} has successfully progressed.",
            rs.metadata.name
        )
    );
    let available = util::get_condition(s, "Available").unwrap();
    assert_eq!(
        (
            available.status.as_str(),
            available.reason.as_str(),
            available.message.as_str()
        ),
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability."
        )
    );
    assert_eq!(cluster.conflicts, 0, "one write per object per reconcile");
    assert_eq!(
        events_with_reason(&cluster, "SuccessfulCreate").len(),
        3,
        "the ReplicaSet created the pods"
    );
    // Settled: a reconcile now changes nothing and asks for no requeue.
    let action = DeploymentController.reconcile(&key("web"), &cluster.cache, cluster.now);
    assert_eq!(action, Action::await_change());
}

#[test]
fn rolling_update_steps_within_max_surge_and_max_unavailable() {
    // 4 replicas, 25%/25%: one pod over and one pod under at most.
    let mut cluster = rolled_out(deployment("web", 4, "nginx:1"));
    let old_name = cluster.replica_sets()[0].metadata.name.clone();
    cluster.edit("web", |d| set_image(d, "nginx:2"));

    let mut trace = Vec::new();
    for _ in 0..20 {
        cluster.settle();
        let (active, available) = cluster.pod_counts();
        assert!(active <= 5, "at most 4 + maxSurge pods: {active}");
        assert!(
            available >= 3,
            "at least 4 - maxUnavailable available: {available}"
        );
        let sizes: Vec<i32> = cluster
            .replica_sets()
            .iter()
            .map(|rs| rs.spec.replicas.unwrap())
            .collect();
        trace.push(sizes);
        if rollout_status(cluster.deployment("web"))
            .unwrap()
            .ends_with("successfully rolled out")
        {
            break;
        }
        cluster.kubelet();
    }
    // [old, new] after each settle; the kubelet makes pods ready in between.
    // The first step creates the new ReplicaSet at 1 and takes the old one to
    // 3; the next sees 4 pods wanted out of 5 allowed and surges to 2 before
    // any new pod is ready (Kubernetes' arithmetic exactly).
    assert_eq!(trace, [vec![3, 2], vec![1, 4], vec![0, 4]]);
    let sets = cluster.replica_sets();
    let new_name = sets[1].metadata.name.clone();
    assert_eq!(sets[1].metadata.annotations[REVISION], "2");
    assert_eq!(
        cluster.deployment("web").metadata.annotations[REVISION],
        "2"
    );
    let scaling = events_with_reason(&cluster, "ScalingReplicaSet");
    assert_eq!(
        scaling[1..],
        [
            format!("Scaled up replica set {new_name} to 1"),
            format!("Scaled down replica set {old_name} to 3 from 4"),
            format!("Scaled up replica set {new_name} to 2 from 1"),
            format!("Scaled down replica set {old_name} to 1 from 3"),
            format!("Scaled up replica set {new_name} to 4 from 2"),
            format!("Scaled down replica set {old_name} to 0 from 1"),
        ]
    );
    assert_eq!(cluster.conflicts, 0);
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_its_pods_before_creating_the_new() {
    let mut d = deployment("db", 2, "pg:1");
    d.spec.strategy.type_ = "Recreate".into();
    let mut cluster = rolled_out(d);
    cluster.edit("db", |d| set_image(d, "pg:2"));

    cluster.settle();
    let sets = cluster.replica_sets();
    assert_eq!(sets.len(), 1, "no new ReplicaSet while old pods exist");
    assert_eq!(sets[0].spec.replicas, Some(0));
    let terminating = cluster
        .cache
        .pods()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .count();
    assert_eq!(terminating, 2, "the old pods are terminating");

    // The kubelet removes them: now the new ReplicaSet comes, at full size.
    cluster.kubelet();
    cluster.settle();
    let sets = cluster.replica_sets();
    assert_eq!(sets.len(), 2);
    assert_eq!(
        (sets[0].spec.replicas, sets[1].spec.replicas),
        (Some(0), Some(2))
    );
    run_to_completion(&mut cluster, "db");
    assert_eq!(cluster.conflicts, 0);
}

#[test]
fn revision_history_keeps_only_the_limit_of_old_replica_sets() {
    let mut d = deployment("web", 1, "v1");
    d.spec.revision_history_limit = Some(1);
    let mut cluster = rolled_out(d);
    for image in ["v2", "v3", "v4"] {
        cluster.advance(10);
        cluster.edit("web", |d| set_image(d, image));
        run_to_completion(&mut cluster, "web");
        cluster.settle();
    }
    let revisions: Vec<(String, i32)> = cluster
        .replica_sets()
        .iter()
        .map(|rs| {
            (
                rs.metadata.annotations[REVISION].clone(),
                rs.spec.replicas.unwrap(),
            )
        })
        .collect();
    assert_eq!(revisions, [("3".to_owned(), 0), ("4".to_owned(), 1)]);
}

#[test]
fn rollback_reuses_the_old_replica_set_and_bumps_its_revision() {
    let mut cluster = rolled_out(deployment("web", 2, "v1"));
    let v1 = cluster.replica_sets()[0].metadata.name.clone();
    cluster.advance(10);
    cluster.edit("web", |d| set_image(d, "v2"));
    run_to_completion(&mut cluster, "web");
    // `kubectl rollout undo` copies the old ReplicaSet's template (without
    // the hash label) into the Deployment.
    let mut old_template = cluster.replica_sets()[0].spec.template.clone();
    old_template.metadata.labels.remove(POD_TEMPLATE_HASH);
    cluster.edit("web", |d| d.spec.template = old_template);
    run_to_completion(&mut cluster, "web");

    let sets = cluster.replica_sets();
    assert_eq!(sets.len(), 2, "no third ReplicaSet");
    assert_eq!(sets[0].metadata.name, v1);
    assert_eq!(sets[0].spec.replicas, Some(2));
    assert_eq!(sets[0].metadata.annotations[REVISION], "3");
    assert_eq!(sets[0].metadata.annotations[util::REVISION_HISTORY], "1");
    assert_eq!(sets[1].spec.replicas, Some(0));
    assert_eq!(
        cluster.deployment("web").metadata.annotations[REVISION],
        "3"
    );
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out() {
    let mut cluster = rolled_out(deployment("web", 2, "v1"));
    cluster.edit("web", |d| {
        d.spec.paused = true;
        set_image(d, "v2");
    });
    cluster.settle();
    cluster.kubelet();
    cluster.settle();
    assert_eq!(cluster.replica_sets().len(), 1, "no rollout while paused");
    let progressing = util::get_condition(&cluster.deployment("web").status, "Progressing")
        .unwrap()
        .clone();
    assert_eq!(
        (
            progressing.status.as_str(),
            progressing.reason.as_str(),
            progressing.message.as_str()
        ),
        ("Unknown", "DeploymentPaused", "Deployment is paused")
    );

    cluster.edit("web", |d| d.spec.replicas = Some(4));
    cluster.settle();
    assert_eq!(
        cluster.replica_sets()[0].spec.replicas,
        Some(4),
        "scaling applies"
    );
    assert_eq!(cluster.cache.pods().count(), 4);

    cluster.edit("web", |d| d.spec.paused = false);
    run_to_completion(&mut cluster, "web");
    let sets = cluster.replica_sets();
    assert_eq!(
        (sets[0].spec.replicas, sets[1].spec.replicas),
        (Some(0), Some(4))
    );
    assert!(
        cluster
            .events
            .iter()
            .all(|(_, reason, _)| reason != "FailedCreate")
    );
}

#[test]
fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let mut d = deployment("web", 2, "v1");
    d.spec.progress_deadline_seconds = Some(60);
    let mut cluster = rolled_out(d);
    cluster.edit("web", |d| set_image(d, "broken"));
    cluster.settle();
    assert_eq!(
        cluster.last_requeue,
        Some(Duration::from_secs(61)),
        "wakes up when the deadline passes"
    );
    cluster.advance(30);
    cluster.settle();
    assert!(rollout_status(cluster.deployment("web")).is_ok());
    cluster.advance(31);
    cluster.settle();
    let d = cluster.deployment("web");
    let progressing = util::get_condition(&d.status, "Progressing").unwrap();
    let new_rs = &cluster.replica_sets()[1].metadata.name;
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ProgressDeadlineExceeded")
    );
    assert_eq!(
        progressing.message,
        format!("ReplicaSet {new_rs:?} has timed out progressing.")
    );
    assert_eq!(
        rollout_status(d),
        Err("deployment \"web\" exceeded its progress deadline".into())
    );
    assert_eq!(cluster.last_requeue, None, "nothing more to wait for");
}

#[test]
fn progress_refreshes_the_deadline() {
    let mut d = deployment("web", 4, "v1");
    d.spec.progress_deadline_seconds = Some(60);
    let mut cluster = rolled_out(d);
    cluster.edit("web", |d| set_image(d, "v2"));
    cluster.settle();
    cluster.advance(50);
    cluster.kubelet();
    cluster.settle();
    let progressing = util::get_condition(&cluster.deployment("web").status, "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing.reason, "ReplicaSetUpdated");
    assert_eq!(
        progressing.last_update_time,
        Some(crate::api::time::format_time(cluster.now))
    );
    assert_eq!(cluster.last_requeue, Some(Duration::from_secs(61)));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // 10 replicas, 25%/25%: surge 3, unavailable 2.
    let mut cluster = rolled_out(deployment("web", 10, "v1"));
    cluster.edit("web", |d| set_image(d, "v2"));
    cluster.settle();
    let sizes: Vec<i32> = cluster
        .replica_sets()
        .iter()
        .map(|rs| rs.spec.replicas.unwrap())
        .collect();
    assert_eq!(sizes, [8, 5]);
    // Scaling to 20 (at most 25 pods, was 13): each keeps its share,
    // 8 * 25 / 13 = 15.4 and 5 * 25 / 13 = 9.6 rounded.
    cluster.edit("web", |d| d.spec.replicas = Some(20));
    cluster.settle();
    let sizes: Vec<i32> = cluster
        .replica_sets()
        .iter()
        .map(|rs| rs.spec.replicas.unwrap())
        .collect();
    assert_eq!(sizes, [15, 10]);
    run_to_completion(&mut cluster, "web");
}

#[test]
fn replica_sets_are_adopted_and_released_by_selector() {
    let mut cluster = Cluster::new();
    let mut d = deployment("web", 1, "v1");
    d.metadata.uid = "d-uid".into();
    cluster.cache.apply(Object::Deployment(d.clone()));
    let rs = |name: &str, app: &str, owner: Option<&str>| {
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
                labels: [("app".to_owned(), app.to_owned())].into(),
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        };
        if let Some(uid) = owner {
            rs.metadata.owner_references.push(OwnerReference {
                uid: uid.into(),
                kind: "Deployment".into(),
                controller: Some(true),
                ..OwnerReference::default()
            });
        }
        rs.spec.replicas = Some(0);
        rs.spec.template = d.spec.template.clone();
        rs
    };
    cluster
        .cache
        .apply(Object::ReplicaSet(rs("orphan", "web", None)));
    cluster
        .cache
        .apply(Object::ReplicaSet(rs("strayed", "api", Some("d-uid"))));
    cluster
        .cache
        .apply(Object::ReplicaSet(rs("other", "web", Some("x-uid"))));
    let action = DeploymentController.reconcile(&key("web"), &cluster.cache, cluster.now);
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
    assert_eq!(
        updates,
        [("strayed", vec![]), ("orphan", vec!["d-uid"])],
        "released, then adopted (and scaled in the same update)"
    );
    assert!(
        !action
            .commands
            .iter()
            .any(|c| matches!(c, Command::Create(_))),
        "the adopted ReplicaSet has the template: it is the new one"
    );
}

#[test]
fn old_replica_sets_beyond_the_limit_are_deleted_only_when_empty() {
    let mut cluster = Cluster::new();
    let mut d = deployment("web", 1, "v3");
    d.metadata.uid = "d-uid".into();
    d.metadata.generation = 1;
    d.spec.revision_history_limit = Some(0);
    cluster.cache.apply(Object::Deployment(d.clone()));
    for (name, revision, replicas, status_replicas) in [("web-a", "1", 0, 0), ("web-b", "2", 0, 1)]
    {
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                annotations: [(REVISION.to_owned(), revision.to_owned())].into(),
                owner_references: vec![controller_ref("apps/v1", "Deployment", &d.metadata)],
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        };
        rs.spec.replicas = Some(replicas);
        rs.status.replicas = status_replicas;
        set_image(&mut d, &format!("v{revision}"));
        rs.spec.template = d.spec.template.clone();
        cluster.cache.apply(Object::ReplicaSet(rs));
    }
    let mut new = ReplicaSet {
        metadata: ObjectMeta {
            name: "web-c".into(),
            namespace: "default".into(),
            uid: "uid-web-c".into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            annotations: [
                (REVISION.to_owned(), "3".to_owned()),
                (util::DESIRED_REPLICAS.to_owned(), "1".to_owned()),
                (util::MAX_REPLICAS.to_owned(), "2".to_owned()),
            ]
            .into(),
            owner_references: vec![controller_ref("apps/v1", "Deployment", &d.metadata)],
            ..ObjectMeta::default()
        },
        ..ReplicaSet::default()
    };
    new.spec.replicas = Some(1);
    new.status.replicas = 1;
    new.status.available_replicas = 1;
    set_image(&mut d, "v3");
    new.spec.template = d.spec.template.clone();
    cluster.cache.apply(Object::ReplicaSet(new));
    let mut complete = d.clone();
    complete.status.observed_generation = 1;
    complete.status.replicas = 1;
    complete.status.updated_replicas = 1;
    complete.status.available_replicas = 1;
    cluster.cache.apply(Object::Deployment(complete));

    let action = DeploymentController.reconcile(&key("web"), &cluster.cache, cluster.now);
    let deletes: Vec<&Command> = action
        .commands
        .iter()
        .filter(|c| matches!(c, Command::Delete { .. }))
        .collect();
    assert_eq!(
        deletes,
        [&Command::Delete {
            key: ObjectKey::new("ReplicaSet", "default", "web-a"),
            uid: Some("uid-web-a".into()),
            propagation: Propagation::Background,
        }],
        "web-b still reports a pod"
    );
}

#[test]
fn keys_map_replica_sets_and_recreate_pods_to_their_deployment() {
    let mut cluster = Cluster::new();
    let mut d = deployment("db", 1, "v1");
    d.spec.strategy.type_ = "Recreate".into();
    assert!(cluster.create(Object::Deployment(d)));
    cluster.settle();
    let rs = Object::ReplicaSet(cluster.replica_sets()[0].clone());
    assert_eq!(
        DeploymentController.keys_for(&rs, &cluster.cache),
        [key("db")]
    );
    let pod = Object::Pod(cluster.cache.pods().next().unwrap().clone());
    assert_eq!(
        DeploymentController.keys_for(&pod, &cluster.cache),
        [key("db")]
    );

    let mut orphan = ReplicaSet::default();
    orphan.metadata.namespace = "default".into();
    orphan.metadata.labels = [("app".to_owned(), "db".to_owned())].into();
    assert_eq!(
        DeploymentController.keys_for(&Object::ReplicaSet(orphan), &cluster.cache),
        [key("db")],
        "an orphan goes to the Deployments that could adopt it"
    );

    let mut rolling = rolled_out(deployment("web", 1, "v1"));
    rolling.settle();
    let pod = Object::Pod(rolling.cache.pods().next().unwrap().clone());
    assert!(
        DeploymentController
            .keys_for(&pod, &rolling.cache)
            .is_empty(),
        "a rolling update follows its ReplicaSets' status, not pods"
    );
}

#[test]
fn a_taken_name_with_another_template_bumps_the_collision_count() {
    let mut cluster = Cluster::new();
    let d = deployment("web", 1, "v1");
    assert!(cluster.create(Object::Deployment(d)));
    let d = cluster.deployment("web").clone();
    let mut squatter = ReplicaSet::default();
    squatter.metadata.name = format!("web-{}", compute_hash(&d.spec.template, None));
    squatter.metadata.namespace = "default".into();
    squatter.metadata.uid = "squatter".into();
    cluster.cache.apply(Object::ReplicaSet(squatter));
    let action = DeploymentController.reconcile(&key("web"), &cluster.cache, cluster.now);
    let [Command::UpdateStatus(status)] = action.commands.as_slice() else {
        panic!("{:#?}", action.commands);
    };
    let Object::Deployment(updated) = status.as_ref() else {
        panic!()
    };
    assert_eq!(updated.status.collision_count, Some(1));
    cluster.settle();
    let names: Vec<String> = cluster
        .replica_sets()
        .iter()
        .map(|rs| rs.metadata.name.clone())
        .collect();
    assert!(names.contains(&format!("web-{}", compute_hash(&d.spec.template, Some(1)))));
}

#[test]
fn a_deployment_with_maxsurge_as_a_count_and_zero_unavailable_never_dips() {
    let mut d = deployment("web", 3, "v1");
    d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
        max_surge: Some(IntOrString::Int(1)),
        max_unavailable: Some(IntOrString::Int(0)),
    });
    let mut cluster = rolled_out(d);
    cluster.edit("web", |d| set_image(d, "v2"));
    for _ in 0..20 {
        cluster.settle();
        let (active, available) = cluster.pod_counts();
        assert!(
            active <= 4 && available >= 3,
            "{active} active, {available} available"
        );
        if rollout_status(cluster.deployment("web"))
            .unwrap()
            .ends_with("successfully rolled out")
        {
            return;
        }
        cluster.kubelet();
    }
    panic!("rollout did not finish");
}
