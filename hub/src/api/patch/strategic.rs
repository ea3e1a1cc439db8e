//! Strategic merge patch, applied server-side.
//!
//! There is no maintained Rust implementation, so this is a port of
//! `StrategicMergeMapPatch` in k8s.io/apimachinery/pkg/util/strategicpatch/patch.go
//! (`mergeMap`, `mergeSlice`, `mergePatchIntoOriginal`,
//! `applyRetainKeysDirective`, `normalizeElementOrder`, with the options the
//! API server uses: parallel lists merged, unmatched nulls ignored). The
//! field rules come from [`super::schema`].
//!
//! Where this port deliberately differs from Go:
//! - A patch value with nothing to merge into (a new field, a new element
//!   of a merged list, a replaced list, the contents of `$patch: replace`)
//!   is itself applied to an empty value, so directives and `null`s inside
//!   it are processed rather than copied into the object. Kubernetes copies
//!   them and lets its typed decoding drop the `$` keys; the result is the
//!   same for every patch kubectl sends.
//! - `$deleteFromPrimitiveList/f` on a list without the merge strategy
//!   deletes the values; Go replaces the list with the deletion list.
//! - `$setElementOrder/f` where both the object and the patch lack
//!   elements is accepted; Go fails with "no elements in any of the given slices".
//! - Errors carry the field path they occurred at.

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{Field, Type};

type Object = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies the strategic merge `patch` to `original`, an object of type `ty`.
pub(super) fn apply(
    original: Object,
    patch: Object,
    ty: &'static Type,
) -> Result<Object, PatchError> {
    merge_map(original, patch, Some(ty), "")
}

fn merge_map(
    mut original: Object,
    mut patch: Object,
    ty: Option<&'static Type>,
    path: &str,
) -> Result<Object, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => merge_map(Object::new(), patch, ty, path),
            Some("delete") => Ok(Object::new()),
            _ => Err(PatchError::UnknownDirective {
                path: at(path),
                value: directive.to_string(),
                allowed: "replace or delete",
            }),
        };
    }

    apply_retain_keys(&mut original, &mut patch, path)?;
    merge_ordered_lists(&mut original, &mut patch, ty, path)?;

    for (key, value) in patch {
        let (name, delete_list) = match directive_target(&key, DELETE_FROM_PRIMITIVE_LIST) {
            None => (key, false),
            Some(Ok(name)) => (name.to_owned(), true),
            Some(Err(())) => {
                return Err(PatchError::InvalidDeleteFromPrimitiveList {
                    path: at(path),
                    reason: format!(
                        "key {key:?} is not of the form {DELETE_FROM_PRIMITIVE_LIST}/<field>"
                    ),
                });
            }
        };
        let field = field_of(ty, &name);
        let field_path = child(path, &name);
        if delete_list && !value.is_array() {
            return Err(PatchError::InvalidDeleteFromPrimitiveList {
                path: field_path,
                reason: format!("want a list of values, got {}", json_type(&value)),
            });
        }
        if value.is_null() {
            original.remove(&name);
            continue;
        }
        match original.get_mut(&name) {
            Some(slot) => {
                let existing = slot.take();
                *slot = merge_value(existing, value, field, &field_path, delete_list)?;
            }
            None if delete_list => {}
            None => {
                let fresh = fresh(value, field, &field_path)?;
                original.insert(name, fresh);
            }
        }
    }
    Ok(original)
}

/// Merges `patch` into `existing`, both present under one key.
fn merge_value(
    existing: Value,
    patch: Value,
    field: Option<&'static Field>,
    path: &str,
    delete_list: bool,
) -> Result<Value, PatchError> {
    Ok(match (existing, patch) {
        (Value::Object(original), Value::Object(patch)) => {
            Value::Object(merge_map(original, patch, field.and_then(|f| f.ty), path)?)
        }
        (Value::Array(original), Value::Array(patch)) => {
            Value::Array(merge_list(original, patch, field, path, delete_list)?)
        }
        // A deletion list for something that is not a list removes nothing.
        (existing, _) if delete_list => existing,
        (_, patch) => fresh(patch, field, path)?,
    })
}

