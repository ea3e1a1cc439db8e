//! Authentication: who sent a request.
//!
//! Three ways in, tried in kube-apiserver's order (its union authenticator):
//!
//! 1. a client certificate signed by the cluster CA (TLS has verified the
//!    chain): the subject's CN is the user, each O a group;
//! 2. a bearer token from the static token file (`--token-auth-file`, the
//!    CSV Kubernetes reads: `token,user,uid,"group1,group2"`);
//! 3. a bootstrap token `ID.SECRET`, checked against the Secret
//!    `kube-system/bootstrap-token-ID` of type `bootstrap.kubernetes.io/token`
//!    (`plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go`): the user
//!    is `system:bootstrap:ID` in group `system:bootstrappers` plus the
//!    Secret's `auth-extra-groups`. Devices enroll with these.
//!
//! Every authenticated user is also in `system:authenticated`. A request
//! with none of these is anonymous: refused (401) unless anonymous access
//! was configured, when it is `system:anonymous` in `system:unauthenticated`.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use flotilla_shared::model::Secret;

use super::time::parse_time;
use super::user::{AUTHENTICATED, UserInfo};
use crate::pki::Identity;

/// The Secret type of bootstrap tokens.
pub const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token user is in.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// Where bootstrap token Secrets live, and their name prefix.
pub const BOOTSTRAP_NAMESPACE: &str = "kube-system";
pub const BOOTSTRAP_SECRET_PREFIX: &str = "bootstrap-token-";

/// Why a request could not be authenticated (all become 401; the reason is logged, not sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("no credentials and anonymous access is disabled")]
    Anonymous,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("unknown bearer token")]
    UnknownToken,
    #[error("bootstrap token {id}: {reason}")]
    Bootstrap { id: String, reason: &'static str },
}

/// Errors reading the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("read token file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: &'static str,
    },
}

/// The static credentials of a replica: its token file and whether anonymous requests are allowed.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
    anonymous: bool,
}

/// What one request presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The verified client certificate's identity, if one was sent.
    pub certificate: Option<&'a Identity>,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
}

/// How the authenticator found the caller: a user, or a bootstrap token it
/// must check against its Secret (which the caller reads from the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    User(UserInfo),
    /// `ID.SECRET`: look up the Secret and call [`bootstrap_user`].
    Bootstrap {
        id: String,
        secret: String,
    },
}

impl Authenticator {
    pub fn new(anonymous: bool) -> Self {
        Authenticator {
            tokens: HashMap::new(),
            anonymous,
        }
    }

    /// Reads a Kubernetes static token file.
    pub fn with_token_file(mut self, path: &Path) -> Result<Self, TokenFileError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: display.clone(),
            source,
        })?;
        self.tokens = parse_token_file(&text).map_err(|(line, reason)| TokenFileError::Line {
            path: display,
            line,
            reason,
        })?;
        Ok(self)
    }

    /// Authenticates what a request presented.
    pub fn authenticate(&self, credentials: Credentials<'_>) -> Result<Outcome, AuthnError> {
        if let Some(identity) = credentials.certificate
            && !identity.common_name.is_empty()
        {
            let mut user =
                UserInfo::new(identity.common_name.clone(), identity.organizations.clone());
            add_authenticated(&mut user);
            return Ok(Outcome::User(user));
        }
        let Some(header) = credentials.authorization else {
            return if self.anonymous {
                Ok(Outcome::User(UserInfo::new(
                    "system:anonymous",
                    ["system:unauthenticated"],
                )))
            } else {
                Err(AuthnError::Anonymous)
            };
        };
        let token = bearer(header).ok_or(AuthnError::NotBearer)?;
        if let Some(user) = self.tokens.get(token) {
            let mut user = user.clone();
            add_authenticated(&mut user);
            return Ok(Outcome::User(user));
        }
        match parse_bootstrap_token(token) {
            Some((id, secret)) => Ok(Outcome::Bootstrap {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            None => Err(AuthnError::UnknownToken),
        }
    }
}

fn add_authenticated(user: &mut UserInfo) {
    if !user.in_group(AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.to_owned());
    }
}

