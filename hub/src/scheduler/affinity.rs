//! Node selection rules of a pod, compiled once per scheduling attempt:
//! `spec.nodeSelector`, required and preferred node affinity
//! (kube's `pkg/scheduler/framework/plugins/nodeaffinity` over
//! `k8s.io/component-helpers/scheduling/corev1/nodeaffinity`).
//!
//! Terms are ORed, the requirements of a term ANDed; a term with no
//! requirement, or with one that does not compile (an unknown operator, a
//! bad value, a field other than `metadata.name`), matches no node, as in
//! Kubernetes where such terms are dropped.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_shared::model::{NodeSelectorTerm, PodSpec};
use flotilla_shared::selector::{Operator, Requirement};

/// kube's `metav1.ObjectNameField`, the one field `matchFields` may name.
const NAME_FIELD: &str = "metadata.name";

/// One compiled `NodeSelectorTerm`.
#[derive(Debug, Clone)]
pub(super) struct Term {
    labels: Vec<Requirement>,
    /// `(true, name)` for `In`, `(false, name)` for `NotIn` on `metadata.name`.
    names: Vec<(bool, String)>,
}

impl Term {
    /// The compiled term, or `None` if it can match no node.
    pub(super) fn compile(term: &NodeSelectorTerm) -> Option<Term> {
        if term.match_expressions.is_empty() && term.match_fields.is_empty() {
            return None;
        }
        let labels = term
            .match_expressions
            .iter()
            .map(|r| {
                let op = match r.operator.as_str() {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    "Gt" => Operator::Gt,
                    "Lt" => Operator::Lt,
                    _ => return None,
                };
                Requirement::new(r.key.clone(), op, r.values.clone()).ok()
            })
            .collect::<Option<Vec<_>>>()?;
        let names = term
            .match_fields
            .iter()
            .map(|r| {
                if r.key != NAME_FIELD || r.values.len() != 1 {
                    return None;
                }
                match r.operator.as_str() {
                    "In" => Some((true, r.values[0].clone())),
                    "NotIn" => Some((false, r.values[0].clone())),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Term { labels, names })
    }

    pub(super) fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names.iter().all(|(is_in, n)| (n == name) == *is_in)
            && self.labels.iter().all(|r| r.matches(labels))
    }
}

/// The hard rules: every `nodeSelector` label, and one of the required
/// affinity terms when there are any.
#[derive(Debug, Clone, Default)]
pub(super) struct Required {
    selector: Vec<(String, String)>,
    /// `None` when the pod has no required node affinity.
    terms: Option<Vec<Term>>,
}

/// Which nodes the NodeAffinity PreFilter lets through: kube narrows the
/// search to the names a `metadata.name In` field requirement lists in every
/// term (DaemonSet pods), or refuses the pod when those lists conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pinned {
    All,
    Names(BTreeSet<String>),
    Conflict,
}

impl Required {
    /// The hard rules of `spec`, or `None` when it has none.
    pub(super) fn of(spec: &PodSpec) -> Option<Required> {
        let terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| {
                s.node_selector_terms
                    .iter()
                    .filter_map(Term::compile)
                    .collect()
            });
        if spec.node_selector.is_empty() && terms.is_none() {
            return None;
        }
        Some(Required {
            selector: spec
                .node_selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            terms,
        })
    }

    pub(super) fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            && self
                .terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(name, labels)))
    }
}

/// kube's NodeAffinity PreFilter on node names (see [`Pinned`]).
pub(super) fn pinned(spec: &PodSpec) -> Pinned {
    let Some(selector) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return Pinned::All;
    };
    let mut names: Option<BTreeSet<String>> = None;
    for term in &selector.node_selector_terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for r in &term.match_fields {
            if r.key == NAME_FIELD && r.operator == "In" {
                let values: BTreeSet<String> = r.values.iter().cloned().collect();
                term_names = Some(match term_names {
                    None => values,
                    Some(current) => current.intersection(&values).cloned().collect(),
                });
            }
        }
        let Some(term_names) = term_names else {
            return Pinned::All;
        };
        names.get_or_insert_with(BTreeSet::new).extend(term_names);
    }
    match names {
        None => Pinned::All,
        Some(names) if names.is_empty() => Pinned::Conflict,
        Some(names) => Pinned::Names(names),
    }
}