/// A patch value with nothing to merge into, applied to nothing: nulls
/// vanish and directives take effect.
fn fresh(value: Value, field: Option<&'static Field>, path: &str) -> Result<Value, PatchError> {
    Ok(match value {
        Value::Object(patch) => Value::Object(merge_map(
            Object::new(),
            patch,
            field.and_then(|f| f.ty),
            path,
        )?),
        Value::Array(patch) => Value::Array(merge_list(Vec::new(), patch, field, path, false)?),
        other => other,
    })
}

/// One element of a list, as new.
fn fresh_element(
    value: Value,
    field: Option<&'static Field>,
    path: &str,
) -> Result<Value, PatchError> {
    match value {
        Value::Object(patch) => Ok(Value::Object(merge_map(
            Object::new(),
            patch,
            field.and_then(|f| f.ty),
            path,
        )?)),
        // A list inside a list has no field rules of its own.
        Value::Array(patch) => Ok(Value::Array(merge_list(
            Vec::new(),
            patch,
            None,
            path,
            false,
        )?)),
        other => Ok(other),
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Option<&'static Field>,
    path: &str,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    let merge = field.is_some_and(|f| f.merge);
    if delete_list {
        if merge {
            element_kind(&original, &patch, path)?;
        }
        if patch.iter().any(|v| v.is_object() || v.is_array()) {
            return Err(PatchError::InvalidDeleteFromPrimitiveList {
                path: at(path),
                reason: "only primitive values can be deleted this way".to_owned(),
            });
        }
        return Ok(original
            .into_iter()
            .filter(|v| !patch.contains(v))
            .collect());
    }
    if !merge {
        return patch
            .into_iter()
            .map(|element| fresh_element(element, field, path))
            .collect();
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, &patch, path)?;
    let merge_key = field.and_then(|f| f.merge_key);

    if kind != Kind::Object {
        let server_order = original.clone();
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.into_iter().chain(patch.iter().cloned()) {
            if !merged.contains(&value) {
                merged.push(value);
            }
        }
        let patch_ids = identities(&patch, merge_key, path)?;
        let server_ids = identities(&server_order, merge_key, path)?;
        return normalize_order(merged, &patch_ids, &server_ids, merge_key, path);
    }

    let Some(key) = merge_key else {
        return Err(PatchError::MergeKeyUndeclared { path: at(path) });
    };
    let (original, patch) = split_special_elements(original, patch, key, field, path)?;
    let server_ids = identities(&original, Some(key), path)?;
    let patch_ids = identities(&patch, Some(key), path)?;
    let merged = merge_elements(original, patch, key, field, path)?;
    normalize_order(merged, &patch_ids, &server_ids, Some(key), path)
}

/// Handles the elements carrying `$patch` (Go's
/// `mergeSliceWithSpecialElements`): deletes what `delete` names, and for
/// `replace` returns the other patch elements as the new original with no
/// patch left. Otherwise returns the original and the plain patch elements.
fn split_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    field: Option<&'static Field>,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Some(directive) = element.get(DIRECTIVE) else {
            plain.push(element);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(id) = element.get(key) else {
                    return Err(missing_merge_key(path, &element, key));
                };
                original.retain(|candidate| candidate.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::MergeDirectiveInList { path: at(path) }),
            _ => {
                return Err(PatchError::UnknownDirective {
                    path: at(path),
                    value: directive.to_string(),
                    allowed: "replace or delete in a list element",
                });
            }
        }
    }
    if replace {
        let replaced = plain
            .into_iter()
            .map(|element| fresh_element(element, field, path))
            .collect::<Result<_, _>>()?;
        Ok((replaced, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Merges each patch element into the original element with the same merge
/// key value, or appends it (Go's `mergeSliceWithoutSpecialElements`).
fn merge_elements(
    mut merged: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    field: Option<&'static Field>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let ty = field.and_then(|f| f.ty);
    for element in patch {
        let Value::Object(element) = element else {
            return Err(PatchError::MixedListElements { path: at(path) });
        };
        let Some(id) = element.get(key).cloned() else {
            return Err(missing_merge_key(path, &Value::Object(element), key));
        };
        let element_path = format!("{}[{key}={id}]", at(path));
        match merged
            .iter()
            .position(|candidate| candidate.get(key) == Some(&id))
        {
            Some(index) => {
                let Value::Object(existing) = merged[index].take() else {
                    return Err(PatchError::MixedListElements { path: at(path) });
                };
                merged[index] = Value::Object(merge_map(existing, element, ty, &element_path)?);
            }
            None => merged.push(Value::Object(merge_map(
                Object::new(),
                element,
                ty,
                &element_path,
            )?)),
        }
    }
    Ok(merged)
}

/// `$retainKeys`: fields of `original` not named in the list are cleared;
/// every field the patch sets must be named.
fn apply_retain_keys(
    original: &mut Object,
    patch: &mut Object,
    path: &str,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::InvalidRetainKeys {
            path: at(path),
            reason: format!("want a list of field names, got {}", json_type(&retain)),
        });
    };
    let retained = |name: &str| retain.iter().any(|kept| kept.as_str() == Some(name));
    for (name, value) in patch.iter() {
        if value.is_null()
            || name.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || name.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !retained(name) {
            return Err(PatchError::InvalidRetainKeys {
                path: at(path),
                reason: format!("the patch sets {name:?}, which $retainKeys does not list"),
            });
        }
    }
    original.retain(|name, _| retained(name));
    Ok(())
}

/// Processes every `$setElementOrder/<field>` of `patch` together with the
/// patch's `<field>` list (Go's `mergePatchIntoOriginal`), and removes both
/// from `patch`. The order is: `$setElementOrder` for the elements it names,
/// the live object's order for the others, interleaved.
fn merge_ordered_lists(
    original: &mut Object,
    patch: &mut Object,
    ty: Option<&'static Type>,
    path: &str,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.remove(&directive).unwrap_or(Value::Null);
        let name = match directive_target(&directive, SET_ELEMENT_ORDER) {
            Some(Ok(name)) => name.to_owned(),
            _ => {
                return Err(PatchError::InvalidSetElementOrder {
                    path: at(path),
                    reason: format!(
                        "key {directive:?} is not of the form {SET_ELEMENT_ORDER}/<field>"
                    ),
                });
            }
        };
        let field_path = child(path, &name);
        let Value::Array(order) = order else {
            return Err(PatchError::InvalidSetElementOrder {
                path: field_path,
                reason: format!("want a list, got {}", json_type(&order)),
            });
        };
        let field = field_of(ty, &name);
        let merge_key = field.and_then(|f| f.merge_key);

        let original_list = match original.get_mut(&name).map(Value::take) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => {
                return Err(PatchError::InvalidSetElementOrder {
                    path: field_path,
                    reason: format!("the object's field is {}, not a list", json_type(&other)),
                });
            }
        };
        let patch_list = match patch.remove(&name) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => {
                return Err(PatchError::InvalidSetElementOrder {
                    path: field_path,
                    reason: format!("the patch's field is {}, not a list", json_type(&other)),
                });
            }
        };
        check_set_element_order(
            patch_list.as_deref().unwrap_or_default(),
            &order,
            merge_key,
            &field_path,
        )?;

        let server_ids = identities(
            original_list.as_deref().unwrap_or_default(),
            merge_key,
            &field_path,
        )?;
        let merged = match (original_list, patch_list) {
            (None, None) => continue,
            (Some(list), None) => list,
            (original_list, Some(patch_list)) => merge_list(
                original_list.unwrap_or_default(),
                patch_list,
                field,
                &field_path,
                false,
            )?,
        };
        let order_ids = identities(&order, merge_key, &field_path)?;
        let ordered = normalize_order(merged, &order_ids, &server_ids, merge_key, &field_path)?;
        original.insert(name, Value::Array(ordered));
    }
    Ok(())
}

