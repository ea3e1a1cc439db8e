//! Rows of the workload controllers: `printReplicaSet`, `printDeployment`,
//! `printDaemonSet` and `printJob` in printers.go.

use std::time::SystemTime;

use flotilla_shared::model::{
    DaemonSet, Deployment, Job, JobCondition, ReplicaSet, condition_status,
};
use serde_json::json;

use super::Row;
use super::format::{containers, instant, label_selector, labels, selector_string, since};
use crate::api::time::age;

pub fn replica_set(rs: &ReplicaSet, now: SystemTime) -> Row {
    let (names, images) = containers(&rs.spec.template.spec.containers);
    Row::new(vec![
        json!(rs.metadata.name),
        json!(rs.spec.replicas.unwrap_or(1)),
        json!(rs.status.replicas),
        json!(rs.status.ready_replicas),
        json!(age(rs.metadata.creation_timestamp.as_ref(), now)),
        json!(names),
        json!(images),
        json!(label_selector(rs.spec.selector.as_ref())),
    ])
}

pub fn deployment(deploy: &Deployment, now: SystemTime) -> Row {
    let (names, images) = containers(&deploy.spec.template.spec.containers);
    let selector =
        selector_string(deploy.spec.selector.as_ref()).unwrap_or_else(|| "<invalid>".to_owned());
    let status = &deploy.status;
    Row::new(vec![
        json!(deploy.metadata.name),
        json!(format!(
            "{}/{}",
            status.ready_replicas,
            deploy.spec.replicas.unwrap_or(1)
        )),
        json!(status.updated_replicas),
        json!(status.available_replicas),
        json!(age(deploy.metadata.creation_timestamp.as_ref(), now)),
        json!(names),
        json!(images),
        json!(selector),
    ])
}

pub fn daemon_set(ds: &DaemonSet, now: SystemTime) -> Row {
    let (names, images) = containers(&ds.spec.template.spec.containers);
    let status = &ds.status;
    Row::new(vec![
        json!(ds.metadata.name),
        json!(status.desired_number_scheduled),
        json!(status.current_number_scheduled),
        json!(status.number_ready),
        json!(status.updated_number_scheduled),
        json!(status.number_available),
        json!(labels(&ds.spec.template.spec.node_selector)),
        json!(age(ds.metadata.creation_timestamp.as_ref(), now)),
        json!(names),
        json!(images),
        json!(label_selector(ds.spec.selector.as_ref())),
    ])
}

pub fn job(job: &Job, now: SystemTime) -> Row {
    let succeeded = job.status.succeeded;
    let completions = match (job.spec.completions, job.spec.parallelism.unwrap_or(0)) {
        (Some(completions), _) => format!("{succeeded}/{completions}"),
        (None, parallelism) if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let start = instant(job.status.start_time.as_ref().map(|t| t.0.as_str()));
    let end = instant(job.status.completion_time.as_ref().map(|t| t.0.as_str()));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(start), None) => since(start, now),
        (Some(start), Some(end)) => since(start, end),
    };
    let (names, images) = containers(&job.spec.template.spec.containers);
    Row::new(vec![
        json!(job.metadata.name),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        json!(age(job.metadata.creation_timestamp.as_ref(), now)),
        json!(names),
        json!(images),
        json!(label_selector(job.spec.selector.as_ref())),
    ])
}

