//! Effective pod requests and node allocatable, parsed once per pod or node
//! change so that the filters and scores only compare integers.
//!
//! Requests follow Kubernetes' `resource.PodRequests`
//! (`k8s.io/component-helpers/resource/helpers.go`): the regular containers
//! and the sidecars (init containers with `restartPolicy: Always`) add up,
//! each ordinary init container needs its own requests plus the sidecars
//! started before it, the pod needs the larger of the two, and
//! `spec.overhead` comes on top. Pod-level `spec.resources` is not acted on
//! (see the model). Units are kube-scheduler's: cpu in millicores rounded up
//! (`MilliValue`), everything else in whole units rounded up (`Value`).

use flotilla_shared::model::{NodeStatus, PodSpec, ResourceList};
use flotilla_shared::quantity::{Amount, QuantityError};

/// kube-scheduler's request for a container that names no cpu, used only
/// for scoring (`schedutil.DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// kube-scheduler's request for a container that names no memory, used only
/// for scoring (`schedutil.DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

const CPU: &str = "cpu";
const MEMORY: &str = "memory";
const PODS: &str = "pods";

/// Why a pod's requests cannot be read (admission normally refuses such pods).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("container {container:?} requests {resource}: {source}")]
    Quantity {
        container: String,
        resource: String,
        source: QuantityError,
    },
    #[error("pod overhead {resource}: {source}")]
    Overhead {
        resource: String,
        source: QuantityError,
    },
}

/// Exact amounts by resource name, as summed before rounding.
#[derive(Debug, Clone, Default)]
struct Amounts(Vec<(String, Amount)>);

impl Amounts {
    fn parse(list: &ResourceList) -> Result<Self, (String, QuantityError)> {
        list.iter()
            .map(|(name, q)| Ok((name.clone(), q.parse().map_err(|e| (name.clone(), e))?)))
            .collect::<Result<_, _>>()
            .map(Amounts)
    }

    fn entry(&mut self, name: &str) -> &mut Amount {
        let index = match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.0.push((name.to_owned(), Amount::zero()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }

    fn add(&mut self, other: &Amounts) {
        for (name, amount) in &other.0 {
            let entry = self.entry(name);
            *entry = entry.checked_add(*amount).unwrap_or(Amount::MAX);
        }
    }

    fn max(&mut self, other: &Amounts) {
        for (name, amount) in &other.0 {
            let entry = self.entry(name);
            if *amount > *entry {
                *entry = *amount;
            }
        }
    }

    /// Adds `default` for each of cpu and memory the list does not name
    /// (`NonMissingContainerRequests`).
    fn with_defaults(mut self) -> Self {
        if !self.0.iter().any(|(n, _)| n == CPU) {
            self.0.push((
                CPU.to_owned(),
                Amount::from_millis(DEFAULT_MILLI_CPU_REQUEST),
            ));
        }
        if !self.0.iter().any(|(n, _)| n == MEMORY) {
            self.0.push((
                MEMORY.to_owned(),
                Amount::from_units(DEFAULT_MEMORY_REQUEST),
            ));
        }
        self
    }
}

fn millis(amount: Amount) -> i64 {
    i64::try_from(amount.millis_ceil()).unwrap_or(i64::MAX)
}

/// Integer requests or allocatable: cpu in millicores, memory in bytes,
/// other resources (`ephemeral-storage`, `hugepages-*`, extended resources
/// such as `example.com/gpio`) in units, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Resources {
    pub cpu_m: i64,
    pub memory: i64,
    pub scalars: Vec<(String, i64)>,
}

impl Resources {
    fn from_amounts(amounts: &Amounts) -> Self {
        let mut out = Resources::default();
        for (name, amount) in &amounts.0 {
            match name.as_str() {
                CPU => out.cpu_m = millis(*amount),
                MEMORY => out.memory = amount.units_ceil(),
                PODS => {}
                _ => out.scalars.push((name.clone(), amount.units_ceil())),
            }
        }
        out.scalars.sort();
        out
    }

    /// The amount of the non-cpu, non-memory resource `name` (0 if absent).
    pub(super) fn scalar(&self, name: &str) -> i64 {
        self.scalars
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// Adds (`sign` 1) or removes (`sign` -1) `other`.
    pub(super) fn apply(&mut self, other: &Resources, sign: i64) {
        self.cpu_m = self.cpu_m.saturating_add(sign * other.cpu_m);
        self.memory = self.memory.saturating_add(sign * other.memory);
        for (name, value) in &other.scalars {
            match self.scalars.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v = v.saturating_add(sign * value),
                None => {
                    self.scalars.push((name.clone(), sign * value));
                    self.scalars.sort();
                }
            }
        }
        self.scalars.retain(|(_, v)| *v != 0);
    }
}

/// What a pod takes from its node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PodUsage {
    /// The effective requests the fit filter checks.
    pub requests: Resources,
    /// Cpu with [`DEFAULT_MILLI_CPU_REQUEST`] for containers that name none,
    /// as the LeastAllocated score counts it.
    pub nonzero_cpu_m: i64,
    /// Memory with [`DEFAULT_MEMORY_REQUEST`] for containers that name none.
    pub nonzero_memory: i64,
}