/// The patch list's elements (deletions aside) must appear in the
/// `$setElementOrder` list, in the same relative order (Go's
/// `validatePatchWithSetOrderList`).
fn check_set_element_order(
    patch: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = patch
        .iter()
        .filter(|element| {
            merge_key.is_none() || element.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")
        })
        .collect();
    let (mut in_patch, mut in_order) = (0, 0);
    while in_patch < kept.len() && in_order < order.len() {
        let element = kept[in_patch];
        if element.get(DIRECTIVE).is_some() {
            in_patch += 1;
            continue;
        }
        if identity(element, merge_key, path)? == identity(&order[in_order], merge_key, path)? {
            in_patch += 1;
        }
        in_order += 1;
    }
    if in_patch < kept.len() {
        return Err(PatchError::InvalidSetElementOrder {
            path: at(path),
            reason: "the order of the patch's list does not match the $setElementOrder list"
                .to_owned(),
        });
    }
    Ok(())
}

/// Puts `items` in order (Go's `normalizeElementOrder`): the items named in
/// `patch_order` sorted by it, the others sorted by `server_order`, then the
/// two interleaved so that a server-only item stays before a patch item it
/// preceded in the live object.
fn normalize_order(
    items: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let position = |order: &[Value], id: &Value| order.iter().position(|candidate| candidate == id);
    let mut from_patch = Vec::new();
    let mut server_only = Vec::new();
    for item in items {
        let id = identity(&item, merge_key, path)?.clone();
        if position(patch_order, &id).is_some() {
            from_patch.push((id, item));
        } else {
            server_only.push((id, item));
        }
    }
    from_patch.sort_by_key(|(id, _)| position(patch_order, id).unwrap_or(usize::MAX));
    server_only.sort_by_key(|(id, _)| position(server_order, id).unwrap_or(usize::MAX));

    let mut ordered = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => {
                matches!((position(server_order, l), position(server_order, r)), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        ordered.extend(next.map(|(_, item)| item));
    }
    Ok(ordered)
}

/// What identifies a list element: its merge key's value, or for a list of
/// primitives the value itself.
fn identity<'a>(
    element: &'a Value,
    merge_key: Option<&str>,
    path: &str,
) -> Result<&'a Value, PatchError> {
    match merge_key {
        None => Ok(element),
        Some(key) => element
            .get(key)
            .ok_or_else(|| missing_merge_key(path, element, key)),
    }
}