/// The token of `Bearer TOKEN` (the scheme compared without case, as Go's server does).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `ID.SECRET` with a 6-character id and a 16-character secret of `[a-z0-9]`.
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// Checks a bootstrap token against its Secret (`None` when there is none) at `now`.
pub fn bootstrap_user(
    id: &str,
    token_secret: &str,
    secret: Option<&Secret>,
    now: SystemTime,
) -> Result<UserInfo, AuthnError> {
    let fail = |reason| AuthnError::Bootstrap {
        id: id.to_owned(),
        reason,
    };
    let secret = secret.ok_or_else(|| fail("no such token"))?;
    if secret.type_ != BOOTSTRAP_TOKEN_TYPE {
        return Err(fail("the secret is not a bootstrap token"));
    }
    if secret.metadata.deletion_timestamp.is_some() {
        return Err(fail("the token is being deleted"));
    }
    let field = |name: &str| -> Option<String> {
        secret
            .data
            .get(name)
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .or_else(|| secret.string_data.get(name).cloned())
    };
    if field("token-id").as_deref() != Some(id) {
        return Err(fail("the secret's token-id does not match"));
    }
    let expected = field("token-secret").unwrap_or_default();
    if !constant_time_eq(expected.as_bytes(), token_secret.as_bytes()) {
        return Err(fail("wrong secret"));
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(fail("the token may not be used for authentication"));
    }
    if let Some(expiration) = field("expiration") {
        match parse_time(&expiration) {
            Some(at) if at > now => {}
            Some(_) => return Err(fail("the token has expired")),
            None => return Err(fail("the token's expiration is not a valid time")),
        }
    }
    let mut user = UserInfo::new(format!("system:bootstrap:{id}"), [BOOTSTRAPPERS]);
    if let Some(extra) = field("auth-extra-groups") {
        for group in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            // Kubernetes accepts only groups under system:bootstrappers: here too.
            if !group.starts_with("system:bootstrappers:") {
                return Err(fail(
                    "auth-extra-groups may only name system:bootstrappers:* groups",
                ));
            }
            user.groups.push(group.to_owned());
        }
    }
    add_authenticated(&mut user);
    Ok(user)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses the CSV of a token file: `token,user,uid[,"group1,group2"]` per
/// line; blank lines and lines starting with `#` are skipped.
fn parse_token_file(text: &str) -> Result<HashMap<String, UserInfo>, (usize, &'static str)> {
    let mut tokens = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(line).ok_or((line_no, "unbalanced quotes"))?;
        if fields.len() < 3 {
            return Err((line_no, "expected token,user,uid[,groups]"));
        }
        if fields[0].is_empty() || fields[1].is_empty() {
            return Err((line_no, "the token and the user name must not be empty"));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let user = UserInfo {
            name: fields[1].clone(),
            uid: fields[2].clone(),
            groups,
        };
        if tokens.insert(fields[0].clone(), user).is_some() {
            return Err((line_no, "the token appears twice"));
        }
    }
    Ok(tokens)
}

