//! The values of field errors as kube-apiserver prints them.
//!
//! `field.Invalid` renders its value with `%#v` (Go syntax) unless it is a
//! string, a number, a boolean or has a `String()` method; pointers are
//! followed and `nil` prints `null`. So a changed Deployment selector reads
//! `Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, ...}`
//! and a changed creation time `Invalid value: 2026-11-21 14:16:28 +0000 UTC`.

use std::collections::BTreeMap;

use flotilla_shared::model::{LabelSelector, RoleRef, Time};

/// Go's `%q` / `%#v` of a string.
pub fn string(value: &str) -> String {
    format!("{value:?}")
}

/// `%#v` of a `[]string`; a nil (empty) slice prints `[]string(nil)`.
pub fn string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_owned();
    }
    let items: Vec<String> = values.iter().map(|v| string(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `%#v` of a `map[string]string`, keys sorted as Go's fmt sorts them.
pub fn string_map(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "map[string]string(nil)".to_owned();
    }
    let items: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", string(k), string(v)))
        .collect();
    format!("map[string]string{{{}}}", items.join(", "))
}

/// `%#v` of a `*metav1.LabelSelector` after the pointer is followed.
pub fn label_selector(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "null".to_owned();
    };
    let expressions = if selector.match_expressions.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_owned()
    } else {
        let items: Vec<String> = selector
            .match_expressions
            .iter()
            .map(|r| {
                format!(
                    "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                    string(&r.key),
                    string(&r.operator),
                    string_slice(&r.values)
                )
            })
            .collect();
        format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        string_map(&selector.match_labels),
        expressions
    )
}

/// `%#v` of the internal `rbac.RoleRef`.
pub fn role_ref(role_ref: &RoleRef) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        string(&role_ref.api_group),
        string(&role_ref.kind),
        string(&role_ref.name)
    )
}

/// A `metav1.Time` through Go's `time.Time.String()`:
/// `2026-11-21T14:16:28Z` prints `2026-11-21 14:16:28 +0000 UTC`; an unset
/// time is Go's zero time. Text that is not UTC RFC 3339 prints as it is.
pub fn time(value: Option<&Time>) -> String {
    let Some(Time(text)) = value else {
        return "0001-01-01 00:00:00 +0000 UTC".to_owned();
    };
    match text.strip_suffix('Z').and_then(|t| t.split_once('T')) {
        Some((date, clock)) => format!("{date} {clock} +0000 UTC"),
        None => text.clone(),
    }
}

/// A pointer to a `metav1.Time`: `null` when unset.
pub fn time_pointer(value: Option<&Time>) -> String {
    match value {
        Some(_) => time(value),
        None => "null".to_owned(),
    }
}

/// A pointer to a number or a named string type, followed: `null` when unset.
pub fn pointer<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn values_print_as_go_prints_them() {
        let selector = LabelSelector {
            match_labels: [("app", "web"), ("tier", "front")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            match_expressions: Vec::new(),
        };
        assert_eq!(
            label_selector(Some(&selector)),
            r#"v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"front"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"#
        );
        let expressions = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "zone".to_owned(),
                operator: "In".to_owned(),
                values: vec!["a".to_owned(), "b".to_owned()],
            }],
        };
        assert_eq!(
            label_selector(Some(&expressions)),
            r#"v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"zone", Operator:"In", Values:[]string{"a", "b"}}}}"#
        );
        assert_eq!(label_selector(None), "null");
        assert_eq!(
            role_ref(&RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "ClusterRole".to_owned(),
                name: "view".to_owned(),
            }),
            r#"rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"view"}"#
        );
        assert_eq!(
            time(Some(&Time("2026-11-21T14:16:28Z".to_owned()))),
            "2026-11-21 14:16:28 +0000 UTC"
        );
        assert_eq!(time(None), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(time_pointer(None), "null");
        assert_eq!(string_slice(&[]), "[]string(nil)");
        assert_eq!(
            string_slice(&["10.96.0.1".to_owned()]),
            r#"[]string{"10.96.0.1"}"#
        );
        assert_eq!(pointer(Some(3)), "3");
        assert_eq!(pointer::<i32>(None), "null");
    }
}