/// The identities of `elements`, copied so that the elements can move on.
fn identities(
    elements: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    elements
        .iter()
        .map(|element| identity(element, merge_key, path).cloned())
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// The one kind of every element of both lists (Go's `sliceElementType`).
fn element_kind(original: &[Value], patch: &[Value], path: &str) -> Result<Kind, PatchError> {
    let mut kind = None;
    for element in original.iter().chain(patch) {
        let this = kind_of(element);
        match kind {
            None if this == Kind::Array => return Err(PatchError::ListOfLists { path: at(path) }),
            None => kind = Some(this),
            Some(seen) if seen != this => {
                return Err(PatchError::MixedListElements { path: at(path) });
            }
            Some(_) => {}
        }
    }
    Ok(kind.unwrap_or(Kind::Object))
}

fn field_of(ty: Option<&'static Type>, name: &str) -> Option<&'static Field> {
    ty.and_then(|ty| ty.field(name))
}

/// `Some(Ok(field))` for `prefix/field`, `Some(Err(()))` for a key that
/// starts with `prefix` but is not of that form, `None` otherwise.
fn directive_target<'a>(key: &'a str, prefix: &str) -> Option<Result<&'a str, ()>> {
    let rest = key.strip_prefix(prefix)?;
    Some(
        rest.strip_prefix('/')
            .filter(|name| !name.is_empty())
            .ok_or(()),
    )
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A path for messages; the root is "the object".
fn at(path: &str) -> String {
    if path.is_empty() {
        "the object".to_owned()
    } else {
        path.to_owned()
    }
}

fn missing_merge_key(path: &str, element: &Value, key: &str) -> PatchError {
    PatchError::MissingMergeKey {
        path: at(path),
        key: key.to_owned(),
        element: abbreviate(element),
    }
}

/// `value` as compact JSON, cut short for a message.
fn abbreviate(value: &Value) -> String {
    const LIMIT: usize = 120;
    let text = value.to_string();
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// "an object", "a list", … for messages.
pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
