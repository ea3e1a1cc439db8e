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