/// The soft rules: preferred terms with their weights (zero weights dropped).
pub(super) fn preferred(spec: &PodSpec) -> Vec<(i64, Term)> {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .map(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .iter()
                .filter(|p| p.weight != 0)
                .filter_map(|p| Some((i64::from(p.weight), Term::compile(&p.preference)?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, PreferredSchedulingTerm,
    };

    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.to_owned(),
            operator: op.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn term(
        exprs: Vec<NodeSelectorRequirement>,
        fields: Vec<NodeSelectorRequirement>,
    ) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: exprs,
            match_fields: fields,
        }
    }

    fn spec_with(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn required_terms_match_like_kubernetes() {
        let node = labels(&[
            ("kubernetes.io/arch", "arm64"),
            ("cores", "4"),
            ("zone", "hall"),
        ]);
        let cases = [
            (
                "In matches a listed value",
                vec![term(
                    vec![req("kubernetes.io/arch", "In", &["arm", "arm64"])],
                    vec![],
                )],
                true,
            ),
            (
                "In fails on another value",
                vec![term(
                    vec![req("kubernetes.io/arch", "In", &["amd64"])],
                    vec![],
                )],
                false,
            ),
            (
                "NotIn holds for other values",
                vec![term(vec![req("zone", "NotIn", &["yard"])], vec![])],
                true,
            ),
            (
                "NotIn holds when the label is absent",
                vec![term(vec![req("rack", "NotIn", &["a"])], vec![])],
                true,
            ),
            (
                "NotIn fails on a listed value",
                vec![term(vec![req("zone", "NotIn", &["hall"])], vec![])],
                false,
            ),
            (
                "Exists",
                vec![term(vec![req("cores", "Exists", &[])], vec![])],
                true,
            ),
            (
                "Exists fails when absent",
                vec![term(vec![req("gpu", "Exists", &[])], vec![])],
                false,
            ),
            (
                "DoesNotExist",
                vec![term(vec![req("gpu", "DoesNotExist", &[])], vec![])],
                true,
            ),
            (
                "DoesNotExist fails when present",
                vec![term(vec![req("cores", "DoesNotExist", &[])], vec![])],
                false,
            ),
            (
                "Gt compares integers",
                vec![term(vec![req("cores", "Gt", &["2"])], vec![])],
                true,
            ),
            (
                "Gt fails when not greater",
                vec![term(vec![req("cores", "Gt", &["4"])], vec![])],
                false,
            ),
            (
                "Lt compares integers",
                vec![term(vec![req("cores", "Lt", &["8"])], vec![])],
                true,
            ),
            (
                "Lt fails on a non-integer label",
                vec![term(vec![req("zone", "Lt", &["8"])], vec![])],
                false,
            ),
            (
                "requirements of a term are ANDed",
                vec![term(
                    vec![req("cores", "Exists", &[]), req("gpu", "Exists", &[])],
                    vec![],
                )],
                false,
            ),
            (
                "terms are ORed",
                vec![
                    term(vec![req("gpu", "Exists", &[])], vec![]),
                    term(vec![req("zone", "In", &["hall"])], vec![]),
                ],
                true,
            ),
            (
                "an empty term matches nothing",
                vec![term(vec![], vec![])],
                false,
            ),
            ("no terms match nothing", vec![], false),
            (
                "an unknown operator makes the term match nothing",
                vec![term(vec![req("zone", "Near", &["hall"])], vec![])],
                false,
            ),
            (
                "matchFields metadata.name In",
                vec![term(vec![], vec![req("metadata.name", "In", &["pi-1"])])],
                true,
            ),
            (
                "matchFields metadata.name In another node",
                vec![term(vec![], vec![req("metadata.name", "In", &["pi-2"])])],
                false,
            ),
            (
                "matchFields metadata.name NotIn",
                vec![term(vec![], vec![req("metadata.name", "NotIn", &["pi-2"])])],
                true,
            ),
            (
                "matchFields on another field matches nothing",
                vec![term(vec![], vec![req("metadata.uid", "In", &["pi-1"])])],
                false,
            ),
            (
                "fields and labels are ANDed",
                vec![term(
                    vec![req("zone", "In", &["yard"])],
                    vec![req("metadata.name", "In", &["pi-1"])],
                )],
                false,
            ),
        ];
        for (name, terms, expected) in cases {
            let required = Required::of(&spec_with(terms)).unwrap();
            assert_eq!(required.matches("pi-1", &node), expected, "{name}");
        }
    }

    #[test]
    fn node_selector_needs_every_label_and_is_anded_with_affinity() {
        let node = labels(&[("zone", "hall"), ("arch", "arm64")]);
        let mut spec = PodSpec::default();
        assert!(Required::of(&spec).is_none());
        spec.node_selector = labels(&[("zone", "hall")]);
        assert!(Required::of(&spec).unwrap().matches("n", &node));
        spec.node_selector = labels(&[("zone", "hall"), ("arch", "amd64")]);
        assert!(!Required::of(&spec).unwrap().matches("n", &node));
        let mut spec = spec_with(vec![term(vec![req("arch", "In", &["arm64"])], vec![])]);
        spec.node_selector = labels(&[("zone", "yard")]);
        assert!(!Required::of(&spec).unwrap().matches("n", &node));
    }

    #[test]
    fn name_fields_pin_the_search_like_the_prefilter() {
        let name_in = |names: &[&str]| req("metadata.name", "In", names);
        let set = |names: &[&str]| Pinned::Names(names.iter().map(|n| (*n).to_owned()).collect());
        let cases = [
            ("no affinity", PodSpec::default(), Pinned::All),
            (
                "daemonset pod",
                spec_with(vec![term(vec![], vec![name_in(&["pi-1"])])]),
                set(&["pi-1"]),
            ),
            (
                "a term without names allows every node",
                spec_with(vec![
                    term(vec![], vec![name_in(&["pi-1"])]),
                    term(vec![req("zone", "Exists", &[])], vec![]),
                ]),
                Pinned::All,
            ),
            (
                "terms are united",
                spec_with(vec![
                    term(vec![], vec![name_in(&["pi-1"])]),
                    term(vec![], vec![name_in(&["pi-2"])]),
                ]),
                set(&["pi-1", "pi-2"]),
            ),
            (
                "requirements of a term intersect",
                spec_with(vec![term(
                    vec![],
                    vec![name_in(&["pi-1", "pi-2"]), name_in(&["pi-2", "pi-3"])],
                )]),
                set(&["pi-2"]),
            ),
            (
                "disjoint requirements conflict",
                spec_with(vec![term(
                    vec![],
                    vec![name_in(&["pi-1"]), name_in(&["pi-2"])],
                )]),
                Pinned::Conflict,
            ),
        ];
        for (name, spec, expected) in cases {
            assert_eq!(pinned(&spec), expected, "{name}");
        }
    }

    #[test]
    fn preferred_terms_keep_their_weights_and_drop_zero_weights() {
        let spec = PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    preferred_during_scheduling_ignored_during_execution: vec![
                        PreferredSchedulingTerm {
                            weight: 30,
                            preference: term(vec![req("zone", "In", &["hall"])], vec![]),
                        },
                        PreferredSchedulingTerm {
                            weight: 0,
                            preference: term(vec![req("zone", "In", &["hall"])], vec![]),
                        },
                        PreferredSchedulingTerm {
                            weight: 5,
                            preference: term(vec![], vec![]),
                        },
                    ],
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        };
        let preferred = preferred(&spec);
        assert_eq!(preferred.len(), 1);
        assert_eq!(preferred[0].0, 30);
        assert!(preferred[0].1.matches("n", &labels(&[("zone", "hall")])));
    }
}
