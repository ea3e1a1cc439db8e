//! The Job controller's core, tested by the commands it emits.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Container, ContainerStatus, Job, JobCondition, LabelSelector, Object, Pod, PodCondition, Time,
    condition_status, pod_condition, pod_phase, restart_policy,
};

use super::*;
use crate::api::time::{format_time, parse_time};

const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn time(seconds: u64) -> Option<Time> {
    Some(format_time(at(seconds)))
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    let mut job = Job::default();
    job.metadata.name = "pi".into();
    job.metadata.namespace = "default".into();
    job.metadata.uid = "job-uid".into();
    job.spec.completions = completions;
    job.spec.parallelism = Some(parallelism);
    job.spec.backoff_limit = Some(6);
    job.spec.suspend = Some(false);
    job.spec.selector = Some(LabelSelector {
        match_labels: BTreeMap::from([(
            "batch.kubernetes.io/controller-uid".to_owned(),
            "job-uid".to_owned(),
        )]),
        ..LabelSelector::default()
    });
    job.spec.template.metadata.labels = BTreeMap::from([
        (
            "batch.kubernetes.io/controller-uid".to_owned(),
            "job-uid".to_owned(),
        ),
        ("batch.kubernetes.io/job-name".to_owned(), "pi".to_owned()),
        ("controller-uid".to_owned(), "job-uid".to_owned()),
        ("job-name".to_owned(), "pi".to_owned()),
    ]);
    job.spec.template.spec.restart_policy = restart_policy::NEVER.into();
    job.spec.template.spec.containers = vec![Container {
        name: "pi".into(),
        image: "perl".into(),
        ..Container::default()
    }];
    job.status.start_time = time(0);
    job
}

/// A pod of the job created at `created` seconds, in `phase`; a
/// finished one finished at `finished` (its Ready condition turned False).
fn pod(job: &Job, name: &str, phase: &str, created: u64, finished: u64) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = name.into();
    pod.metadata.namespace = "default".into();
    pod.metadata.uid = format!("uid-{name}");
    pod.metadata.creation_timestamp = time(created);
    pod.metadata.labels = job.spec.template.metadata.labels.clone();
    pod.metadata.owner_references = vec![pods::controller_ref(&Object::Job(job.clone()))];
    pod.spec = job.spec.template.spec.clone();
    pod.spec.node_name = "n1".into();
    pod.status.phase = phase.into();
    let ready = match phase {
        pod_phase::RUNNING => Some((condition_status::TRUE, created)),
        pod_phase::SUCCEEDED | pod_phase::FAILED => Some((condition_status::FALSE, finished)),
        _ => None,
    };
    if let Some((status, since)) = ready {
        pod.status.conditions.push(PodCondition {
            type_: pod_condition::READY.into(),
            status: status.into(),
            last_transition_time: time(since),
            ..PodCondition::default()
        });
    }
    pod
}

fn running(job: &Job, name: &str, created: u64) -> Pod {
    pod(job, name, pod_phase::RUNNING, created, 0)
}

fn pending(job: &Job, name: &str, created: u64) -> Pod {
    pod(job, name, pod_phase::PENDING, created, 0)
}

fn succeeded(job: &Job, name: &str, finished: u64) -> Pod {
    pod(job, name, pod_phase::SUCCEEDED, 0, finished)
}

fn failed(job: &Job, name: &str, finished: u64) -> Pod {
    pod(job, name, pod_phase::FAILED, 0, finished)
}

fn deleting(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = time(1);
    pod
}

fn with_condition(mut job: Job, type_: &str, status: &str, reason: &str) -> Job {
    job.status.conditions.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        last_probe_time: time(0),
        last_transition_time: time(0),
        ..JobCondition::default()
    });
    job
}

fn offset(t: &Option<Time>) -> String {
    match t.as_ref().and_then(|t| parse_time(&t.0)) {
        Some(t) => {
            let secs = t.duration_since(at(0)).unwrap_or_default().as_secs();
            format!("t+{secs}")
        }
        None => "-".into(),
    }
}

