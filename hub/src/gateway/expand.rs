//! `$(VAR)` references in `env[].value`, `command` and `args`, expanded as
//! kubelet does (`k8s.io/kubernetes/third_party/forked/golang/expansion`):
//! `$(NAME)` becomes NAME's value when NAME is defined and stays as written
//! when not; `$$` is a literal `$`; any other `$` is left alone. Kept here
//! rather than taken from a crate: the shell-style expanders (shellexpand,
//! envsubst) accept `$NAME` and `${NAME}`, which Kubernetes leaves alone, and
//! none keeps an undefined reference as written.

/// Expands the references in `input` that `lookup` knows.
pub(crate) fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    if !input.contains('$') {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(')
            && let Some(close) = reference.find(')')
        {
            let name = &reference[..close];
            match lookup(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &reference[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn vars(name: &str) -> Option<&'static str> {
        match name {
            "HOST" => Some("gw-1"),
            "EMPTY" => Some(""),
            "DOLLAR" => Some("$(HOST)"),
            _ => None,
        }
    }

    #[test]
    fn expands_as_kubelet_does() {
        let cases = [
            ("plain", "plain"),
            ("$(HOST)", "gw-1"),
            ("http://$(HOST):80/$(HOST)", "http://gw-1:80/gw-1"),
            ("$(EMPTY)x", "x"),
            // Undefined references stay as written.
            ("$(NOPE)-$(HOST)", "$(NOPE)-gw-1"),
            // `$$` escapes: `$$(HOST)` is the literal `$(HOST)`.
            ("$$(HOST)", "$(HOST)"),
            ("$$$(HOST)", "$gw-1"),
            ("cost: 5$", "cost: 5$"),
            ("$HOST ${HOST}", "$HOST ${HOST}"),
            // An unclosed reference is text.
            ("$(HOST", "$(HOST"),
            ("$(", "$("),
            // Values are not expanded again.
            ("$(DOLLAR)", "$(HOST)"),
            ("é$(HOST)ü", "égw-1ü"),
            ("$é", "$é"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, vars), expected, "{input}");
        }
    }
}
