//! Label and field selectors, as Kubernetes has them.
//!
//! A [`Selector`] comes from an object's `metav1.LabelSelector`
//! ([`Selector::from_label_selector`]) or from the query-string form used by
//! `?labelSelector=` and `kubectl -l` ([`Selector::parse`]):
//! `app=web,tier!=db,env in (prod,staging),!canary,release`. A
//! [`FieldSelector`] comes from `?fieldSelector=`:
//! `spec.nodeName=pi-7,status.phase!=Succeeded`.
//!
//! The label key and value checks ([`validate_label_key`],
//! [`validate_label_value`]) return Kubernetes' own messages so validation
//! can report them word for word.
//!
//! ```
//! use std::collections::BTreeMap;
//! use flotilla_shared::selector::Selector;
//!
//! let selector: Selector = "app=web, env in (prod,staging), !canary".parse().unwrap();
//! let labels = BTreeMap::from([("app".to_owned(), "web".to_owned()), ("env".to_owned(), "prod".to_owned())]);
//! assert!(selector.matches(&labels));
//! assert_eq!(selector.to_string(), "app=web,!canary,env in (prod,staging)");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::model::LabelSelector;

/// Why a selector or one of its parts is refused. Each variant carries the offending text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The query-string form of a label selector does not parse; `reason` is
    /// Kubernetes' parser message (`found '', expected: identifier`).
    #[error("unable to parse label selector {selector:?}: {reason}")]
    Syntax { selector: String, reason: String },
    /// A key, a value or the number of values is wrong, as a Kubernetes field
    /// error: `field` is the path (`matchExpressions[1].values`), `value` the
    /// offending value as Kubernetes prints it (`"a b"`, `[]string{}`).
    #[error("{field}: Invalid value: {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    /// A `matchExpressions` operator other than `In`, `NotIn`, `Exists`, `DoesNotExist`.
    #[error(
        "{field}: Unsupported value: {operator:?}: supported values: \"DoesNotExist\", \"Exists\", \"In\", \"NotIn\""
    )]
    UnsupportedOperator { field: String, operator: String },
    /// The query-string form of a field selector does not parse.
    #[error("invalid field selector {selector:?}: {reason}")]
    FieldSyntax { selector: String, reason: String },
    /// A field selector names a field that cannot be selected on.
    #[error("field label not supported: {field}")]
    FieldNotSupported { field: String },
}

// ---------------------------------------------------------------------------
// Label keys and values
// ---------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Longest name part of a qualified name, and longest label value.
pub const LABEL_MAX_LENGTH: usize = 63;