/// Commands as lines a test can compare.
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
                "create".to_owned()
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
                assert_eq!(
                    (regarding.kind.as_str(), regarding.name.as_str()),
                    ("Job", "pi")
                );
                let message =
                    message.replace(&format!("Created pod: {created}"), "Created pod: <new>");
                format!("{} {reason}: {message}", type_.as_str())
            }
            Command::UpdateStatus(object) => {
                let Object::Job(job) = object.as_ref() else {
                    panic!("status of {object:?}");
                };
                let s = &job.status;
                let conditions: Vec<String> = s
                    .conditions
                    .iter()
                    .map(|c| {
                        assert_eq!(c.last_transition_time, c.last_probe_time);
                        format!(
                            "{}={}({}) {}",
                            c.type_,
                            c.status,
                            c.reason,
                            offset(&c.last_transition_time)
                        )
                    })
                    .collect();
                format!(
                    "status active={} succeeded={} failed={} ready={} start={} done={} [{}]",
                    s.active,
                    s.succeeded,
                    s.failed,
                    s.ready.map_or("-".to_owned(), |r| r.to_string()),
                    offset(&s.start_time),
                    offset(&s.completion_time),
                    conditions.join(", ")
                )
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn reconcile(job: &Job, pods: Vec<Pod>, now: u64) -> Action {
    let mut cache = Cache::new();
    cache.apply(Object::Job(job.clone()));
    for pod in pods {
        cache.apply(Object::Pod(pod));
    }
    JobController.reconcile(&ObjectKey::new("Job", "default", "pi"), &cache, at(now))
}

const CREATED: &str = "Normal SuccessfulCreate: Created pod: <new>";

#[test]
fn pods_are_created_and_deleted_towards_parallelism_and_completions() {
    struct Case {
        name: &'static str,
        job: Job,
        pods: fn(&Job) -> Vec<Pod>,
        want: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "a new job starts its clock and runs parallelism pods",
            job: Job {
                status: Default::default(),
                ..job(Some(5), 2)
            },
            pods: |_| vec![],
            want: vec![
                "create",
                CREATED,
                "create",
                CREATED,
                "status active=2 succeeded=0 failed=0 ready=0 start=t+100 done=- []",
            ],
        },
        Case {
            name: "no more pods than completions remain",
            job: job(Some(5), 3),
            pods: |j| {
                vec![
                    succeeded(j, "pi-1", 10),
                    succeeded(j, "pi-2", 10),
                    succeeded(j, "pi-3", 10),
                    running(j, "pi-4", 20),
                ]
            },
            want: vec![
                "create",
                CREATED,
                "status active=2 succeeded=3 failed=0 ready=1 start=t+0 done=- []",
            ],
        },
        Case {
            name: "lowered parallelism deletes the not-ready and newest first",
            job: job(Some(10), 1),
            pods: |j| {
                vec![
                    running(j, "pi-old", 10),
                    pending(j, "pi-new", 30),
                    pending(j, "pi-mid", 20),
                ]
            },
            want: vec![
                "delete pi-new",
                "Normal SuccessfulDelete: Deleted pod: pi-new",
                "delete pi-mid",
                "Normal SuccessfulDelete: Deleted pod: pi-mid",
                "status active=1 succeeded=0 failed=0 ready=1 start=t+0 done=- []",
            ],
        },
        Case {
            name: "enough successes complete the job",
            job: job(Some(2), 2),
            pods: |j| vec![succeeded(j, "pi-1", 10), succeeded(j, "pi-2", 20)],
            want: vec![
                "Normal Completed: Job completed",
                "status active=0 succeeded=2 failed=0 ready=0 start=t+0 done=t+100 [SuccessCriteriaMet=True(CompletionsReached) t+100, Complete=True(CompletionsReached) t+100]",
            ],
        },
        Case {
            name: "failures below the backoff limit do not count as completions",
            job: job(Some(2), 2),
            pods: |j| vec![succeeded(j, "pi-1", 10), failed(j, "pi-2", 20)],
            want: vec![
                "create",
                CREATED,
                "status active=1 succeeded=1 failed=1 ready=0 start=t+0 done=- []",
            ],
        },
        Case {
            name: "without completions: parallelism pods",
            job: job(None, 3),
            pods: |_| vec![],
            want: vec![
                "create",
                CREATED,
                "create",
                CREATED,
                "create",
                CREATED,
                "status active=3 succeeded=0 failed=0 ready=0 start=t+0 done=- []",
            ],
        },
        Case {
            name: "without completions: after one success no new pods, the rest finish",
            job: job(None, 3),
            pods: |j| vec![succeeded(j, "pi-1", 10), running(j, "pi-2", 5)],
            want: vec!["status active=1 succeeded=1 failed=0 ready=1 start=t+0 done=- []"],
        },
        Case {
            name: "without completions: one success and nothing active completes",
            job: job(None, 3),
            pods: |j| vec![succeeded(j, "pi-1", 10), failed(j, "pi-2", 20)],
            want: vec![
                "Normal Completed: Job completed",
                "status active=0 succeeded=1 failed=1 ready=0 start=t+0 done=t+100 [SuccessCriteriaMet=True(CompletionsReached) t+100, Complete=True(CompletionsReached) t+100]",
            ],
        },
        Case {
            name: "a job as it should be is left alone",
            job: Job {
                status: flotilla_shared::model::JobStatus {
                    active: 1,
                    ready: Some(1),
                    start_time: time(0),
                    ..Default::default()
                },
                ..job(Some(1), 1)
            },
            pods: |j| vec![running(j, "pi-1", 5)],
            want: vec![],
        },
        Case {
            name: "a finished job is left alone",
            job: with_condition(job(Some(1), 1), "Complete", "True", "CompletionsReached"),
            pods: |_| vec![],
            want: vec![],
        },
    ];
    for case in cases {
        let pods = (case.pods)(&case.job);
        let action = reconcile(&case.job, pods, 100);
        assert_eq!(summary(&action.commands), case.want, "{}", case.name);
        assert_eq!(action.requeue_after, None, "{}", case.name);
    }
}

