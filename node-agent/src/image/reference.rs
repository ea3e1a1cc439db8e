//! Image references (`[registry/]repository[:tag][@digest]`) parsed by hand.
//!
//! oci-spec's `Reference::from_str` validates with one large Unicode regex:
//! compiling it on first use costs about 12 MiB of memory that stays
//! allocated (measured by `flotilla-bench agent`), more than the whole agent
//! otherwise needs. The grammar is small and ASCII
//! (distribution/reference's `reference.go`), so it is checked here and the
//! result built with `Reference::with_*`, which never touch the regex.

use oci_client::Reference;

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Parses and validates a reference, with Docker's normalisation
/// (`busybox` is `docker.io/library/busybox:latest`).
pub fn parse(reference: &str) -> Result<Reference, String> {
    if reference.is_empty() {
        return Err("empty reference".into());
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let (registry, repository) = split_domain(name)?;
    for component in repository.split('/') {
        check_path_component(component)?;
    }
    if repository.len() > NAME_MAX {
        return Err(format!("repository name longer than {NAME_MAX} characters"));
    }
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.to_owned(), digest.to_owned())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_owned()),
        (Some(tag), None) => Reference::with_tag(registry, repository, tag.to_owned()),
        (None, None) => Reference::with_tag(registry, repository, "latest".to_owned()),
    })
}

fn split_domain(name: &str) -> Result<(String, String), String> {
    let (mut domain, mut rest) = match name.split_once('/') {
        Some((left, right)) if left.contains(['.', ':']) || left == "localhost" => {
            check_domain(left)?;
            (left.to_owned(), right.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.to_owned();
    }
    if domain == DOCKER_HUB && !rest.contains('/') {
        rest = format!("library/{rest}");
    }
    Ok((domain, rest))
}

/// `host[:port]`: DNS labels of letters, digits and '-', or a bracketed IPv6
/// address; the port is digits.
fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid registry {domain:?}"));
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return bad();
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        (None, after.strip_prefix(':'))
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !host.split('.').all(label_ok) {
            return bad();
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by one '.', one or two '_', or any number of '-'.
fn check_path_component(component: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid repository name component {component:?}"));
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= TAG_MAX
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

/// `sha256:<64 hex>`, `sha384:<96 hex>` or `sha512:<128 hex>`.
fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("invalid digest {digest:?}"));
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {algorithm:?}")),
    };
    if hex.len() != length
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("invalid {algorithm} digest {hex:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_as_oci_spec_parses_them() {
        let cases = [
            "busybox",
            "busybox:1.36",
            "library/busybox",
            "docker.io/library/busybox:latest",
            "index.docker.io/library/busybox",
            "test.com:5000/repo:tag",
            "test.com:tag",
            "test.com:5000",
            "localhost/app",
            "localhost:5000/team/app/sub-part:v1.2_3",
            "127.0.0.1:5000/flotilla/busybox:1",
            "registry.local/a.b__c--d/e@",
        ];
        for case in cases {
            let ours = parse(case);
            let theirs = case.parse::<Reference>();
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a.whole(), b.whole(), "{case}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{case}: ours {ours:?}, oci-spec {theirs:?}"),
            }
        }
        let with_digest = format!("127.0.0.1:5000/app:1@{D}");
        assert_eq!(
            parse(&with_digest).unwrap().whole(),
            with_digest.parse::<Reference>().unwrap().whole()
        );
        // Bracketed IPv6 registries, which newer distribution/reference takes.
        assert_eq!(parse("[::1]:5000/app:1").unwrap().registry(), "[::1]:5000");
        let by_digest = format!("127.0.0.1:5000/app@{D}");
        let parsed = parse(&by_digest).unwrap();
        assert_eq!(parsed.digest(), Some(D));
        assert_eq!(parsed.tag(), None);
    }

    #[test]
    fn bad_references_are_refused_with_what_is_wrong() {
        for (case, wanted) in [
            ("", "empty"),
            ("UPPER/app", "component"),
            ("app:", "tag"),
            ("app:-x", "tag"),
            ("a..b/c", "registry"),
            ("registry.local/a..b", "component"),
            ("registry.local/a/", "component"),
            ("registry.local/a___b", "component"),
            ("app@sha256:abc", "digest"),
            ("app@md5:0123", "algorithm"),
            ("reg-.local/app", "registry"),
            ("reg.local:50x0/app", "registry"),
        ] {
            let error = parse(case).unwrap_err();
            assert!(error.contains(wanted), "{case}: {error}");
        }
    }
}