/// Kubernetes' `validation.MaxLenError`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Kubernetes' `validation.RegexError`, double spaces included.
fn regex_error(message: &str, regex: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{regex}')",
        examples.join(" or ")
    )
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the shape of a label name part and value.
fn is_qualified_name_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Kubernetes' `IsQualifiedName`, which label keys must satisfy: an optional
/// DNS-1123 subdomain prefix and `/`, then a name of at most 63 characters.
/// Returns Kubernetes' messages, empty when the key is valid.
pub fn validate_label_key(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                let prefix_errors = crate::validation::names::dns1123_subdomain(prefix);
                errors.extend(
                    prefix_errors
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            name
        }
        _ => {
            let shape = regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"],
            );
            errors.push(format!(
                "a qualified name {shape} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_MAX_LENGTH {
        errors.push(format!("name part {}", max_len_error(LABEL_MAX_LENGTH)));
    }
    if !is_qualified_name_part(name) {
        let shape = regex_error(
            QUALIFIED_NAME_ERR,
            QUALIFIED_NAME_FMT,
            &["MyName", "my.name", "123-abc"],
        );
        errors.push(format!("name part {shape}"));
    }
    errors
}

/// Kubernetes' `IsValidLabelValue`: at most 63 characters of the name-part
/// shape, or empty. Returns Kubernetes' messages, empty when the value is valid.
pub fn validate_label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX_LENGTH {
        errors.push(max_len_error(LABEL_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

/// `path` joined with `child`, for field errors (`matchExpressions[1]` + `values`).
fn child(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_owned()
    } else {
        format!("{path}.{child}")
    }
}

/// A list of values as Kubernetes prints one in a field error (`[]string{"a", "b"}`).
fn go_string_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// How a [`Requirement`] compares a label with its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `key=value` or `key==value`: the label is present with that value.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>3`: the label is present, an integer, and greater.
    Gt,
    /// `key<3`: the label is present, an integer, and smaller.
    Lt,
}

/// One condition of a [`Selector`]: a valid key, an operator and the values it
/// needs (one for `Equals`, `NotEquals`, `Gt`, `Lt`; at least one for `In`,
/// `NotIn`; none for `Exists`, `DoesNotExist`). Values are kept sorted and
/// without duplicates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A checked requirement, as Kubernetes' `labels.NewRequirement`.
    pub fn new(
        key: impl Into<String>,
        op: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        Self::at("", key.into(), op, values)
    }

    /// As [`Requirement::new`], naming fields under `path` in errors.
    fn at(
        path: &str,
        key: String,
        op: Operator,
        mut values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key_errors = validate_label_key(&key);
        if !key_errors.is_empty() {
            return Err(SelectorError::Invalid {
                field: child(path, "key"),
                value: format!("{key:?}"),
                reason: key_errors.join("; "),
            });
        }
        let values_path = child(path, "values");
        let count_error = match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::Gt | Operator::Lt if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(reason) = count_error {
            return Err(SelectorError::Invalid {
                field: values_path,
                value: go_string_list(&values),
                reason: reason.to_owned(),
            });
        }
        for (i, value) in values.iter().enumerate() {
            let invalid = |reason: String| SelectorError::Invalid {
                field: format!("{values_path}[{i}]"),
                value: format!("{value:?}"),
                reason,
            };
            if matches!(op, Operator::Gt | Operator::Lt) && value.parse::<i64>().is_err() {
                return Err(invalid(
                    "for 'Gt', 'Lt' operators, the value must be an integer".to_owned(),
                ));
            }
            let value_errors = validate_label_value(value);
            if !value_errors.is_empty() {
                return Err(invalid(value_errors.join("; ")));
            }
        }
        values.sort();
        values.dedup();
        Ok(Requirement { key, op, values })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The values, sorted, without duplicates.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement. `NotEquals`, `NotIn` and
    /// `DoesNotExist` hold when the key is absent; `Gt` and `Lt` do not hold
    /// when the label is absent or not an integer.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let has_value = |label: &String| self.values.binary_search(label).is_ok();
        let label = labels.get(&self.key);
        match self.op {
            Operator::Equals | Operator::In => label.is_some_and(has_value),
            Operator::NotEquals | Operator::NotIn => !label.is_some_and(has_value),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::Gt | Operator::Lt => {
                let (Some(Ok(label)), Ok(bound)) = (
                    label.map(|l| l.parse::<i64>()),
                    self.values[0].parse::<i64>(),
                ) else {
                    return false;
                };
                if self.op == Operator::Gt {
                    label > bound
                } else {
                    label < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Kubernetes' `Requirement.String()`: `key=v`, `key!=v`, `key in (a,b)`,
    /// `key notin (a)`, `key`, `!key`, `key>3`, `key<3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let values = self.values.join(",");
        match self.op {
            Operator::Equals => write!(f, "{key}={values}"),
            Operator::NotEquals => write!(f, "{key}!={values}"),
            Operator::In => write!(f, "{key} in ({values})"),
            Operator::NotIn => write!(f, "{key} notin ({values})"),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Gt => write!(f, "{key}>{values}"),
            Operator::Lt => write!(f, "{key}<{values}"),
        }
    }
}

/// A label selector: all its requirements must hold. The empty selector
/// matches everything; [`Selector::nothing`] matches nothing (Kubernetes' nil
/// selector). Requirements are kept sorted by key, so two selectors that
/// differ only in the order they were written compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// The selector that matches no object, for an absent (`nil`) `LabelSelector`.
    /// It displays as the empty string, like Kubernetes'.
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector requiring all of `requirements`.
    pub fn new(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        let mut requirements: Vec<Requirement> = requirements.into_iter().collect();
        requirements.sort();
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// Parses the query-string form (`?labelSelector=`, `kubectl -l`).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let syntax = |reason: String| SelectorError::Syntax {
            selector: text.to_owned(),
            reason,
        };
        let mut parser = Parser {
            tokens: lex(text),
            pos: 0,
        };
        parser.selector().map(Selector::new).map_err(syntax)
    }

    /// Compiles an object's `LabelSelector`, as Kubernetes'
    /// `LabelSelectorAsSelector`. An empty one matches everything.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in &selector.match_labels {
            let requirement =
                Requirement::at("", key.clone(), Operator::Equals, vec![value.clone()]).map_err(
                    |err| match err {
                        SelectorError::Invalid { value, reason, .. } => SelectorError::Invalid {
                            field: "matchLabels".to_owned(),
                            value,
                            reason,
                        },
                        other => other,
                    },
                )?;
            requirements.push(requirement);
        }
        for (i, expression) in selector.match_expressions.iter().enumerate() {
            let path = format!("matchExpressions[{i}]");
            let op = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::UnsupportedOperator {
                        field: child(&path, "operator"),
                        operator: other.to_owned(),
                    });
                }
            };
            requirements.push(Requirement::at(
                &path,
                expression.key.clone(),
                op,
                expression.values.clone(),
            )?);
        }
        Ok(Selector::new(requirements))
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether this selector matches every object.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is [`Selector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Selector::parse(text)
    }
}

impl fmt::Display for Selector {
    /// The canonical query string: requirements sorted by key, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_comma_separated(f, &self.requirements)
    }
}

/// A token of the query-string form. `in` and `notin` are identifiers that the
/// parser reads as operators only where an operator is expected, as Kubernetes does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    End,
}

impl Token<'_> {
    /// The text of the token, as Kubernetes quotes it in `found '…'`.
    fn literal(&self) -> &str {
        match self {
            Token::Ident(text) => text,
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Bang => "!",
            Token::Greater => ">",
            Token::Less => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(is_space);
        let mut chars = rest.chars();
        let Some(c) = chars.next() else {
            tokens.push(Token::End);
            return tokens;
        };
        let next_is_equals = chars.next() == Some('=');
        let (token, len) = match c {
            '=' if next_is_equals => (Token::DoubleEquals, 2),
            '!' if next_is_equals => (Token::NotEquals, 2),
            '=' => (Token::Equals, 1),
            '!' => (Token::Bang, 1),
            '>' => (Token::Greater, 1),
            '<' => (Token::Less, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            ',' => (Token::Comma, 1),
            _ => {
                let len = rest
                    .find(|c| is_special(c) || is_space(c))
                    .unwrap_or(rest.len());
                (Token::Ident(&rest[..len]), len)
            }
        };
        tokens.push(token);
        rest = &rest[len..];
    }
}

/// Kubernetes' label selector parser, message for message.
struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.tokens[self.pos]
    }

    fn next(&mut self) -> Token<'a> {
        let token = self.tokens[self.pos];
        if token != Token::End {
            self.pos += 1;
        }
        token
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::Ident(_) | Token::Bang => {
                    let requirement = self
                        .requirement()
                        .map_err(|err| format!("unable to parse requirement: {err}"))?;
                    requirements.push(requirement);
                    match self.next() {
                        Token::End => return Ok(requirements),
                        Token::Comma => match self.peek() {
                            Token::Ident(_) | Token::Bang => {}
                            other => {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    other.literal()
                                ));
                            }
                        },
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut token = self.next();
        let negated = token == Token::Bang;
        if negated {
            token = self.next();
        }
        let Token::Ident(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        let key_errors = validate_label_key(key);
        if !key_errors.is_empty() {
            let err = SelectorError::Invalid {
                field: "key".to_owned(),
                value: format!("{key:?}"),
                reason: key_errors.join("; "),
            };
            return Err(err.to_string());
        }
        let unary = if negated {
            Some(Operator::DoesNotExist)
        } else if matches!(self.peek(), Token::End | Token::Comma) {
            Some(Operator::Exists)
        } else {
            None
        };
        let (op, values) = match unary {
            Some(op) => (op, Vec::new()),
            None => {
                let op = self.operator()?;
                let values = match op {
                    Operator::In | Operator::NotIn => self.value_set()?,
                    _ => self.exact_value()?,
                };
                (op, values)
            }
        };
        Requirement::new(key, op, values).map_err(|err| err.to_string())
    }

    fn operator(&mut self) -> Result<Operator, String> {
        match self.next() {
            Token::Ident("in") => Ok(Operator::In),
            Token::Ident("notin") => Ok(Operator::NotIn),
            Token::Equals | Token::DoubleEquals => Ok(Operator::Equals),
            Token::NotEquals => Ok(Operator::NotEquals),
            Token::Greater => Ok(Operator::Gt),
            Token::Less => Ok(Operator::Lt),
            other => Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                other.literal()
            )),
        }
    }

    /// `(a,b)`; empty entries (`()`, `(a,)`, `(,a)`) stand for the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let open = self.next();
        if open != Token::Open {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        let mut values = BTreeSet::new();
        match self.peek() {
            Token::Close => {
                self.next();
                values.insert("");
            }
            Token::Ident(_) | Token::Comma => loop {
                match self.next() {
                    Token::Ident(value) => {
                        values.insert(value);
                        match self.peek() {
                            Token::Comma => {}
                            Token::Close => {
                                self.next();
                                break;
                            }
                            other => {
                                return Err(format!(
                                    "found '{}', expected: ',' or ')'",
                                    other.literal()
                                ));
                            }
                        }
                    }
                    Token::Comma => {
                        if values.is_empty() {
                            values.insert("");
                        }
                        match self.peek() {
                            Token::Close => {
                                self.next();
                                values.insert("");
                                break;
                            }
                            Token::Comma => {
                                self.next();
                                values.insert("");
                            }
                            _ => {}
                        }
                    }
                    other => {
                        return Err(format!(
                            "found '{}', expected: ',', or identifier",
                            other.literal()
                        ));
                    }
                }
            },
            other => {
                return Err(format!(
                    "found '{}', expected: ',', ')' or identifier",
                    other.literal()
                ));
            }
        }
        Ok(values.into_iter().map(str::to_owned).collect())
    }

    /// The single value after `=`, `!=`, `>` or `<`; nothing stands for the empty value.
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.next() {
            Token::Ident(value) => Ok(vec![value.to_owned()]),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// Fields every kind can be selected on.
const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const NODE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "spec.unschedulable"];

const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];

const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.phase"];

/// The fields a list or watch of `kind` can select on, as Kubernetes registers
/// them: `metadata.name` and `metadata.namespace` for every kind, plus
/// Pod: `spec.nodeName`, `spec.restartPolicy`, `spec.schedulerName`,
/// `spec.serviceAccountName`, `spec.hostNetwork`, `status.phase`,
/// `status.podIP`, `status.nominatedNodeName`; Node: `spec.unschedulable`;
/// Event: `involvedObject.{kind,namespace,name,uid,apiVersion,resourceVersion,fieldPath}`,
/// `reason`, `reportingComponent`, `source`, `type`; Secret: `type`;
/// Namespace: `status.phase`.
pub fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => POD_FIELDS,
        "Node" => NODE_FIELDS,
        "Event" => EVENT_FIELDS,
        "Secret" => SECRET_FIELDS,
        "Namespace" => NAMESPACE_FIELDS,
        _ => META_FIELDS,
    }
}

fn supported_by_some_kind(field: &str) -> bool {
    [
        POD_FIELDS,
        NODE_FIELDS,
        EVENT_FIELDS,
        SECRET_FIELDS,
        NAMESPACE_FIELDS,
    ]
    .iter()
    .any(|fields| fields.contains(&field))
}

/// How a [`FieldRequirement`] compares a field with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a [`FieldSelector`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldRequirement {
    field: String,
    op: FieldOperator,
    value: String,
}

impl FieldRequirement {
    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn operator(&self) -> FieldOperator {
        self.op
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A field selector (`?fieldSelector=`): all its terms must hold. A missing
/// field reads as the empty string, as in Kubernetes, so `spec.nodeName=`
/// selects unscheduled pods. Terms are kept sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses `field=value,field!=value,…` (`=`, `==`, `!=`; `\`, `,` and `=`
    /// in values escaped with `\`). Whitespace is part of fields and values, as
    /// in Kubernetes. Fields no kind supports are refused; narrow to one kind
    /// with [`FieldSelector::check_kind`].
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let syntax = |reason: String| SelectorError::FieldSyntax {
            selector: text.to_owned(),
            reason,
        };
        let mut requirements = Vec::new();
        for term in split_field_terms(text) {
            if term.is_empty() {
                continue;
            }
            let (field, op, raw_value) = split_field_term(term)
                .ok_or_else(|| syntax(format!("can't understand '{term}'")))?;
            let value = unescape_field_value(raw_value).map_err(syntax)?;
            if !supported_by_some_kind(field) {
                return Err(SelectorError::FieldNotSupported {
                    field: field.to_owned(),
                });
            }
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                op,
                value,
            });
        }
        requirements.sort();
        Ok(FieldSelector { requirements })
    }

    /// Refuses fields that `kind` cannot be selected on ([`supported_fields`]).
    pub fn check_kind(&self, kind: &str) -> Result<(), SelectorError> {
        let supported = supported_fields(kind);
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::FieldNotSupported {
                field: r.field.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether an object is selected; `field` returns a field's value (`None`
    /// when the object does not have it, which compares as the empty string).
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field(&r.field).unwrap_or_default();
            (actual == r.value) == (r.op == FieldOperator::Equals)
        })
    }

    /// The value `field` must equal, when a term requires it (Kubernetes'
    /// `RequiresExactMatch`): lets a watch of `spec.nodeName=x` use an index.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(text)
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical query string: terms sorted, values escaped, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_comma_separated(f, &self.requirements)
    }
}

/// Splits on commas not escaped by a backslash.
fn split_field_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits a term at its first operator: `!=`, then `==`, then `=`.
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ]
        .into_iter()
        .find(|(op, _)| rest.starts_with(op))
        .map(|(op, kind)| (&term[..i], kind, &rest[op.len()..]))
    })
}

fn escape_field_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => return Err(format!("invalid escape sequence: \\{other}")),
                None => return Err("invalid escape sequence: \\".to_owned()),
            },
            ',' | '=' => return Err(format!("unescaped character in value: {c}")),
            _ => value.push(c),
        }
    }
    Ok(value)
}

/// Writes the canonical query-string form shared by label and field
/// selectors: the terms, in order, joined by `,`.
fn write_comma_separated<T: fmt::Display>(f: &mut fmt::Formatter<'_>, terms: &[T]) -> fmt::Result {
    for (i, term) in terms.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{term}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
        Requirement::new(key, op, values.iter().map(|v| v.to_string()).collect()).unwrap()
    }

    /// An expected label requirement: key, operator, values.
    type Expected<'a> = (&'a str, Operator, &'a [&'a str]);
    /// An expected field requirement: field, operator, value.
    type ExpectedField<'a> = (&'a str, FieldOperator, &'a str);
    /// Labels as a table writes them.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn selector(text: &str) -> Selector {
        Selector::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn parses_every_operator_of_the_query_form() {
        use Operator::*;
        let cases: &[(&str, &[Expected<'_>])] = &[
            ("", &[]),
            ("   ", &[]),
            ("a=b", &[("a", Equals, &["b"])]),
            ("a==b", &[("a", Equals, &["b"])]),
            ("a!=b", &[("a", NotEquals, &["b"])]),
            ("a=", &[("a", Equals, &[""])]),
            ("a!=", &[("a", NotEquals, &[""])]),
            ("a in (x,y)", &[("a", In, &["x", "y"])]),
            ("a in (y,x,y)", &[("a", In, &["x", "y"])]),
            ("a notin (x)", &[("a", NotIn, &["x"])]),
            ("a in ()", &[("a", In, &[""])]),
            ("a in (,)", &[("a", In, &[""])]),
            ("a in (x,)", &[("a", In, &["", "x"])]),
            ("a in (,x)", &[("a", In, &["", "x"])]),
            ("a in (x,,y)", &[("a", In, &["", "x", "y"])]),
            ("a", &[("a", Exists, &[])]),
            ("!a", &[("a", DoesNotExist, &[])]),
            ("a>3", &[("a", Gt, &["3"])]),
            ("a<3", &[("a", Lt, &["3"])]),
            ("a=in", &[("a", Equals, &["in"])]),
            ("in in (notin)", &[("in", In, &["notin"])]),
            (
                "example.com/app=web",
                &[("example.com/app", Equals, &["web"])],
            ),
            (
                "  b = 2 ,\ta in ( x , y ) , ! c , d\n",
                &[
                    ("a", In, &["x", "y"]),
                    ("b", Equals, &["2"]),
                    ("c", DoesNotExist, &[]),
                    ("d", Exists, &[]),
                ],
            ),
        ];
        for &(text, expected) in cases {
            let expected = Selector::new(expected.iter().map(|&(k, op, v)| req(k, op, v)));
            assert_eq!(selector(text), expected, "{text:?}");
        }
    }

    #[test]
    fn refuses_malformed_query_forms_with_kubernetes_messages() {
        let name_shape = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let cases = [
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".to_owned()),
            ("a=b c", "found 'c', expected: ',' or 'end of string'".to_owned()),
            ("a=b,", "found '', expected: identifier after ','".to_owned()),
            ("a=b,,c", "found ',', expected: identifier after ','".to_owned()),
            (",a", "found ',', expected: !, identifier, or 'end of string'".to_owned()),
            ("=b", "found '=', expected: !, identifier, or 'end of string'".to_owned()),
            ("!", "unable to parse requirement: found '', expected: identifier".to_owned()),
            ("!a=b", "found '=', expected: ',' or 'end of string'".to_owned()),
            ("a in x", "unable to parse requirement: found 'x' expected: '('".to_owned()),
            ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'".to_owned()),
            ("a in (x,", "unable to parse requirement: found '', expected: ',', or identifier".to_owned()),
            ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'".to_owned()),
            ("a in", "unable to parse requirement: found '' expected: '('".to_owned()),
            ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_owned()),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier".to_owned()),
            ("a>b", "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer".to_owned()),
            ("a>", "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".to_owned()),
            ("a>-1", format!("unable to parse requirement: values[0]: Invalid value: \"-1\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '{LABEL_VALUE_FMT}')")),
            ("-a=b", format!("unable to parse requirement: key: Invalid value: \"-a\": {name_shape}")),
            ("a=b_", format!("unable to parse requirement: values[0]: Invalid value: \"b_\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '{LABEL_VALUE_FMT}')")),
        ];
        for (text, reason) in cases {
            assert_eq!(
                Selector::parse(text),
                Err(SelectorError::Syntax {
                    selector: text.to_owned(),
                    reason: reason.clone()
                }),
                "{text:?}"
            );
        }
        let err = Selector::parse("a b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to parse label selector \"a b\": unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
    }

    #[test]
    fn matches_each_operator_and_treats_absent_keys_as_kubernetes_does() {
        let cases: &[(&str, Pairs<'_>, bool)] = &[
            ("", &[], true),
            ("a=b", &[("a", "b")], true),
            ("a=b", &[("a", "c")], false),
            ("a=b", &[], false),
            ("a=", &[("a", "")], true),
            ("a=", &[], false),
            ("a!=b", &[("a", "c")], true),
            ("a!=b", &[("a", "b")], false),
            ("a!=b", &[], true),
            ("a in (x,y)", &[("a", "y")], true),
            ("a in (x,y)", &[("a", "z")], false),
            ("a in (x,y)", &[], false),
            ("a notin (x,y)", &[("a", "z")], true),
            ("a notin (x,y)", &[("a", "x")], false),
            ("a notin (x,y)", &[], true),
            ("a", &[("a", "")], true),
            ("a", &[("b", "a")], false),
            ("!a", &[("b", "a")], true),
            ("!a", &[("a", "")], false),
            ("a>3", &[("a", "4")], true),
            ("a>3", &[("a", "3")], false),
            ("a>3", &[("a", "x")], false),
            ("a>3", &[("a", "4.5")], false),
            ("a>3", &[], false),
            ("a<3", &[("a", "-7")], true),
            ("a<3", &[("a", "3")], false),
            ("a<3", &[("a", "2x")], false),
            ("a<3", &[], false),
            ("a=b,c", &[("a", "b"), ("c", "d")], true),
            ("a=b,c", &[("a", "b")], false),
        ];
        for &(text, set, expected) in cases {
            assert_eq!(
                selector(text).matches(&labels(set)),
                expected,
                "{text:?} on {set:?}"
            );
        }
    }

    #[test]
    fn nothing_matches_nothing_and_everything_matches_everything() {
        let set = labels(&[("a", "b")]);
        assert!(!Selector::nothing().matches(&set));
        assert!(!Selector::nothing().matches(&BTreeMap::new()));
        assert!(Selector::everything().matches(&set));
        assert!(Selector::everything().is_everything());
        assert!(Selector::nothing().is_nothing());
        assert!(!Selector::nothing().is_everything());
        assert_eq!(Selector::nothing().to_string(), "");
        assert_eq!(selector(""), Selector::everything());
    }

    #[test]
    fn displays_the_canonical_query_string_sorted_by_key() {
        let cases = [
            ("b=2,a=1", "a=1,b=2"),
            ("a==1", "a=1"),
            ("x notin (c,a,b) , !y,w", "w,x notin (a,b,c),!y"),
            ("a in ()", "a in ()"),
            ("a in (x,)", "a in (,x)"),
            ("a>10,a<20", "a>10,a<20"),
            ("a!=", "a!="),
        ];
        for (text, canonical) in cases {
            assert_eq!(selector(text).to_string(), canonical, "{text:?}");
            assert_eq!(selector(canonical), selector(text), "{canonical:?}");
        }
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn compiles_label_selectors() {
        let empty = LabelSelector::default();
        assert_eq!(
            Selector::from_label_selector(&empty),
            Ok(Selector::everything())
        );
        let full = LabelSelector {
            match_labels: BTreeMap::from([("app".into(), "web".into())]),
            match_expressions: vec![
                expression("env", "In", &["prod", "staging"]),
                expression("tier", "NotIn", &["db"]),
                expression("release", "Exists", &[]),
                expression("canary", "DoesNotExist", &[]),
            ],
        };
        let compiled = Selector::from_label_selector(&full).unwrap();
        assert_eq!(
            compiled,
            selector("app=web,env in (prod,staging),tier notin (db),release,!canary")
        );
        assert!(compiled.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("release", "1")
        ])));
        assert!(!compiled.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("release", "1"),
            ("canary", "")
        ])));
        assert!(!compiled.matches(&labels(&[("app", "web"), ("env", "prod")])));
    }

    #[test]
    fn refuses_label_selectors_naming_the_field() {
        let invalid = |field: &str, value: &str, reason: &str| SelectorError::Invalid {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let with_expressions = |expressions: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: expressions,
        };
        let ok = expression("ok", "Exists", &[]);
        let cases = [
            (
                with_expressions(vec![ok.clone(), expression("a", "In", &[])]),
                invalid(
                    "matchExpressions[1].values",
                    "[]string{}",
                    "for 'in', 'notin' operators, values set can't be empty",
                ),
            ),
            (
                with_expressions(vec![ok.clone(), expression("a", "NotIn", &[])]),
                invalid(
                    "matchExpressions[1].values",
                    "[]string{}",
                    "for 'in', 'notin' operators, values set can't be empty",
                ),
            ),
            (
                with_expressions(vec![expression("a", "Exists", &["x"])]),
                invalid(
                    "matchExpressions[0].values",
                    "[]string{\"x\"}",
                    "values set must be empty for exists and does not exist",
                ),
            ),
            (
                with_expressions(vec![expression("a", "DoesNotExist", &["x", "y"])]),
                invalid(
                    "matchExpressions[0].values",
                    "[]string{\"x\", \"y\"}",
                    "values set must be empty for exists and does not exist",
                ),
            ),
            (
                with_expressions(vec![ok.clone(), expression("a", "In", &["ok", "not ok"])]),
                invalid(
                    "matchExpressions[1].values[1]",
                    "\"not ok\"",
                    &validate_label_value("not ok").join("; "),
                ),
            ),
            (
                with_expressions(vec![expression("a/b/c", "Exists", &[])]),
                invalid(
                    "matchExpressions[0].key",
                    "\"a/b/c\"",
                    &validate_label_key("a/b/c").join("; "),
                ),
            ),
            (
                with_expressions(vec![ok, expression("a", "Gt", &["1"])]),
                SelectorError::UnsupportedOperator {
                    field: "matchExpressions[1].operator".into(),
                    operator: "Gt".into(),
                },
            ),
            (
                LabelSelector {
                    match_labels: BTreeMap::from([("-a".into(), "b".into())]),
                    match_expressions: vec![],
                },
                invalid(
                    "matchLabels",
                    "\"-a\"",
                    &validate_label_key("-a").join("; "),
                ),
            ),
            (
                LabelSelector {
                    match_labels: BTreeMap::from([("a".into(), "b c".into())]),
                    match_expressions: vec![],
                },
                invalid(
                    "matchLabels",
                    "\"b c\"",
                    &validate_label_value("b c").join("; "),
                ),
            ),
        ];
        for (label_selector, expected) in cases {
            assert_eq!(
                Selector::from_label_selector(&label_selector),
                Err(expected),
                "{label_selector:?}"
            );
        }
        let err =
            Selector::from_label_selector(&with_expressions(vec![expression("a", "In", &[])]))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "matchExpressions[0].values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        let err =
            Selector::from_label_selector(&with_expressions(vec![expression("a", "Foo", &[])]))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "matchExpressions[0].operator: Unsupported value: \"Foo\": supported values: \"DoesNotExist\", \"Exists\", \"In\", \"NotIn\""
        );
    }

    #[test]
    fn requirement_new_checks_value_counts() {
        use Operator::*;
        let cases: &[(Operator, &[&str], Option<&str>)] = &[
            (Equals, &["a"], None),
            (
                Equals,
                &[],
                Some("exact-match compatibility requires one single value"),
            ),
            (
                NotEquals,
                &["a", "b"],
                Some("exact-match compatibility requires one single value"),
            ),
            (
                In,
                &[],
                Some("for 'in', 'notin' operators, values set can't be empty"),
            ),
            (
                Exists,
                &["a"],
                Some("values set must be empty for exists and does not exist"),
            ),
            (
                Gt,
                &["1", "2"],
                Some("for 'Gt', 'Lt' operators, exactly one value is required"),
            ),
            (Lt, &["12"], None),
        ];
        for &(op, values, reason) in cases {
            let got = Requirement::new("k", op, values.iter().map(|v| v.to_string()).collect());
            match reason {
                None => assert!(got.is_ok(), "{op:?} {values:?}: {got:?}"),
                Some(reason) => assert!(
                    matches!(&got, Err(SelectorError::Invalid { field, reason: r, .. }) if field == "values" && r == reason),
                    "{op:?} {values:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn validates_label_keys_with_kubernetes_messages() {
        let shape = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let prefix_shape = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}.com/a", "a".repeat(250));
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("a", vec![]),
            ("app.kubernetes.io/name", vec![]),
            ("My_Name-1.2", vec![]),
            (&long_name[..63], vec![]),
            (&long_name, vec!["name part must be no more than 63 characters".into()]),
            ("", vec!["name part must be non-empty".into(), shape.into()]),
            ("-a", vec![shape.into()]),
            ("a_", vec![shape.into()]),
            ("a b", vec![shape.into()]),
            ("é", vec![shape.into()]),
            ("/a", vec!["prefix part must be non-empty".into()]),
            ("a/", vec!["name part must be non-empty".into(), shape.into()]),
            ("Example.com/a", vec![prefix_shape.into()]),
            ("a..b/a", vec![prefix_shape.into()]),
            ("a-/a", vec![prefix_shape.into()]),
            (&long_prefix, vec!["prefix part must be no more than 253 characters".into()]),
            ("a/b/c", vec!["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()]),
        ];
        for (key, expected) in cases {
            assert_eq!(validate_label_key(key), expected, "{key:?}");
        }
    }

    #[test]
    fn validates_label_values_with_kubernetes_messages() {
        let shape = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let long = "v".repeat(64);
        let long_bad = format!("{}-", "v".repeat(63));
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("", vec![]),
            ("v", vec![]),
            ("1.2.3-rc_1", vec![]),
            (&long[..63], vec![]),
            (&long, vec!["must be no more than 63 characters".into()]),
            (
                &long_bad,
                vec!["must be no more than 63 characters".into(), shape.into()],
            ),
            ("-v", vec![shape.into()]),
            ("v.", vec![shape.into()]),
            ("a/b", vec![shape.into()]),
        ];
        for (value, expected) in cases {
            assert_eq!(validate_label_value(value), expected, "{value:?}");
        }
    }

    #[test]
    fn parses_field_selectors() {
        use FieldOperator::*;
        let cases: &[(&str, &[ExpectedField<'_>])] = &[
            ("", &[]),
            ("metadata.name=x", &[("metadata.name", Equals, "x")]),
            ("metadata.name==x", &[("metadata.name", Equals, "x")]),
            ("spec.nodeName!=", &[("spec.nodeName", NotEquals, "")]),
            (
                "metadata.name=x,spec.nodeName!=,status.phase=Running",
                &[
                    ("metadata.name", Equals, "x"),
                    ("spec.nodeName", NotEquals, ""),
                    ("status.phase", Equals, "Running"),
                ],
            ),
            (
                ",status.phase=Running,",
                &[("status.phase", Equals, "Running")],
            ),
            (
                "metadata.name=a\\,b\\=c\\\\",
                &[("metadata.name", Equals, "a,b=c\\")],
            ),
            (
                "involvedObject.name=pi 7",
                &[("involvedObject.name", Equals, "pi 7")],
            ),
        ];
        for &(text, expected) in cases {
            let parsed = FieldSelector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let got: Vec<ExpectedField<'_>> = parsed
                .requirements()
                .iter()
                .map(|r| (r.field(), r.operator(), r.value()))
                .collect();
            assert_eq!(got, expected, "{text:?}");
        }
    }

    #[test]
    fn refuses_bad_field_selectors() {
        let syntax = |selector: &str, reason: &str| SelectorError::FieldSyntax {
            selector: selector.into(),
            reason: reason.into(),
        };
        let unsupported = |field: &str| SelectorError::FieldNotSupported {
            field: field.into(),
        };
        let cases = [
            (
                "metadata.name",
                syntax("metadata.name", "can't understand 'metadata.name'"),
            ),
            (
                "metadata.name=a=b",
                syntax("metadata.name=a=b", "unescaped character in value: ="),
            ),
            (
                "metadata.name=a\\x",
                syntax("metadata.name=a\\x", "invalid escape sequence: \\x"),
            ),
            (
                "metadata.name=a\\",
                syntax("metadata.name=a\\", "invalid escape sequence: \\"),
            ),
            ("spec.replicas=1", unsupported("spec.replicas")),
            (" metadata.name=x", unsupported(" metadata.name")),
            ("=x", unsupported("")),
        ];
        for (text, expected) in cases {
            assert_eq!(FieldSelector::parse(text), Err(expected), "{text:?}");
        }
        assert_eq!(unsupported("x").to_string(), "field label not supported: x");
    }

    #[test]
    fn checks_field_selectors_against_a_kind() {
        let cases = [
            ("Pod", "spec.nodeName=a,status.phase=Running", Ok(())),
            ("Node", "spec.unschedulable=false,metadata.name=n", Ok(())),
            ("Event", "involvedObject.uid=1,type=Warning", Ok(())),
            ("Secret", "type=Opaque", Ok(())),
            ("Namespace", "status.phase=Active", Ok(())),
            ("ConfigMap", "metadata.namespace=default", Ok(())),
            ("Node", "spec.nodeName=a", Err("spec.nodeName")),
            ("ConfigMap", "status.phase=Active", Err("status.phase")),
        ];
        for (kind, text, expected) in cases {
            let checked = FieldSelector::parse(text).unwrap().check_kind(kind);
            let expected = expected.map_err(|field| SelectorError::FieldNotSupported {
                field: field.into(),
            });
            assert_eq!(checked, expected, "{kind} {text:?}");
        }
    }

    #[test]
    fn matches_fields_with_absent_fields_as_empty() {
        let pod = |field: &str| match field {
            "metadata.name" => Some("web-1".to_owned()),
            "status.phase" => Some("Running".to_owned()),
            _ => None,
        };
        let cases = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.name!=web-2", true),
            ("metadata.name!=web-1", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("spec.nodeName=pi", false),
            ("spec.nodeName!=pi", true),
            ("metadata.name=web-1,status.phase!=Running", false),
            ("metadata.name=web-1,status.phase=Running", true),
        ];
        for (text, expected) in cases {
            assert_eq!(
                FieldSelector::parse(text).unwrap().matches(pod),
                expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn field_selector_reports_the_exact_value_a_term_requires() {
        let selector = FieldSelector::parse("spec.nodeName=pi-7,status.phase!=Failed").unwrap();
        assert_eq!(selector.exact_value("spec.nodeName"), Some("pi-7"));
        assert_eq!(selector.exact_value("status.phase"), None);
        assert_eq!(selector.exact_value("metadata.name"), None);
        assert_eq!(
            selector.to_string(),
            "spec.nodeName=pi-7,status.phase!=Failed"
        );
    }

    const VALUE: &str = "([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?";
    const NAME: &str = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?|in|notin";

    fn any_key() -> impl Strategy<Value = String> {
        (
            proptest::option::of("[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}"),
            NAME,
        )
            .prop_map(|(prefix, name)| match prefix {
                Some(prefix) => format!("{prefix}/{name}"),
                None => name,
            })
    }

    fn any_requirement() -> impl Strategy<Value = Requirement> {
        use Operator::*;
        let values = proptest::collection::vec(VALUE, 1..4);
        prop_oneof![
            (any_key(), prop_oneof![Just(Equals), Just(NotEquals)], VALUE)
                .prop_map(|(k, op, v)| Requirement::new(k, op, vec![v])),
            (any_key(), prop_oneof![Just(In), Just(NotIn)], values)
                .prop_map(|(k, op, v)| Requirement::new(k, op, v)),
            (any_key(), prop_oneof![Just(Exists), Just(DoesNotExist)])
                .prop_map(|(k, op)| Requirement::new(k, op, vec![])),
            (any_key(), prop_oneof![Just(Gt), Just(Lt)], 0u32..100_000)
                .prop_map(|(k, op, n)| Requirement::new(k, op, vec![n.to_string()])),
        ]
        .prop_map(|r| r.expect("generated requirements are valid"))
    }

    fn any_field_value() -> impl Strategy<Value = String> {
        "[-a-zA-Z0-9 ,=!\\\\.]{0,10}"
    }

    proptest! {
        #[test]
        fn label_selector_display_parses_back(requirements in proptest::collection::vec(any_requirement(), 0..5)) {
            let selector = Selector::new(requirements);
            prop_assert_eq!(Selector::parse(&selector.to_string()), Ok(selector));
        }

        #[test]
        fn field_selector_display_parses_back(
            terms in proptest::collection::vec((0..POD_FIELDS.len(), any::<bool>(), any_field_value()), 0..4)
        ) {
            let selector = FieldSelector {
                requirements: {
                    let mut r: Vec<FieldRequirement> = terms.into_iter().map(|(i, eq, value)| FieldRequirement {
                        field: POD_FIELDS[i].to_owned(),
                        op: if eq { FieldOperator::Equals } else { FieldOperator::NotEquals },
                        value,
                    }).collect();
                    r.sort();
                    r
                },
            };
            prop_assert_eq!(FieldSelector::parse(&selector.to_string()), Ok(selector));
        }

        #[test]
        fn whatever_the_label_parser_accepts_displays_back_to_itself(text in "[a-z0-9=!(), <>]{0,20}") {
            if let Ok(selector) = Selector::parse(&text) {
                prop_assert_eq!(Selector::parse(&selector.to_string()), Ok(selector));
            }
        }
    }
}
