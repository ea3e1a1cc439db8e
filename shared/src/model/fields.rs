//! Serde helpers that reproduce Go's `omitempty` on Kubernetes fields.
//!
//! The conventions every type in [`crate::model`] follows:
//!
//! | Go field                        | Rust field                                                            |
//! |---------------------------------|-----------------------------------------------------------------------|
//! | `string \`json:",omitempty"\``  | `#[serde(default, skip_serializing_if = "String::is_empty")] String`  |
//! | `string \`json:"x"\`` (always)  | `#[serde(default)] String` (missing → validation's "Required value")  |
//! | `*T` (pointer)                  | `#[serde(default, skip_serializing_if = "Option::is_none")] Option<T>`|
//! | `[]T`, `map[string]T`           | `#[serde(default, skip_serializing_if = "Vec::is_empty")]` / `BTreeMap::is_empty` |
//! | `int32`/`bool` with omitempty   | `#[serde(default, skip_serializing_if = "is_zero")]` / `"is_false"`   |
//! | nested struct (never omitted)   | `#[serde(default)] T`                                                 |
//! | string enums (`RestartPolicy`)  | `String`, checked by validation, so a bad value is a field error      |
//!
//! `null` anywhere in an object is treated as absent before typed decoding
//! (see [`crate::manifest`]), as Kubernetes does, so no field needs a
//! null-tolerant deserializer of its own.

/// `skip_serializing_if` for Go's omitempty on integers.
pub fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// `skip_serializing_if` for Go's omitempty on booleans.
pub fn is_false(value: &bool) -> bool {
    !*value
}
