//! Resource quantities (`100m`, `1.5`, `64Mi`, `1G`, `1e3`) with exact arithmetic.

use serde::{Deserialize, Deserializer, Serialize};

/// A quantity as written in a manifest. The text is kept so that a manifest
/// re-encodes as it was written; its exact value comes from parsing it.
/// Decoding accepts a JSON string or number (YAML `cpu: 1`), as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(Quantity(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
        }))
    }
}
