//! Field paths and field errors, printed as Kubernetes prints them.

use std::fmt;

/// A field path such as `spec.template.spec.containers[0].image`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(String);

impl Path {
    /// A path starting at a top-level field (`metadata`, `spec`, `data`).
    pub fn new(root: &str) -> Self {
        Path(root.to_owned())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_owned())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// `self[index]`.
    pub fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }

    /// `self[key]`, for map entries (Kubernetes does not quote the key).
    pub fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    NotFound,
    Forbidden,
    TooLong,
    TooMany,
}

impl ErrorType {
    /// The `reason` of a `StatusCause` in a Kubernetes `Status`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotFound => "Not found",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
        }
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorType,
    pub field: Path,
    /// The offending value as Kubernetes renders it (`"Web_1"` quoted, `70000` bare),
    /// or `None` where the error type shows no value.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: &Path, detail: &str) -> Self {
        Self::new(ErrorType::Required, field, None, detail)
    }

    /// An invalid string value (rendered quoted).
    pub fn invalid(field: &Path, value: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, Some(quote(value)), detail)
    }

    /// An invalid value rendered as given: numbers, Go maps.
    pub fn invalid_raw(field: &Path, value: impl fmt::Display, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, Some(value.to_string()), detail)
    }

    pub fn not_supported(field: &Path, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        let detail = format!("supported values: {}", list.join(", "));
        Self::new(ErrorType::NotSupported, field, Some(quote(value)), detail)
    }

    pub fn duplicate(field: &Path, value: &str) -> Self {
        Self::new(ErrorType::Duplicate, field, Some(quote(value)), "")
    }

    pub fn not_found(field: &Path, value: &str) -> Self {
        Self::new(ErrorType::NotFound, field, Some(quote(value)), "")
    }

    pub fn forbidden(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, field, None, detail)
    }

    pub fn too_long(field: &Path, max: usize) -> Self {
        let detail = format!("may not be more than {max} bytes");
        Self::new(ErrorType::TooLong, field, None, detail)
    }

    pub fn too_many(field: &Path, actual: usize, max: usize) -> Self {
        let detail = format!("must have at most {max} items");
        Self::new(ErrorType::TooMany, field, Some(actual.to_string()), detail)
    }

    fn new(
        kind: ErrorType,
        field: &Path,
        value: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind,
            field: field.clone(),
            value,
            detail: detail.into(),
        }
    }

    /// The message without the field, as a `StatusCause.message`.
    pub fn message(&self) -> String {
        let mut out = self.kind.label().to_owned();
        if let Some(value) = &self.value {
            out.push_str(": ");
            out.push_str(value);
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

/// Go's `%q` for the strings validation reports.
fn quote(value: &str) -> String {
    format!("{value:?}")
}

/// Every field error of one object, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorList(pub Vec<FieldError>);

impl ErrorList {
    pub fn new() -> Self {
        ErrorList(Vec::new())
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn extend(&mut self, other: ErrorList) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    pub fn into_result(self) -> Result<(), ErrorList> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Kubernetes' aggregate form: `[a: Required value, b: Invalid value: ...]`,
/// or the lone error without brackets.
impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => Ok(()),
            [only] => write!(f, "{only}"),
            many => {
                f.write_str("[")?;
                for (i, error) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{error}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl std::error::Error for ErrorList {}

impl<'a> IntoIterator for &'a ErrorList {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_in_kubernetes_wording() {
        let containers = Path::new("spec")
            .child("template")
            .child("spec")
            .child("containers");
        let image = containers.index(0).child("image");
        assert_eq!(
            FieldError::required(&image, "").to_string(),
            "spec.template.spec.containers[0].image: Required value"
        );
        let policy = Path::new("spec").child("restartPolicy");
        assert_eq!(
            FieldError::not_supported(&policy, "Sometimes", &["Always", "OnFailure", "Never"])
                .to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        let port = containers
            .index(1)
            .child("ports")
            .index(0)
            .child("containerPort");
        assert_eq!(
            FieldError::invalid_raw(&port, 70000, "must be between 1 and 65535, inclusive")
                .to_string(),
            "spec.template.spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let labels = Path::new("metadata").child("labels");
        assert_eq!(
            FieldError::duplicate(&labels.key("app"), "x").to_string(),
            "metadata.labels[app]: Duplicate value: \"x\""
        );
    }

    #[test]
    fn a_list_prints_every_error_in_brackets() {
        let mut list = ErrorList::new();
        list.push(FieldError::required(&Path::new("a"), ""));
        list.push(FieldError::forbidden(&Path::new("b"), "may not be set"));
        assert_eq!(
            list.to_string(),
            "[a: Required value, b: Forbidden: may not be set]"
        );
        assert_eq!(list.len(), 2);
    }
}
