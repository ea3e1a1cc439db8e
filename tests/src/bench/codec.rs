//! `flotilla-bench codec`: the hub → device desired state as Flotilla's
//! postcard wire message against the same pod as Kubernetes JSON (what a
//! kubelet receives through a watch), in bytes and in decode time.

use std::hint::black_box;
use std::time::Duration;

use flotilla_shared::manifest::{self, FieldValidation};
use flotilla_shared::model::{Object, Pod};
use flotilla_shared::wire as w;
use flotilla_shared::wire::{self, Message};
use serde_json::{Value, json};

use super::median_ns;

/// The figures, printed as the final JSON line.
#[derive(Debug)]
pub struct Report {
    pub wire_bytes: usize,
    pub json_bytes: usize,
    pub heartbeat_bytes: usize,
    pub wire_decode_ns: f64,
    pub json_decode_ns: f64,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "bench": "codec",
            "peer": "kubernetes-json",
            "wire_bytes": self.wire_bytes,
            "json_bytes": self.json_bytes,
            "size_ratio_vs_json": round3(self.wire_bytes as f64 / self.json_bytes as f64),
            "heartbeat_bytes": self.heartbeat_bytes,
            "wire_decode_ns": self.wire_decode_ns.round(),
            "json_decode_ns": self.json_decode_ns.round(),
            "decode_ratio_vs_json": round3(self.wire_decode_ns / self.json_decode_ns),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The pod both encodings carry: an nginx with env, a port, requests and
/// limits and a readiness probe, bound to a device, as the API stores it.
const POD_JSON: &str = r#"{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web-7d9f8b6c5-x2k4p", "namespace": "default",
               "uid": "6f1c2a9e-3b7d-4c1e-9a51-2d8f0e7b4c33", "labels": {"app": "web"}},
  "spec": {
    "nodeName": "pi-greenhouse-nw-017",
    "terminationGracePeriodSeconds": 30,
    "containers": [{
      "name": "nginx", "image": "registry.local:5000/nginx:1.25",
      "env": [{"name": "NGINX_PORT", "value": "80"}, {"name": "TZ", "value": "UTC"}],
      "ports": [{"name": "http", "containerPort": 80}],
      "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "500m", "memory": "128Mi"}},
      "readinessProbe": {"httpGet": {"path": "/", "port": 80},
                         "initialDelaySeconds": 2, "periodSeconds": 10, "timeoutSeconds": 1,
                         "successThreshold": 1, "failureThreshold": 3}
    }]
  }
}"#;

fn kubernetes_pod() -> Pod {
    let decoded =
        manifest::decode_json(POD_JSON.as_bytes(), FieldValidation::Strict).expect("pod decodes");
    Pod::try_from(decoded.object)
        .unwrap_or_else(|other: Object| panic!("not a pod: {}", other.kind()))
}

/// The same pod as the device's desired state carries it.
fn wire_state(pod: &Pod) -> w::DesiredState {
    let c = &pod.spec.containers[0];
    let amount = |list: &flotilla_shared::model::ResourceList| w::ResourceList {
        cpu_millis: list
            .get("cpu")
            .and_then(|q| q.parse().ok())
            .map(|a| a.millis_ceil() as u64),
        memory_bytes: list
            .get("memory")
            .and_then(|q| q.parse().ok())
            .map(|a| a.units_ceil() as u64),
        pids: None,
    };
    w::DesiredState {
        node: pod.spec.node_name.clone(),
        revision: 1_234_567,
        pods: vec![w::Pod {
            uid: pod.metadata.uid.clone(),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            labels: pod.metadata.labels.clone(),
            containers: vec![w::Container {
                name: c.name.clone(),
                image: c.image.clone(),
                env: c
                    .env
                    .iter()
                    .map(|e| w::EnvVar {
                        name: e.name.clone(),
                        value: e.value.clone(),
                    })
                    .collect(),
                ports: vec![w::ContainerPort {
                    name: "http".into(),
                    port: 80,
                    ..w::ContainerPort::default()
                }],
                resources: w::Resources {
                    requests: amount(&c.resources.requests),
                    limits: amount(&c.resources.limits),
                },
                readiness: Some(w::Probe {
                    action: w::ProbeAction::HttpGet {
                        scheme: w::HttpScheme::Http,
                        host: String::new(),
                        port: 80,
                        path: "/".into(),
                        headers: Vec::new(),
                    },
                    initial_delay_seconds: 2,
                    period_seconds: 10,
                    timeout_seconds: 1,
                    success_threshold: 1,
                    failure_threshold: 3,
                }),
                ..w::Container::default()
            }],
            termination_grace_period_seconds: 30,
            ..w::Pod::default()
        }],
        services: Vec::new(),
    }
}

fn heartbeat() -> Message {
    Message::Heartbeat(wire::Heartbeat {
        node: "pi-greenhouse-nw-017".into(),
        seq: 8_640,
        applied_revision: Some(1_234_567),
        uptime_seconds: 3 * 86_400,
        load_centi: 42,
        memory_available_kib: 412_000,
        disk_available_kib: 5_800_000,
        pods_running: 3,
        temperature_millicelsius: Some(51_500),
        ..Default::default()
    })
}

pub fn run(quick: bool) -> Report {
    let budget = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let pod = kubernetes_pod();
    let json_bytes = serde_json::to_vec(&Object::from(pod.clone())).expect("encodes");
    let wire_bytes = wire::encode(&Message::DesiredState(wire_state(&pod)));
    assert!(matches!(
        wire::decode(&wire_bytes),
        Ok(Message::DesiredState(_))
    ));

    let wire_decode_ns = median_ns(budget, || {
        black_box(wire::decode(black_box(&wire_bytes)).expect("decodes"));
    });
    let json_decode_ns = median_ns(budget, || {
        let value: Value = serde_json::from_slice(black_box(&json_bytes)).expect("parses");
        black_box(manifest::decode_object(value, FieldValidation::Ignore).expect("decodes"));
    });
    Report {
        wire_bytes: wire_bytes.len(),
        json_bytes: json_bytes.len(),
        heartbeat_bytes: wire::encode(&heartbeat()).len(),
        wire_decode_ns,
        json_decode_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_carry_the_same_pod() {
        let pod = kubernetes_pod();
        let Message::DesiredState(state) =
            wire::decode(&wire::encode(&Message::DesiredState(wire_state(&pod)))).unwrap()
        else {
            panic!("not a desired state")
        };
        let p = &state.pods[0];
        assert_eq!(
            (p.name.as_str(), p.namespace.as_str(), p.uid.as_str()),
            (
                "web-7d9f8b6c5-x2k4p",
                "default",
                "6f1c2a9e-3b7d-4c1e-9a51-2d8f0e7b4c33"
            )
        );
        let c = &p.containers[0];
        assert_eq!(c.image, pod.spec.containers[0].image);
        assert_eq!(c.resources.limits.cpu_millis, Some(500));
        assert_eq!(c.resources.requests.memory_bytes, Some(64 << 20));
        assert_eq!(c.env.len(), 2);
    }

    #[test]
    fn the_report_has_the_fields_ci_reads() {
        let report = Report {
            wire_bytes: 225,
            json_bytes: 900,
            heartbeat_bytes: 51,
            wire_decode_ns: 100.0,
            json_decode_ns: 1000.0,
        };
        let line = report.to_json();
        assert_eq!(line["size_ratio_vs_json"], 0.25);
        assert_eq!(line["decode_ratio_vs_json"], 0.1);
    }
}