#[test]
fn created_pods_carry_the_template_and_the_job_as_controller() {
    let job = Job {
        status: Default::default(),
        ..job(Some(1), 1)
    };
    let action = reconcile(&job, vec![], 0);
    let Command::Create(object) = &action.commands[0] else {
        panic!("{:?}", action.commands);
    };
    let Object::Pod(pod) = object.as_ref() else {
        panic!("{object:?}");
    };
    assert!(
        pod.metadata.name.starts_with("pi-"),
        "{}",
        pod.metadata.name
    );
    assert_eq!(pod.metadata.namespace, "default");
    assert_eq!(pod.metadata.labels, job.spec.template.metadata.labels);
    assert_eq!(pod.spec, job.spec.template.spec);
    let owner = &pod.metadata.owner_references[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("batch/v1", "Job", "pi", "job-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
}

#[test]
fn exceeding_the_backoff_limit_fails_the_job_once_its_pods_are_gone() {
    let mut j = job(Some(5), 1);
    j.spec.backoff_limit = Some(2);
    let failures = |j: &Job| {
        vec![
            failed(j, "pi-1", 10),
            failed(j, "pi-2", 20),
            failed(j, "pi-3", 30),
        ]
    };

    // At the limit: still retrying.
    let action = reconcile(&j, failures(&j)[..2].to_vec(), 100);
    assert!(summary(&action.commands).contains(&"create".to_owned()));

    // Past it: the active pod is deleted, FailureTarget first.
    let mut pods = failures(&j);
    pods.push(running(&j, "pi-4", 40));
    let action = reconcile(&j, pods, 100);
    assert_eq!(
        summary(&action.commands),
        vec![
            "delete pi-4",
            "Normal SuccessfulDelete: Deleted pod: pi-4",
            "status active=0 succeeded=0 failed=3 ready=0 start=t+0 done=- [FailureTarget=True(BackoffLimitExceeded) t+100]",
        ]
    );
    let Command::UpdateStatus(next) = &action.commands[2] else {
        unreachable!()
    };
    let Object::Job(j) = next.as_ref().clone() else {
        unreachable!()
    };

    // While the pod terminates, nothing changes.
    let mut pods = failures(&j);
    pods.push(deleting(running(&j, "pi-4", 40)));
    assert_eq!(reconcile(&j, pods, 110).commands, vec![]);

    // Once it stopped (failed, as deleted pods do), the job has Failed.
    let mut pods = failures(&j);
    pods.push(deleting(failed(&j, "pi-4", 115)));
    assert_eq!(
        summary(&reconcile(&j, pods, 120).commands),
        vec![
            "Warning BackoffLimitExceeded: Job has reached the specified backoff limit",
            "status active=0 succeeded=0 failed=3 ready=0 start=t+0 done=- [FailureTarget=True(BackoffLimitExceeded) t+100, Failed=True(BackoffLimitExceeded) t+120]",
        ]
    );
}

#[test]
fn container_restarts_count_against_the_backoff_limit_with_on_failure() {
    let mut j = job(Some(1), 1);
    j.spec.backoff_limit = Some(2);
    j.spec.template.spec.restart_policy = restart_policy::ON_FAILURE.into();
    let mut restarting = running(&j, "pi-1", 10);
    restarting.status.container_statuses = vec![ContainerStatus {
        name: "pi".into(),
        restart_count: 2,
        ..ContainerStatus::default()
    }];
    assert_eq!(
        summary(&reconcile(&j, vec![restarting], 100).commands),
        vec![
            "delete pi-1",
            "Normal SuccessfulDelete: Deleted pod: pi-1",
            "status active=0 succeeded=0 failed=0 ready=0 start=t+0 done=- [FailureTarget=True(BackoffLimitExceeded) t+100]",
        ]
    );
}

#[test]
fn replacements_of_failed_pods_back_off_exponentially() {
    /// (succeeded?, finished at) of the finished pods.
    type Finished = Vec<(bool, u64)>;
    let cases: Vec<(&str, Finished, Option<u64>)> = vec![
        // (succeeded?, finished at) in any order; the wait left at t+100, or None when it creates now.
        ("one failure 4 s ago", vec![(false, 96)], Some(6)),
        ("one failure 15 s ago", vec![(false, 85)], None),
        ("two failures", vec![(false, 50), (false, 100)], Some(20)),
        (
            "three failures",
            vec![(false, 10), (false, 100), (false, 50)],
            Some(40),
        ),
        (
            "six failures",
            (0..6).map(|i| (false, 100 - i)).collect(),
            Some(320),
        ),
        (
            "seven failures cap at six minutes",
            (0..7).map(|i| (false, 100 - i)).collect(),
            Some(360),
        ),
        (
            "a success resets the count",
            vec![(false, 10), (false, 20), (true, 30), (false, 95)],
            Some(5),
        ),
        (
            "a success last means no wait",
            vec![(false, 10), (true, 99)],
            None,
        ),
    ];
    for (name, finished, want) in cases {
        let mut j = job(Some(20), 1);
        j.spec.backoff_limit = Some(100);
        let pods = finished
            .iter()
            .enumerate()
            .map(|(i, &(ok, t))| {
                let name = format!("pi-{i}");
                if ok {
                    succeeded(&j, &name, t)
                } else {
                    failed(&j, &name, t)
                }
            })
            .collect();
        let action = reconcile(&j, pods, 100);
        let creates = summary(&action.commands).contains(&"create".to_owned());
        assert_eq!(creates, want.is_none(), "{name}");
        assert_eq!(
            action.requeue_after,
            want.map(Duration::from_secs),
            "{name}"
        );
    }
}

#[test]
fn backoff_delays_double_up_to_six_minutes() {
    let delays: Vec<u64> = (0..=8).map(|n| backoff_delay(n).as_secs()).collect();
    assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 320, 360, 360]);
}