impl PodUsage {
    pub(super) fn of(spec: &PodSpec) -> Result<Self, RequestError> {
        let requests = effective_requests(spec, false)?;
        let nonzero = effective_requests(spec, true)?;
        Ok(PodUsage {
            requests: Resources::from_amounts(&requests),
            nonzero_cpu_m: nonzero
                .0
                .iter()
                .find(|(n, _)| n == CPU)
                .map_or(0, |(_, a)| millis(*a)),
            nonzero_memory: nonzero
                .0
                .iter()
                .find(|(n, _)| n == MEMORY)
                .map_or(0, |(_, a)| a.units_ceil()),
        })
    }
}

fn effective_requests(spec: &PodSpec, non_missing: bool) -> Result<Amounts, RequestError> {
    let container_requests = |c: &flotilla_shared::model::Container| {
        let parsed = Amounts::parse(&c.resources.requests).map_err(|(resource, source)| {
            RequestError::Quantity {
                container: c.name.clone(),
                resource,
                source,
            }
        })?;
        Ok::<_, RequestError>(if non_missing {
            parsed.with_defaults()
        } else {
            parsed
        })
    };
    let mut total = Amounts::default();
    for container in &spec.containers {
        total.add(&container_requests(container)?);
    }
    let mut sidecars = Amounts::default();
    let mut init_peak = Amounts::default();
    for container in &spec.init_containers {
        let own = container_requests(container)?;
        if container.is_sidecar() {
            total.add(&own);
            sidecars.add(&own);
            init_peak.max(&sidecars);
        } else {
            let mut needed = own;
            needed.add(&sidecars);
            init_peak.max(&needed);
        }
    }
    total.max(&init_peak);
    let overhead = Amounts::parse(&spec.overhead)
        .map_err(|(resource, source)| RequestError::Overhead { resource, source })?;
    total.add(&overhead);
    Ok(total)
}

/// What a node offers pods: `status.allocatable`, or `status.capacity` when
/// the node reports no allocatable. A quantity that does not parse offers
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Allocatable {
    pub resources: Resources,
    pub pods: i64,
}

impl Allocatable {
    pub(super) fn of(status: &NodeStatus) -> Self {
        let list = if status.allocatable.is_empty() {
            &status.capacity
        } else {
            &status.allocatable
        };
        let amounts = Amounts(
            list.iter()
                .filter_map(|(name, q)| Some((name.clone(), q.parse().ok()?)))
                .collect(),
        );
        let pods = amounts
            .0
            .iter()
            .find(|(n, _)| n == PODS)
            .map_or(0, |(_, a)| a.units_ceil());
        Allocatable {
            resources: Resources::from_amounts(&amounts),
            pods,
        }
    }
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{Container, ResourceRequirements};
    use flotilla_shared::quantity::Quantity;

    use super::*;

    fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    }

    fn container(name: &str, requests: &[(&str, &str)], sidecar: bool) -> Container {
        Container {
            name: name.to_owned(),
            resources: ResourceRequirements {
                requests: list(requests),
                ..ResourceRequirements::default()
            },
            restart_policy: sidecar.then(|| "Always".to_owned()),
            ..Container::default()
        }
    }

    #[test]
    fn effective_requests_follow_kubernetes_pod_requests() {
        struct Case {
            name: &'static str,
            init: Vec<Container>,
            containers: Vec<Container>,
            overhead: ResourceList,
            cpu_m: i64,
            memory: i64,
            nonzero_cpu_m: i64,
            nonzero_memory: i64,
        }
        let mi = 1024 * 1024;
        let cases = [
            Case {
                name: "regular containers add up exactly before rounding",
                init: vec![],
                containers: vec![
                    container("a", &[("cpu", "100m"), ("memory", "64Mi")], false),
                    container("b", &[("cpu", "0.9")], false),
                ],
                overhead: ResourceList::new(),
                cpu_m: 1000,
                memory: 64 * mi,
                nonzero_cpu_m: 1000,
                nonzero_memory: 64 * mi + DEFAULT_MEMORY_REQUEST,
            },
            Case {
                name: "a larger init container sets the request",
                init: vec![container(
                    "migrate",
                    &[("cpu", "2"), ("memory", "1Mi")],
                    false,
                )],
                containers: vec![container(
                    "app",
                    &[("cpu", "500m"), ("memory", "64Mi")],
                    false,
                )],
                overhead: ResourceList::new(),
                cpu_m: 2000,
                memory: 64 * mi,
                nonzero_cpu_m: 2000,
                nonzero_memory: 64 * mi,
            },
            Case {
                name: "sidecars add to the containers and to later init containers",
                init: vec![
                    container("log", &[("cpu", "200m")], true),
                    container("migrate", &[("cpu", "1")], false),
                ],
                containers: vec![container("app", &[("cpu", "500m")], false)],
                overhead: ResourceList::new(),
                cpu_m: 1200,
                memory: 0,
                nonzero_cpu_m: 1200,
                // app and log run together; migrate runs beside log.
                nonzero_memory: 2 * DEFAULT_MEMORY_REQUEST,
            },
            Case {
                name: "overhead comes on top",
                init: vec![],
                containers: vec![container("app", &[("cpu", "250m")], false)],
                overhead: list(&[("cpu", "50m"), ("memory", "10Mi")]),
                cpu_m: 300,
                memory: 10 * mi,
                nonzero_cpu_m: 300,
                nonzero_memory: DEFAULT_MEMORY_REQUEST + 10 * mi,
            },
            Case {
                name: "best effort pods request nothing but score with defaults",
                init: vec![],
                containers: vec![container("a", &[], false), container("b", &[], false)],
                overhead: ResourceList::new(),
                cpu_m: 0,
                memory: 0,
                nonzero_cpu_m: 2 * DEFAULT_MILLI_CPU_REQUEST,
                nonzero_memory: 2 * DEFAULT_MEMORY_REQUEST,
            },
            Case {
                name: "an explicit zero request is kept for scoring",
                init: vec![],
                containers: vec![container("a", &[("cpu", "0"), ("memory", "0")], false)],
                overhead: ResourceList::new(),
                cpu_m: 0,
                memory: 0,
                nonzero_cpu_m: 0,
                nonzero_memory: 0,
            },
        ];
        for case in cases {
            let spec = PodSpec {
                init_containers: case.init,
                containers: case.containers,
                overhead: case.overhead,
                ..PodSpec::default()
            };
            let usage = PodUsage::of(&spec).unwrap();
            assert_eq!(usage.requests.cpu_m, case.cpu_m, "{}", case.name);
            assert_eq!(usage.requests.memory, case.memory, "{}", case.name);
            assert_eq!(usage.nonzero_cpu_m, case.nonzero_cpu_m, "{}", case.name);
            assert_eq!(usage.nonzero_memory, case.nonzero_memory, "{}", case.name);
        }
    }

    #[test]
    fn extended_resources_are_kept_as_scalars_sorted_by_name() {
        let spec = PodSpec {
            containers: vec![container(
                "a",
                &[("example.com/gpio", "2"), ("ephemeral-storage", "1Gi")],
                false,
            )],
            ..PodSpec::default()
        };
        let usage = PodUsage::of(&spec).unwrap();
        assert_eq!(
            usage.requests.scalars,
            vec![
                ("ephemeral-storage".to_owned(), 1 << 30),
                ("example.com/gpio".to_owned(), 2)
            ]
        );
        let mut total = Resources::default();
        total.apply(&usage.requests, 1);
        total.apply(&usage.requests, 1);
        assert_eq!(total.scalar("example.com/gpio"), 4);
        total.apply(&usage.requests, -1);
        total.apply(&usage.requests, -1);
        assert_eq!(total, Resources::default());
    }

    #[test]
    fn malformed_requests_name_the_container_and_resource() {
        let spec = PodSpec {
            containers: vec![container("app", &[("cpu", "lots")], false)],
            ..PodSpec::default()
        };
        let err = PodUsage::of(&spec).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("container \"app\" requests cpu: "),
            "{err}"
        );
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let mut status = NodeStatus {
            capacity: list(&[("cpu", "4"), ("memory", "4Gi"), ("pods", "110")]),
            ..NodeStatus::default()
        };
        let from_capacity = Allocatable::of(&status);
        assert_eq!(from_capacity.resources.cpu_m, 4000);
        assert_eq!(from_capacity.pods, 110);
        status.allocatable = list(&[("cpu", "3500m"), ("memory", "3Gi"), ("pods", "20")]);
        let allocatable = Allocatable::of(&status);
        assert_eq!(allocatable.resources.cpu_m, 3500);
        assert_eq!(allocatable.resources.memory, 3 << 30);
        assert_eq!(allocatable.pods, 20);
        assert_eq!(allocatable.resources.scalars, vec![]);
    }
}