/// The STATUS cell of a job, by the first decisive condition.
fn job_status(job: &Job) -> &'static str {
    let conditions = &job.status.conditions;
    if has_condition(conditions, "Complete") {
        "Complete"
    } else if has_condition(conditions, "Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has_condition(conditions, "Suspended") {
        "Suspended"
    } else if has_condition(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// `hasJobCondition`: whether the first condition of `type_` is true.
fn has_condition(conditions: &[JobCondition], type_: &str) -> bool {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .is_some_and(|c| c.status == condition_status::TRUE)
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{Container, LabelSelector, PodTemplateSpec, Time};
    use serde_json::Value;

    use super::*;
    use crate::api::time::parse_time;

    fn now() -> SystemTime {
        parse_time("2026-11-21T12:00:00Z").expect("valid")
    }

    fn time(text: &str) -> Option<Time> {
        Some(Time(text.to_owned()))
    }

    fn template(images: &[(&str, &str)]) -> PodTemplateSpec {
        let mut template = PodTemplateSpec::default();
        template.spec.containers = images
            .iter()
            .map(|(name, image)| Container {
                name: name.to_string(),
                image: image.to_string(),
                ..Container::default()
            })
            .collect();
        template
    }

    fn app_selector() -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: [("app".to_owned(), "web".to_owned())].into(),
            ..LabelSelector::default()
        })
    }

    fn condition(type_: &str, status: &str) -> JobCondition {
        JobCondition {
            type_: type_.into(),
            status: status.into(),
            ..JobCondition::default()
        }
    }

    #[test]
    fn deployment_cells_show_a_rollout_in_progress() {
        let mut deploy = Deployment::default();
        deploy.metadata.name = "web".into();
        deploy.metadata.creation_timestamp = time("2026-11-19T12:00:00Z");
        deploy.spec.replicas = Some(3);
        deploy.spec.selector = app_selector();
        deploy.spec.template = template(&[("web", "nginx:1.27"), ("log", "busybox")]);
        deploy.status.replicas = 4;
        deploy.status.updated_replicas = 1;
        deploy.status.ready_replicas = 2;
        deploy.status.available_replicas = 2;
        assert_eq!(
            Value::Array(deployment(&deploy, now()).cells),
            json!([
                "web",
                "2/3",
                1,
                2,
                "2d",
                "web,log",
                "nginx:1.27,busybox",
                "app=web"
            ])
        );

        // No selector: Kubernetes prints the empty selector, and defaults
        // replicas to one.
        deploy.spec.selector = None;
        deploy.spec.replicas = None;
        let cells = deployment(&deploy, now()).cells;
        assert_eq!(cells[1], json!("2/1"));
        assert_eq!(cells[7], json!(""));

        deploy.spec.selector = Some(LabelSelector {
            match_expressions: vec![flotilla_shared::model::LabelSelectorRequirement {
                key: "app".into(),
                operator: "Near".into(),
                values: vec![],
            }],
            ..LabelSelector::default()
        });
        assert_eq!(deployment(&deploy, now()).cells[7], json!("<invalid>"));
    }

    #[test]
    fn replica_set_cells_count_desired_current_ready() {
        let mut rs = ReplicaSet::default();
        rs.metadata.name = "web-7c9f5d8b6".into();
        rs.metadata.creation_timestamp = time("2026-11-21T11:00:00Z");
        rs.spec.replicas = Some(3);
        rs.spec.selector = app_selector();
        rs.spec.template = template(&[("web", "nginx:1.27")]);
        rs.status.replicas = 3;
        rs.status.ready_replicas = 1;
        assert_eq!(
            Value::Array(replica_set(&rs, now()).cells),
            json!([
                "web-7c9f5d8b6",
                3,
                3,
                1,
                "60m",
                "web",
                "nginx:1.27",
                "app=web"
            ])
        );
        rs.spec.selector = None;
        assert_eq!(replica_set(&rs, now()).cells[7], json!("<none>"));
    }

    #[test]
    fn daemon_set_cells_include_the_node_selector() {
        let mut ds = DaemonSet::default();
        ds.metadata.name = "agent".into();
        ds.metadata.creation_timestamp = time("2026-11-21T11:58:00Z");
        ds.spec.selector = app_selector();
        ds.spec.template = template(&[("agent", "flotilla/agent:0.3")]);
        ds.spec.template.spec.node_selector =
            [("kubernetes.io/arch".into(), "arm64".into())].into();
        ds.status.desired_number_scheduled = 5;
        ds.status.current_number_scheduled = 4;
        ds.status.number_ready = 3;
        ds.status.updated_number_scheduled = 2;
        ds.status.number_available = 1;
        assert_eq!(
            Value::Array(daemon_set(&ds, now()).cells),
            json!([
                "agent",
                5,
                4,
                3,
                2,
                1,
                "kubernetes.io/arch=arm64",
                "2m",
                "agent",
                "flotilla/agent:0.3",
                "app=web"
            ])
        );
        ds.spec.template.spec.node_selector.clear();
        assert_eq!(daemon_set(&ds, now()).cells[6], json!("<none>"));
    }

    #[test]
    fn job_cells_match_kubectl() {
        let base = {
            let mut job = Job::default();
            job.metadata.name = "backup".into();
            job.metadata.creation_timestamp = time("2026-11-21T11:00:00Z");
            job.spec.selector = app_selector();
            job.spec.template = template(&[("backup", "restic:0.17")]);
            job
        };
        let mut complete = base.clone();
        complete.spec.completions = Some(1);
        complete.status.succeeded = 1;
        complete.status.start_time = time("2026-11-21T11:00:00Z");
        complete.status.completion_time = time("2026-11-21T11:00:42Z");
        complete.status.conditions = vec![
            condition("SuccessCriteriaMet", "True"),
            condition("Complete", "True"),
        ];

        let mut running = base.clone();
        running.spec.completions = Some(5);
        running.spec.parallelism = Some(2);
        running.status.succeeded = 2;
        running.status.start_time = time("2026-11-21T11:55:00Z");

        let mut work_queue = base.clone();
        work_queue.spec.parallelism = Some(3);
        work_queue.status.conditions = vec![condition("Complete", "False")];

        let mut failed = base.clone();
        failed.status.conditions = vec![condition("Failed", "True")];

        let mut terminating = base.clone();
        terminating.metadata.deletion_timestamp = time("2026-11-21T11:59:00Z");
        terminating.status.conditions = vec![condition("Suspended", "True")];

        let mut suspended = base.clone();
        suspended.status.conditions = vec![condition("Suspended", "True")];

        let mut failing = base.clone();
        failing.status.conditions = vec![condition("FailureTarget", "True")];

        let cases: &[(&Job, Value)] = &[
            (
                &complete,
                json!([
                    "backup",
                    "Complete",
                    "1/1",
                    "42s",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
            (
                &running,
                json!([
                    "backup",
                    "Running",
                    "2/5",
                    "5m",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
            (
                &work_queue,
                json!([
                    "backup",
                    "Running",
                    "0/1 of 3",
                    "",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
            (
                &failed,
                json!([
                    "backup",
                    "Failed",
                    "0/1",
                    "",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
            (
                &terminating,
                json!([
                    "backup",
                    "Terminating",
                    "0/1",
                    "",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
            (
                &suspended,
                json!([
                    "backup",
                    "Suspended",
                    "0/1",
                    "",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
            (
                &failing,
                json!([
                    "backup",
                    "FailureTarget",
                    "0/1",
                    "",
                    "60m",
                    "backup",
                    "restic:0.17",
                    "app=web"
                ]),
            ),
        ];
        for (i, (job, want)) in cases.iter().enumerate() {
            assert_eq!(
                Value::Array(super::job(job, now()).cells),
                *want,
                "case {i}"
            );
        }
    }
}
