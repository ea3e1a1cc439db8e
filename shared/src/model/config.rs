//! `ConfigMap` and `Secret` (core/v1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ByteString, ObjectMeta, resource};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, ByteString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}
resource!(
    ConfigMap,
    group = "",
    version = "v1",
    plural = "configmaps",
    namespaced = true
);

/// A Secret. `stringData` is write-only, as in Kubernetes: admission merges it
/// into `data` with [`Secret::merge_string_data`] and it is never stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, ByteString>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    /// `Opaque` when empty (defaulted by admission).
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}
resource!(
    Secret,
    group = "",
    version = "v1",
    plural = "secrets",
    namespaced = true
);

impl Secret {
    /// Moves every `stringData` entry into `data`; a `stringData` key wins
    /// over the same key in `data`, as Kubernetes specifies.
    pub fn merge_string_data(&mut self) {
        for (key, value) in std::mem::take(&mut self.string_data) {
            self.data.insert(key, ByteString(value.into_bytes()));
        }
    }
}
