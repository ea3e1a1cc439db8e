//! Name formats with Kubernetes' messages (`k8s.io/apimachinery/pkg/util/validation`).
//!
//! Each check returns the list of messages for one value (empty when valid).
//! The checks are written out by hand rather than with a regex crate: they are
//! a few lines each, and the agent, which links this crate, stays smaller.

pub const DNS1123_LABEL_MAX: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
pub const DNS1035_LABEL_MAX: usize = 63;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const ENV_VAR_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn max_len_msg(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn label_shape(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && bytes.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// RFC 1123 label: namespaces, container names, port-less names.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errors.push(max_len_msg(DNS1123_LABEL_MAX));
    }
    if !label_shape(value) {
        errors.push(DNS1123_LABEL_MSG.to_owned());
    }
    errors
}

/// RFC 1123 subdomain: most object names, node names.
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_msg(DNS1123_SUBDOMAIN_MAX));
    }
    if value.is_empty() || !value.split('.').all(label_shape) {
        errors.push(DNS1123_SUBDOMAIN_MSG.to_owned());
    }
    errors
}

/// RFC 1035 label: Service names (they become DNS names).
pub fn dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1035_LABEL_MAX {
        errors.push(max_len_msg(DNS1035_LABEL_MAX));
    }
    let starts_alpha = value
        .as_bytes()
        .first()
        .is_some_and(|c| c.is_ascii_lowercase());
    if !starts_alpha || !label_shape(value) {
        errors.push(DNS1035_LABEL_MSG.to_owned());
    }
    errors
}

/// IANA service name: container port names, named target ports.
pub fn port_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 15 {
        errors.push("must be no more than 15 characters".to_owned());
    }
    if !value
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errors.push("must contain only alpha-numerics and '-'".to_owned());
    }
    if !value.bytes().any(|c| c.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".to_owned());
    }
    if value.contains("--") {
        errors.push("must not contain consecutive hyphens".to_owned());
    }
    if value.starts_with('-') || value.ends_with('-') {
        errors.push("must not begin or end with a hyphen".to_owned());
    }
    errors
}

/// Environment variable names.
pub fn env_var_name(value: &str) -> Vec<String> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    let valid = value
        .as_bytes()
        .first()
        .is_some_and(|c| !c.is_ascii_digit())
        && value.bytes().all(ok_char);
    let mut errors = Vec::new();
    if !valid {
        errors.push(ENV_VAR_MSG.to_owned());
    }
    errors.extend(dot_prefix(value));
    errors
}

/// Kubernetes' `hasChDirPrefix`: names that would walk out of a directory.
fn dot_prefix(value: &str) -> Option<String> {
    match value {
        "." => Some("must not be '.'".to_owned()),
        ".." => Some("must not be '..'".to_owned()),
        _ if value.starts_with("..") => Some("must not start with '..'".to_owned()),
        _ => None,
    }
}

/// ConfigMap and Secret keys (they become file names in volumes).
pub fn config_key(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_msg(DNS1123_SUBDOMAIN_MAX));
    }
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    if value.is_empty() || !value.bytes().all(ok_char) {
        errors.push(CONFIG_KEY_MSG.to_owned());
    }
    errors.extend(dot_prefix(value));
    errors
}

/// A port number: 1 to 65535.
pub fn port_number(value: i32) -> Vec<String> {
    if (1..=65535).contains(&value) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_follow_rfc_1123_and_1035() {
        let cases: &[(&str, bool, bool, bool)] = &[
            // value, label ok, subdomain ok, 1035 ok
            ("nginx", true, true, true),
            ("my-app-1", true, true, true),
            ("1abc", true, true, false),
            ("a.b.c", false, true, false),
            ("Nginx", false, false, false),
            ("-abc", false, false, false),
            ("abc-", false, false, false),
            ("a..b", false, false, false),
            ("web_1", false, false, false),
            ("", false, false, false),
        ];
        for &(value, label, subdomain, rfc1035) in cases {
            assert_eq!(dns1123_label(value).is_empty(), label, "label {value:?}");
            assert_eq!(
                dns1123_subdomain(value).is_empty(),
                subdomain,
                "subdomain {value:?}"
            );
            assert_eq!(dns1035_label(value).is_empty(), rfc1035, "1035 {value:?}");
        }
        assert_eq!(dns1123_label(&"a".repeat(64)), vec![max_len_msg(63)]);
        assert!(dns1123_subdomain(&"a".repeat(253)).is_empty());
        assert!(!dns1123_subdomain(&"a".repeat(254)).is_empty());
    }

    #[test]
    fn port_names_are_iana_service_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("http-web-svc").is_empty());
        assert_eq!(
            port_name("80"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name("a--b"),
            vec!["must contain consecutive hyphens".replace("must", "must not")]
        );
        assert_eq!(
            port_name("-web"),
            vec!["must not begin or end with a hyphen"]
        );
        assert_eq!(
            port_name("a-very-long-port-name"),
            vec!["must be no more than 15 characters"]
        );
        assert_eq!(
            port_name("HTTP"),
            vec![
                "must contain only alpha-numerics and '-'",
                "must contain at least one letter (a-z)"
            ]
        );
    }

    #[test]
    fn env_names_and_config_keys() {
        assert!(env_var_name("MY_VAR").is_empty());
        assert!(env_var_name("my.env-name").is_empty());
        assert!(!env_var_name("1VAR").is_empty());
        assert!(!env_var_name("A=B").is_empty());
        assert!(!env_var_name("").is_empty());
        assert!(config_key("game.properties").is_empty());
        assert!(config_key(".hidden").is_empty());
        assert_eq!(config_key(".."), vec!["must not be '..'"]);
        assert!(!config_key("a/b").is_empty());
        assert!(!config_key("").is_empty());
    }

    #[test]
    fn port_numbers_are_1_to_65535() {
        assert!(port_number(1).is_empty());
        assert!(port_number(65535).is_empty());
        assert!(!port_number(0).is_empty());
        assert!(!port_number(65536).is_empty());
    }
}