#[test]
fn an_active_deadline_fails_the_job_and_is_waited_for() {
    let mut j = job(Some(1), 1);
    j.spec.active_deadline_seconds = Some(100);
    j.status.active = 1;
    j.status.ready = Some(1);

    let before = reconcile(&j, vec![running(&j, "pi-1", 5)], 30);
    assert_eq!(before.commands, vec![]);
    assert_eq!(before.requeue_after, Some(Duration::from_secs(70)));

    let at_deadline = reconcile(&j, vec![running(&j, "pi-1", 5)], 100);
    assert_eq!(
        summary(&at_deadline.commands),
        vec![
            "delete pi-1",
            "Normal SuccessfulDelete: Deleted pod: pi-1",
            "status active=0 succeeded=0 failed=0 ready=0 start=t+0 done=- [FailureTarget=True(DeadlineExceeded) t+100]",
        ]
    );

    // With nothing running, Failed follows at once.
    let idle = reconcile(&j, vec![], 150);
    assert_eq!(
        summary(&idle.commands),
        vec![
            "Warning DeadlineExceeded: Job was active longer than specified deadline",
            "status active=0 succeeded=0 failed=0 ready=0 start=t+0 done=- [FailureTarget=True(DeadlineExceeded) t+150, Failed=True(DeadlineExceeded) t+150]",
        ]
    );
}

