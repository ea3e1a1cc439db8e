//! `/metrics`: request counts and latency histograms in the Prometheus text
//! format, named as kube-apiserver names them (`apiserver_request_total`,
//! `apiserver_request_duration_seconds`) so existing dashboards read them.
//!
//! Hand-written rather than the `prometheus` crate: two metric families with
//! a handful of labels need a map and a few atomics, not a registry with
//! protobuf support and its dependency tree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds in seconds (kube-apiserver's, trimmed).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Counts per bucket (not cumulative), plus one for +Inf.
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len() + 1];
        }
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.total += 1;
    }
}

/// The labels of one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// Upper case as Kubernetes reports it: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
}

#[derive(Debug, Default)]
struct Families {
    requests: BTreeMap<(RequestLabels, u16), u64>,
    durations: BTreeMap<RequestLabels, Histogram>,
}

/// The API server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

impl Metrics {
    /// Counts one finished request. Watches are counted, not timed (their
    /// duration is the client's choice).
    pub fn record(&self, labels: RequestLabels, code: u16, elapsed: Duration) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if labels.verb != "WATCH" {
            families
                .durations
                .entry(labels.clone())
                .or_default()
                .observe(elapsed.as_secs_f64());
        }
        *families.requests.entry((labels, code)).or_default() += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let labels = |l: &RequestLabels| {
            format!(
                "verb=\"{}\",group=\"{}\",resource=\"{}\",subresource=\"{}\"",
                l.verb, l.group, l.resource, l.subresource
            )
        };
        out.push_str("# HELP apiserver_request_total Counter of API requests by verb, resource and HTTP code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((l, code), count) in &families.requests {
            let _ = writeln!(
                out,
                "apiserver_request_total{{{},code=\"{code}\"}} {count}",
                labels(l)
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency by verb and resource (watches excluded).\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for (l, histogram) in &families.durations {
            let l = labels(l);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                histogram.total
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{l}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{l}}} {}",
                histogram.total
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(verb: &str, resource: &str) -> RequestLabels {
        RequestLabels {
            verb: verb.into(),
            group: "apps".into(),
            resource: resource.into(),
            subresource: String::new(),
        }
    }

    #[test]
    fn requests_are_counted_by_code_and_timed_in_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record(labels("POST", "deployments"), 201, Duration::from_millis(3));
        metrics.record(
            labels("POST", "deployments"),
            201,
            Duration::from_millis(30),
        );
        metrics.record(
            labels("POST", "deployments"),
            422,
            Duration::from_millis(700),
        );
        metrics.record(
            labels("WATCH", "deployments"),
            200,
            Duration::from_secs(300),
        );
        let text = metrics.render();
        let l = r#"verb="POST",group="apps",resource="deployments",subresource="""#;
        assert!(
            text.contains(&format!("apiserver_request_total{{{l},code=\"201\"}} 2\n")),
            "{text}"
        );
        assert!(text.contains(&format!("apiserver_request_total{{{l},code=\"422\"}} 1\n")));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"0.05\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_count{{{l}}} 3\n"
        )));
        assert!(text.contains(r#"apiserver_request_total{verb="WATCH",group="apps",resource="deployments",subresource="",code="200"} 1"#));
        assert!(!text.contains(r#"duration_seconds_count{verb="WATCH""#));
    }
}