/// One CSV record (RFC 4180 quoting, `""` for a quote inside quotes).
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut()?.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut()?.push(c),
        }
    }
    (!quoted).then(|| fields.into_iter().map(|f| f.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use flotilla_shared::model::{ByteString, ObjectMeta};

    use super::*;

    fn identity(cn: &str, orgs: &[&str]) -> Identity {
        Identity {
            common_name: cn.into(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
            not_before: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_client_certificate_names_the_user_and_groups() {
        let authn = Authenticator::new(false);
        let id = identity("alice", &["dev", "ops"]);
        let outcome = authn.authenticate(Credentials {
            certificate: Some(&id),
            authorization: Some("Bearer ignored"),
        });
        assert_eq!(
            outcome,
            Ok(Outcome::User(UserInfo::new(
                "alice",
                ["dev", "ops", AUTHENTICATED]
            )))
        );
    }

    #[test]
    fn tokens_come_from_the_token_file() {
        let text = "# comment\n\ns3cret,bob,42,\"dev,ops\"\nother,carol,43\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, text).unwrap();
        let authn = Authenticator::new(false).with_token_file(&path).unwrap();
        let bob = authn.authenticate(Credentials {
            certificate: None,
            authorization: Some("Bearer s3cret"),
        });
        let mut want = UserInfo::new("bob", ["dev", "ops", AUTHENTICATED]);
        want.uid = "42".into();
        assert_eq!(bob, Ok(Outcome::User(want)));
        let carol = authn.authenticate(Credentials {
            certificate: None,
            authorization: Some("bearer other"),
        });
        assert!(matches!(carol, Ok(Outcome::User(u)) if u.name == "carol"));
        assert_eq!(
            authn.authenticate(Credentials {
                certificate: None,
                authorization: Some("Bearer nope")
            }),
            Err(AuthnError::UnknownToken)
        );
        assert_eq!(
            authn.authenticate(Credentials {
                certificate: None,
                authorization: Some("Basic YTpi")
            }),
            Err(AuthnError::NotBearer)
        );
    }

    #[test]
    fn bad_token_files_are_refused_with_the_line() {
        for (text, line) in [
            ("a,b\n", 1),
            ("x,y,z\nx,u,v\n", 2),
            ("a,\"b,c\n", 1),
            (",u,1\n", 1),
        ] {
            assert_eq!(
                parse_token_file(text).map(|_| ()).unwrap_err().0,
                line,
                "{text:?}"
            );
        }
    }

    #[test]
    fn anonymous_requests_are_refused_unless_allowed() {
        let none = Credentials::default();
        assert_eq!(
            Authenticator::new(false).authenticate(none),
            Err(AuthnError::Anonymous)
        );
        let Ok(Outcome::User(user)) = Authenticator::new(true).authenticate(none) else {
            panic!()
        };
        assert_eq!(user.name, "system:anonymous");
        assert!(!user.in_group(AUTHENTICATED));
    }

    fn token_secret(id: &str, secret: &str, extra: &[(&str, &str)]) -> Secret {
        let mut data: BTreeMap<String, ByteString> = [
            ("token-id", id),
            ("token-secret", secret),
            ("usage-bootstrap-authentication", "true"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
        data.retain(|_, v| !v.0.is_empty());
        Secret {
            metadata: ObjectMeta {
                name: format!("bootstrap-token-{id}"),
                namespace: "kube-system".into(),
                ..ObjectMeta::default()
            },
            type_: BOOTSTRAP_TOKEN_TYPE.into(),
            data,
            ..Secret::default()
        }
    }

    #[test]
    fn bootstrap_tokens_are_checked_against_their_secret() {
        let authn = Authenticator::new(false);
        let outcome = authn
            .authenticate(Credentials {
                certificate: None,
                authorization: Some("Bearer abcdef.0123456789abcdef"),
            })
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Bootstrap {
                id: "abcdef".into(),
                secret: "0123456789abcdef".into()
            }
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let secret = token_secret(
            "abcdef",
            "0123456789abcdef",
            &[
                ("auth-extra-groups", "system:bootstrappers:gateways"),
                ("expiration", "2026-12-01T00:00:00Z"),
            ],
        );
        let user = bootstrap_user("abcdef", "0123456789abcdef", Some(&secret), now).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                BOOTSTRAPPERS,
                "system:bootstrappers:gateways",
                AUTHENTICATED
            ]
        );

        let refused = |secret: Option<&Secret>, token: &str| {
            bootstrap_user("abcdef", token, secret, now).unwrap_err()
        };
        assert!(matches!(
            refused(None, "0123456789abcdef"),
            AuthnError::Bootstrap {
                reason: "no such token",
                ..
            }
        ));
        assert!(matches!(
            refused(Some(&secret), "0123456789abcdeX"),
            AuthnError::Bootstrap {
                reason: "wrong secret",
                ..
            }
        ));
        let expired = token_secret(
            "abcdef",
            "0123456789abcdef",
            &[("expiration", "2020-01-01T00:00:00Z")],
        );
        assert!(matches!(
            refused(Some(&expired), "0123456789abcdef"),
            AuthnError::Bootstrap {
                reason: "the token has expired",
                ..
            }
        ));
        let escalating = token_secret(
            "abcdef",
            "0123456789abcdef",
            &[("auth-extra-groups", "system:masters")],
        );
        assert!(matches!(
            refused(Some(&escalating), "0123456789abcdef"),
            AuthnError::Bootstrap { .. }
        ));
        let mut unusable = token_secret("abcdef", "0123456789abcdef", &[]);
        unusable.data.remove("usage-bootstrap-authentication");
        assert!(matches!(
            refused(Some(&unusable), "0123456789abcdef"),
            AuthnError::Bootstrap { .. }
        ));
        let mut opaque = secret.clone();
        opaque.type_ = "Opaque".into();
        assert!(matches!(
            refused(Some(&opaque), "0123456789abcdef"),
            AuthnError::Bootstrap { .. }
        ));
    }

    #[test]
    fn only_well_formed_bootstrap_tokens_are_recognised() {
        assert_eq!(
            parse_bootstrap_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcde.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_bootstrap_token(bad), None, "{bad}");
        }
    }
}
