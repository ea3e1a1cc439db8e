//! The small formatters printers.go shares between kinds: label maps and
//! selectors (`labels.FormatLabels`, `metav1.FormatLabelSelector`),
//! container lists (`layoutContainerCells`), and elapsed times
//! (`translateTimestampSince`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use flotilla_shared::model::{Container, LabelSelector};
use flotilla_shared::selector::Selector;

use crate::api::time::{human_duration, parse_time};

/// `labels.FormatLabels`: `a=1,b=2` in key order, `<none>` when empty.
pub fn labels(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".to_owned();
    }
    map.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.LabelSelectorAsSelector(s).String()`: the empty string for an
/// absent or empty selector, `None` for one that does not compile.
pub fn selector_string(selector: Option<&LabelSelector>) -> Option<String> {
    match selector {
        None => Some(Selector::nothing().to_string()),
        Some(selector) => Selector::from_label_selector(selector)
            .ok()
            .map(|s| s.to_string()),
    }
}

/// `metav1.FormatLabelSelector`: the selector, `<none>` when it selects by
/// nothing, `<error>` when it does not compile.
pub fn label_selector(selector: Option<&LabelSelector>) -> String {
    match selector_string(selector) {
        None => "<error>".to_owned(),
        Some(text) if text.is_empty() => "<none>".to_owned(),
        Some(text) => text,
    }
}

/// `layoutContainerCells`: container names and images, each joined by `,`.
pub fn containers(containers: &[Container]) -> (String, String) {
    let names = containers.iter().map(|c| c.name.as_str());
    let images = containers.iter().map(|c| c.image.as_str());
    (
        names.collect::<Vec<_>>().join(","),
        images.collect::<Vec<_>>().join(","),
    )
}

/// The instant a `Time` or `MicroTime` text names; `None` when absent or unreadable.
pub fn instant(text: Option<&str>) -> Option<SystemTime> {
    text.and_then(parse_time)
}

/// `duration.HumanDuration(now - at)`; a time in the future reads `0s`.
pub fn since(at: SystemTime, now: SystemTime) -> String {
    human_duration(now.duration_since(at).unwrap_or_default())
}

/// `translateTimestampSince`: the time since `text`, `<unknown>` when absent.
pub fn since_text(text: Option<&str>, now: SystemTime) -> String {
    instant(text)
        .map(|at| since(at, now))
        .unwrap_or_else(|| "<unknown>".to_owned())
}

/// `value`, or `<none>` when it is empty.
pub fn or_none(value: &str) -> String {
    if value.is_empty() {
        "<none>".to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flotilla_shared::model::LabelSelectorRequirement;

    use super::*;

    fn selector(labels: &[(&str, &str)], expressions: &[(&str, &str, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: expressions
                .iter()
                .map(|(key, operator, values)| LabelSelectorRequirement {
                    key: key.to_string(),
                    operator: operator.to_string(),
                    values: values.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn label_maps_print_in_key_order_or_none() {
        let map: BTreeMap<String, String> = [("tier", "edge"), ("app", "web")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(labels(&map), "app=web,tier=edge");
        assert_eq!(labels(&BTreeMap::new()), "<none>");
    }

    #[test]
    fn label_selectors_print_like_kubernetes() {
        let cases: &[(Option<LabelSelector>, &str, Option<&str>)] = &[
            (None, "<none>", Some("")),
            (Some(selector(&[], &[])), "<none>", Some("")),
            (
                Some(selector(&[("app", "web")], &[])),
                "app=web",
                Some("app=web"),
            ),
            (
                Some(selector(
                    &[("tier", "edge")],
                    &[("app", "In", &["b", "a"]), ("canary", "DoesNotExist", &[])],
                )),
                "app in (a,b),!canary,tier=edge",
                Some("app in (a,b),!canary,tier=edge"),
            ),
            (
                Some(selector(&[], &[("app", "Matches", &["x"])])),
                "<error>",
                None,
            ),
        ];
        for (selector, formatted, string) in cases {
            assert_eq!(
                label_selector(selector.as_ref()),
                *formatted,
                "{selector:?}"
            );
            assert_eq!(
                selector_string(selector.as_ref()).as_deref(),
                *string,
                "{selector:?}"
            );
        }
    }

    #[test]
    fn containers_lay_out_names_and_images_on_one_line() {
        let list = [
            Container {
                name: "web".into(),
                image: "nginx:1.27".into(),
                ..Container::default()
            },
            Container {
                name: "log".into(),
                image: "busybox".into(),
                ..Container::default()
            },
        ];
        assert_eq!(
            containers(&list),
            ("web,log".to_owned(), "nginx:1.27,busybox".to_owned())
        );
        assert_eq!(containers(&[]), (String::new(), String::new()));
    }

    #[test]
    fn elapsed_times_read_like_kubectl() {
        let now = parse_time("2026-11-21T12:00:00Z").expect("valid");
        assert_eq!(since_text(Some("2026-11-21T11:55:00Z"), now), "5m");
        assert_eq!(since_text(Some("2026-11-21T11:59:59.5Z"), now), "0s");
        assert_eq!(since_text(Some("2026-11-21T12:00:30Z"), now), "0s");
        assert_eq!(since_text(None, now), "<unknown>");
        assert_eq!(since_text(Some("yesterday"), now), "<unknown>");
        assert_eq!(since(now - Duration::from_secs(90), now), "90s");
    }
}
