//! Lists: the objects of one kind that match selectors, at one revision, in
//! (namespace, name) order, a page at a time.
//!
//! At the current revision a list reads the `objects` table (with its
//! indexes on namespace and node name). At an older revision it reads the
//! change log: an object's state at revision R is its newest change at or
//! below R, and the object did not exist then if that change is a delete or
//! there is none. Compaction keeps exactly the rows this needs for every
//! revision at or above the compacted one ([`super::compact`]).

use std::num::NonZeroUsize;

use flotilla_shared::selector::{FieldSelector, Selector};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::compact::compacted;
use super::fields::{Candidate, NODE_NAME, Selection};
use super::object::{ObjectKey, StoredObject, revision};
use super::read::ReadError;

/// What to list. Build it with [`ListRequest::new`] and set the fields that
/// narrow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    pub kind: String,
    /// Only this namespace; `None` lists all namespaces.
    pub namespace: Option<String>,
    pub labels: Selector,
    /// `metadata.name`, `metadata.namespace` and `spec.nodeName` are read
    /// from columns, any other dotted path (`status.phase`) from the JSON.
    pub fields: FieldSelector,
    /// At most this many items; `None` for all of them.
    pub limit: Option<NonZeroUsize>,
    pub at: ListAt,
}

impl ListRequest {
    /// Every object of `kind`, at the current revision.
    pub fn new(kind: &str) -> Self {
        ListRequest {
            kind: kind.into(),
            ..ListRequest::default()
        }
    }
}

/// The revision a list reads at, and where its page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ListAt {
    /// The revision this replica is at.
    #[default]
    Current,
    /// Exactly this revision: [`ReadError::Expired`] below the compacted
    /// revision, [`ReadError::FutureRevision`] above the current one.
    Revision(u64),
    /// The page after a previous one, at that page's revision.
    Continue(Continue),
}

/// Where the next page of a list starts: after the key `namespace`/`name`,
/// at `revision`. Kubernetes' continue token wraps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    pub revision: u64,
    pub namespace: String,
    pub name: String,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The revision every item was read at (the list's resourceVersion).
    pub revision: u64,
    pub items: Vec<ListItem>,
    /// Set when more items match after this page: list again with
    /// [`ListAt::Continue`] to get them.
    pub next: Option<Continue>,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub key: ObjectKey,
    pub object: StoredObject,
}

/// Lists inside the caller's read transaction.
pub(super) fn list(conn: &Connection, request: &ListRequest) -> Result<ListPage, ReadError> {
    let current = revision(conn)?;
    let (at, after) = match &request.at {
        ListAt::Current => (current, None),
        ListAt::Revision(at) => (*at, None),
        ListAt::Continue(from) => (from.revision, Some(from)),
    };
    let compacted = compacted(conn)?;
    if at < compacted {
        return Err(ReadError::Expired {
            requested: at,
            compacted,
        });
    }
    if at > current {
        return Err(ReadError::FutureRevision {
            requested: at,
            current,
        });
    }
    let (sql, params) = query(request, (at < current).then_some(at), after);
    let selection = Selection::new(&request.labels, &request.fields);
    let limit = request.limit.map(NonZeroUsize::get);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut items: Vec<ListItem> = Vec::new();
    let mut more = false;
    while let Some(row) = rows.next()? {
        let namespace = row.get_ref(0)?.as_str()?;
        let name = row.get_ref(1)?.as_str()?;
        let value = row.get_ref(2)?.as_bytes()?;
        let candidate = Candidate {
            namespace,
            name,
            value,
            labels: Some(row.get_ref(5)?.as_str()?),
            node_name: Some(row.get_ref(6)?.as_str()?),
        };
        if !selection.matches(candidate) {
            continue;
        }
        if limit.is_some_and(|limit| items.len() == limit) {
            more = true;
            break;
        }
        items.push(ListItem {
            key: ObjectKey::new(&request.kind, namespace, name),
            object: StoredObject {
                value: value.to_vec(),
                create_revision: row.get(3)?,
                resource_version: row.get(4)?,
            },
        });
    }
    let next = match items.last() {
        Some(last) if more => Some(Continue {
            revision: at,
            namespace: last.key.namespace.clone(),
            name: last.key.name.clone(),
        }),
        _ => None,
    };
    Ok(ListPage {
        revision: at,
        items,
        next,
    })
}