#[test]
fn suspending_deletes_active_pods_and_resuming_restarts_the_clock() {
    // Created suspended: no clock, a Suspended condition.
    let mut j = job(Some(3), 2);
    j.spec.suspend = Some(true);
    j.status = Default::default();
    assert_eq!(
        summary(&reconcile(&j, vec![], 10).commands),
        vec![
            "Normal Suspended: Job suspended",
            "status active=0 succeeded=0 failed=0 ready=0 start=- done=- [Suspended=True(JobSuspended) t+10]",
        ]
    );

    // Suspended while running: its active pods go, finished ones stay.
    let mut j = job(Some(3), 2);
    j.spec.suspend = Some(true);
    let pods = vec![
        succeeded(&j, "pi-1", 20),
        running(&j, "pi-2", 30),
        running(&j, "pi-3", 40),
    ];
    let action = reconcile(&j, pods, 50);
    assert_eq!(
        summary(&action.commands),
        vec![
            "delete pi-3",
            "Normal SuccessfulDelete: Deleted pod: pi-3",
            "delete pi-2",
            "Normal SuccessfulDelete: Deleted pod: pi-2",
            "Normal Suspended: Job suspended",
            "status active=0 succeeded=1 failed=0 ready=0 start=t+0 done=- [Suspended=True(JobSuspended) t+50]",
        ]
    );

    // Deleted pods that stop as Failed are no failures of the job; resuming
    // clears the condition, restarts the clock and runs pods again.
    let mut j = with_condition(job(Some(3), 2), "Suspended", "True", "JobSuspended");
    j.status.succeeded = 1;
    let pods = vec![
        succeeded(&j, "pi-1", 20),
        deleting(failed(&j, "pi-2", 55)),
        deleting(failed(&j, "pi-3", 55)),
    ];
    assert_eq!(
        summary(&reconcile(&j, pods, 200).commands),
        vec![
            "create",
            CREATED,
            "create",
            CREATED,
            "Normal Resumed: Job resumed",
            "status active=2 succeeded=1 failed=0 ready=0 start=t+200 done=- [Suspended=False(JobResumed) t+200]",
        ]
    );
}

#[test]
fn keys_follow_the_controlling_job() {
    let j = job(Some(1), 1);
    let cache = Cache::new();
    let owned = running(&j, "pi-1", 0);
    let mut orphan = owned.clone();
    orphan.metadata.owner_references[0].controller = None;
    let key = ObjectKey::new("Job", "default", "pi");
    assert_eq!(
        JobController.keys_for(&Object::Job(j.clone()), &cache),
        vec![key.clone()]
    );
    assert_eq!(
        JobController.keys_for(&Object::Pod(owned), &cache),
        vec![key]
    );
    assert_eq!(JobController.keys_for(&Object::Pod(orphan), &cache), vec![]);
}