/// The SQL of a list and its parameters: from `objects` at the current
/// revision, or from the change log at `past` revision. Selections on
/// namespace and node name that require one value go to SQL (indexes); the
/// rest is checked on each row.
fn query(
    request: &ListRequest,
    past: Option<u64>,
    after: Option<&Continue>,
) -> (String, Vec<Value>) {
    let mut params = vec![Value::Text(request.kind.clone())];
    let mut sql = match past {
        None => "SELECT namespace, name, value, create_revision, mod_revision, labels, node_name
             FROM objects AS c WHERE c.kind = ?"
            .to_owned(),
        Some(at) => {
            params.extend([Value::Integer(at as i64), Value::Integer(at as i64)]);
            "SELECT namespace, name, value, create_revision, revision, labels, node_name
             FROM changes AS c WHERE c.kind = ? AND c.revision <= ? AND c.op != 'delete'
               AND (c.revision, c.seq) = (
                   SELECT l.revision, l.seq FROM changes AS l
                   WHERE l.kind = c.kind AND l.namespace = c.namespace AND l.name = c.name
                     AND l.revision <= ?
                   ORDER BY l.revision DESC, l.seq DESC LIMIT 1)"
                .to_owned()
        }
    };
    let namespace = request
        .namespace
        .as_deref()
        .or(request.fields.exact_value("metadata.namespace"));
    if let Some(namespace) = namespace {
        sql.push_str(" AND c.namespace = ?");
        params.push(Value::Text(namespace.into()));
    }
    if let Some(node) = request.fields.exact_value(NODE_NAME) {
        sql.push_str(" AND c.node_name = ?");
        params.push(Value::Text(node.into()));
    }
    if let Some(after) = after {
        sql.push_str(" AND (c.namespace, c.name) > (?, ?)");
        params.extend([
            Value::Text(after.namespace.clone()),
            Value::Text(after.name.clone()),
        ]);
    }
    sql.push_str(" ORDER BY c.namespace, c.name");
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{TestReplica, create, delete, pod_value, update};
    use super::super::{Request, Response, Write};
    use super::*;

    fn key(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new("Pod", namespace, name)
    }

    /// namespace, name, labels, node, phase
    type PodSpec<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

    /// Pods over two namespaces and two nodes, a value that is not JSON, and
    /// an object of another kind.
    async fn cluster() -> TestReplica {
        let mut replica = TestReplica::open();
        let pods: &[PodSpec<'_>] = &[
            ("default", "web-1", &[("app", "web")], "n1", "Running"),
            ("default", "web-0", &[("app", "web")], "n2", "Pending"),
            ("default", "db-0", &[("app", "db")], "n1", "Running"),
            (
                "other",
                "web-0",
                &[("app", "web"), ("tier", "x")],
                "n1",
                "Running",
            ),
            ("other", "job", &[], "", "Pending"),
        ];
        for (namespace, name, labels, node, phase) in pods {
            let value = pod_value(name, labels, node, phase);
            replica.apply(create(&key(namespace, name), value)).await;
        }
        replica
            .apply(create(&key("default", "raw"), b"\x00 not json".to_vec()))
            .await;
        let service = ObjectKey::new("Service", "default", "web-0");
        replica
            .apply(create(
                &service,
                pod_value("web-0", &[("app", "web")], "n1", ""),
            ))
            .await;
        replica
    }

    fn names(page: &ListPage) -> Vec<String> {
        page.items
            .iter()
            .map(|item| format!("{}/{}", item.key.namespace, item.key.name))
            .collect()
    }

    fn request(namespace: Option<&str>, labels: &str, fields: &str) -> ListRequest {
        ListRequest {
            namespace: namespace.map(Into::into),
            labels: Selector::parse(labels).unwrap(),
            fields: FieldSelector::parse(fields).unwrap(),
            ..ListRequest::new("Pod")
        }
    }

    /// (namespace, label selector, field selector, expected keys in order)
    fn filter_cases() -> Vec<(
        Option<&'static str>,
        &'static str,
        &'static str,
        Vec<&'static str>,
    )> {
        let all = vec![
            "default/db-0",
            "default/raw",
            "default/web-0",
            "default/web-1",
            "other/job",
            "other/web-0",
        ];
        vec![
            (None, "", "", all),
            (
                Some("default"),
                "",
                "",
                vec![
                    "default/db-0",
                    "default/raw",
                    "default/web-0",
                    "default/web-1",
                ],
            ),
            (
                None,
                "app=web",
                "",
                vec!["default/web-0", "default/web-1", "other/web-0"],
            ),
            (None, "app=web,tier", "", vec!["other/web-0"]),
            (None, "!app", "", vec!["default/raw", "other/job"]),
            (
                None,
                "",
                "spec.nodeName=n1",
                vec!["default/db-0", "default/web-1", "other/web-0"],
            ),
            (None, "", "spec.nodeName=", vec!["default/raw", "other/job"]),
            (
                Some("default"),
                "app=web",
                "spec.nodeName=n1",
                vec!["default/web-1"],
            ),
            (
                None,
                "",
                "status.phase=Pending",
                vec!["default/web-0", "other/job"],
            ),
            (
                None,
                "",
                "metadata.name=web-0",
                vec!["default/web-0", "other/web-0"],
            ),
            (
                None,
                "",
                "metadata.namespace=other",
                vec!["other/job", "other/web-0"],
            ),
            (
                None,
                "",
                "spec.nodeName!=n1,metadata.namespace!=other",
                vec!["default/raw", "default/web-0"],
            ),
            (Some("nowhere"), "", "", vec![]),
        ]
    }

    #[tokio::test]
    async fn lists_filter_by_namespace_labels_and_fields_in_key_order() {
        let mut replica = cluster().await;
        let revision = replica.state.revision().await.unwrap();
        let mut then = Vec::new();
        for (namespace, labels, fields, expected) in filter_cases() {
            let page = replica
                .state
                .list(request(namespace, labels, fields))
                .await
                .unwrap();
            assert_eq!(page.revision, revision);
            assert_eq!(names(&page), expected, "{namespace:?} {labels} {fields}");
            assert_eq!(page.next, None);
            then.push(page);
        }
        // Change every pod, then list the same at the old revision: the
        // change log must answer exactly what the objects table did.
        for (namespace, name) in [
            ("default", "web-1"),
            ("other", "web-0"),
            ("default", "db-0"),
        ] {
            replica
                .apply(update(
                    &key(namespace, name),
                    pod_value(name, &[], "n9", "Failed"),
                ))
                .await;
        }
        replica.apply(delete(&key("default", "web-0"))).await;
        replica.apply(delete(&key("default", "raw"))).await;
        replica
            .apply(create(
                &key("default", "a-new"),
                pod_value("a-new", &[("app", "web")], "n1", ""),
            ))
            .await;
        for ((namespace, labels, fields, _), expected) in filter_cases().into_iter().zip(then) {
            let mut past = request(namespace, labels, fields);
            past.at = ListAt::Revision(revision);
            assert_eq!(
                replica.state.list(past).await.unwrap(),
                expected,
                "{namespace:?} {labels} {fields}"
            );
        }
    }

    #[tokio::test]
    async fn list_at_every_older_revision_equals_what_a_list_returned_then() {
        let mut replica = TestReplica::open();
        let selectors = [("", ""), ("app=web", ""), ("", "spec.nodeName=n1")];
        let mut seen: Vec<Vec<ListPage>> = Vec::new();
        // A history with creates, moves between nodes, label changes,
        // deletes, re-creates and a transaction writing one key twice.
        let steps: Vec<Request> = vec![
            create(&key("a", "p"), pod_value("p", &[("app", "web")], "n1", "")),
            create(&key("a", "q"), pod_value("q", &[], "n2", "")),
            update(&key("a", "q"), pod_value("q", &[("app", "web")], "n1", "")),
            update(&key("a", "p"), pod_value("p", &[("app", "db")], "n2", "")),
            delete(&key("a", "q")),
            Request::Txn(vec![
                Write::Create {
                    key: key("b", "r"),
                    value: pod_value("r", &[], "n1", ""),
                },
                Write::Update {
                    key: key("b", "r"),
                    value: pod_value("r", &[("app", "web")], "n2", ""),
                    resource_version: None,
                },
            ]),
            create(&key("a", "q"), pod_value("q", &[("app", "web")], "n1", "")),
            delete(&key("a", "p")),
        ];
        for step in steps {
            assert!(matches!(
                replica.apply(step).await,
                Response::Applied { .. }
            ));
            let mut pages = Vec::new();
            for (labels, fields) in selectors {
                pages.push(
                    replica
                        .state
                        .list(request(None, labels, fields))
                        .await
                        .unwrap(),
                );
            }
            seen.push(pages);
        }
        for (i, pages) in seen.into_iter().enumerate() {
            let revision = i as u64 + 1;
            for ((labels, fields), then) in selectors.iter().zip(pages) {
                let mut past = request(None, labels, fields);
                past.at = ListAt::Revision(revision);
                assert_eq!(
                    replica.state.list(past).await.unwrap(),
                    then,
                    "at {revision} with {labels} {fields}"
                );
            }
        }
    }

    #[tokio::test]
    async fn pages_read_one_revision_while_writes_continue() {
        let mut replica = TestReplica::open();
        for i in 0..10 {
            let name = format!("p{i}");
            replica
                .apply(create(
                    &key("default", &name),
                    pod_value(&name, &[], "n1", ""),
                ))
                .await;
        }
        let whole = replica.state.list(ListRequest::new("Pod")).await.unwrap();
        assert_eq!(whole.revision, 10);

        let mut paged = ListRequest::new("Pod");
        paged.limit = NonZeroUsize::new(3);
        let mut page = replica.state.list(paged.clone()).await.unwrap();
        let mut items = page.items.clone();
        let mut pages = 1;
        while let Some(next) = page.next.clone() {
            assert_eq!(next.revision, 10);
            // Writes between pages: before, inside and after what is left.
            let n = pages.to_string();
            replica
                .apply(create(
                    &key("default", &format!("a{n}")),
                    pod_value("a", &[], "", ""),
                ))
                .await;
            replica
                .apply(create(
                    &key("default", &format!("z{n}")),
                    pod_value("z", &[], "", ""),
                ))
                .await;
            replica
                .apply(delete(&key("default", &format!("p{}", 9 - pages))))
                .await;
            paged.at = ListAt::Continue(next);
            page = replica.state.list(paged.clone()).await.unwrap();
            assert_eq!(page.revision, 10);
            assert!(page.items.len() <= 3);
            items.extend(page.items.clone());
            pages += 1;
        }
        assert_eq!(pages, 4, "10 items in pages of 3");
        assert_eq!(items, whole.items);
    }

    #[tokio::test]
    async fn a_page_that_fills_exactly_says_whether_more_match() {
        let replica = cluster().await;
        let mut web = request(None, "app=web", "");
        web.limit = NonZeroUsize::new(3);
        assert_eq!(replica.state.list(web.clone()).await.unwrap().next, None);
        web.limit = NonZeroUsize::new(2);
        let page = replica.state.list(web.clone()).await.unwrap();
        assert_eq!(names(&page), ["default/web-0", "default/web-1"]);
        let next = page.next.clone().unwrap();
        assert_eq!(
            (next.namespace.as_str(), next.name.as_str()),
            ("default", "web-1")
        );
        web.at = ListAt::Continue(next);
        let last = replica.state.list(web).await.unwrap();
        assert_eq!(names(&last), ["other/web-0"]);
        assert_eq!(last.next, None);
    }

    #[tokio::test]
    async fn lists_outside_the_kept_history_are_refused() {
        let mut replica = cluster().await;
        let current = replica.state.revision().await.unwrap();
        let at = |revision| ListRequest {
            at: ListAt::Revision(revision),
            ..ListRequest::new("Pod")
        };
        assert!(matches!(
            replica.state.list(at(current + 1)).await,
            Err(ReadError::FutureRevision { requested, current: c }) if requested == current + 1 && c == current
        ));
        let before = replica.state.list(at(3)).await.unwrap();
        assert_eq!(
            replica.apply(Request::Compact { revision: 3 }).await,
            Response::Compacted {
                revision: current,
                compacted: 3
            }
        );
        assert!(matches!(
            replica.state.list(at(2)).await,
            Err(ReadError::Expired {
                requested: 2,
                compacted: 3
            })
        ));
        let continued = ListRequest {
            at: ListAt::Continue(Continue {
                revision: 2,
                namespace: String::new(),
                name: String::new(),
            }),
            ..ListRequest::new("Pod")
        };
        assert!(matches!(
            replica.state.list(continued).await,
            Err(ReadError::Expired { .. })
        ));
        assert_eq!(replica.state.list(at(3)).await.unwrap(), before);
    }
}
