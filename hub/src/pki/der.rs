//! The little DER this module writes itself: a subject name with several
//! organizations, spliced into a certificate that rcgen produced.
//!
//! rcgen keeps one value per attribute type in a distinguished name
//! (rustls/rcgen#81), but Kubernetes reads a user's groups from repeated
//! `O=` attributes. So a leaf certificate is first signed by rcgen with a
//! placeholder subject; [`replace_subject`] then swaps in the real name and
//! signs the new to-be-signed part with the CA key.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const BIT_STRING: u8 = 0x03;

/// id-at-commonName, 2.5.4.3, DER content.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
/// id-at-organizationName, 2.5.4.10, DER content.
const ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];

/// Appends the DER length octets for `len`.
fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// One DER element with `tag` around `content`.
pub(crate) fn element(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A DER element read from the front of some input.
#[derive(Debug, PartialEq, Eq)]
struct Element<'a> {
    tag: u8,
    /// Tag, length and content.
    whole: &'a [u8],
    content: &'a [u8],
    /// What follows the element.
    rest: &'a [u8],
}

/// Reads one element (single-byte tags, definite lengths, as in X.509).
fn read_element(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first, after_len) = after_tag.split_first()?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), after_len)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() || after_len.len() < n {
            return None;
        }
        let len = after_len[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &after_len[n..])
    };
    if body.len() < len {
        return None;
    }
    let header = input.len() - body.len();
    Some(Element {
        tag,
        whole: &input[..header + len],
        content: &body[..len],
        rest: &body[len..],
    })
}

/// The DER `Name` with the organizations first, then the common name, each
/// its own RDN (as kubeadm and openssl write `/O=…/CN=…`).
pub(crate) fn subject_name(common_name: &str, organizations: &[String]) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| {
        let mut pair = element(OID, oid);
        pair.extend(element(UTF8_STRING, value.as_bytes()));
        element(SET, &element(SEQUENCE, &pair))
    };
    let mut rdns = Vec::new();
    for org in organizations {
        rdns.extend(rdn(&ORGANIZATION, org));
    }
    rdns.extend(rdn(&COMMON_NAME, common_name));
    element(SEQUENCE, &rdns)
}

/// Why a certificate could not be re-signed with a new subject.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SpliceError {
    /// The certificate is not the DER shape rcgen writes.
    Malformed,
    /// The placeholder subject is not in the to-be-signed part exactly once.
    PlaceholderNotFound,
    /// The signing key refused.
    Sign,
}

/// Returns `cert_der` with the name `old_name` in its to-be-signed part
/// replaced by `new_name`, re-signed by `sign` (which must produce a
/// signature for the algorithm the certificate already names).
pub(crate) fn replace_subject(
    cert_der: &[u8],
    old_name: &[u8],
    new_name: &[u8],
    sign: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, SpliceError> {
    let cert = read_element(cert_der).ok_or(SpliceError::Malformed)?;
    let tbs = read_element(cert.content).ok_or(SpliceError::Malformed)?;
    let algorithm = read_element(tbs.rest).ok_or(SpliceError::Malformed)?;
    if cert.tag != SEQUENCE || tbs.tag != SEQUENCE || algorithm.tag != SEQUENCE {
        return Err(SpliceError::Malformed);
    }
    let mut found = tbs
        .content
        .windows(old_name.len())
        .enumerate()
        .filter(|(_, w)| *w == old_name)
        .map(|(at, _)| at);
    let at = match (found.next(), found.next()) {
        (Some(at), None) => at,
        _ => return Err(SpliceError::PlaceholderNotFound),
    };
    let mut tbs_content = Vec::with_capacity(tbs.content.len() + new_name.len());
    tbs_content.extend_from_slice(&tbs.content[..at]);
    tbs_content.extend_from_slice(new_name);
    tbs_content.extend_from_slice(&tbs.content[at + old_name.len()..]);
    let new_tbs = element(SEQUENCE, &tbs_content);

    let signature = sign(&new_tbs).ok_or(SpliceError::Sign)?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend(signature);

    let mut body = new_tbs;
    body.extend_from_slice(algorithm.whole);
    body.extend(element(BIT_STRING, &bits));
    Ok(element(SEQUENCE, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_der_form() {
        for (len, want) in [
            (0usize, vec![0x00]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x80]),
            (0xff, vec![0x81, 0xff]),
            (0x100, vec![0x82, 0x01, 0x00]),
            (0x1_0000, vec![0x83, 0x01, 0x00, 0x00]),
        ] {
            let mut out = Vec::new();
            push_length(&mut out, len);
            assert_eq!(out, want, "length {len}");
        }
    }

    #[test]
    fn elements_read_back_what_was_written() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let content = vec![7u8; len];
            let mut input = element(SEQUENCE, &content);
            input.extend_from_slice(b"tail");
            let read = read_element(&input).unwrap();
            assert_eq!(read.tag, SEQUENCE);
            assert_eq!(read.content, &content[..]);
            assert_eq!(read.rest, b"tail");
            assert_eq!(read.whole.len(), input.len() - 4);
        }
    }

    #[test]
    fn truncated_elements_are_refused() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 1, 2],
            &[0x30, 0x82, 0x01],
            &[0x30, 0x80],
        ] {
            assert_eq!(read_element(input), None, "{input:?}");
        }
    }

    #[test]
    fn subject_name_puts_organizations_before_the_common_name() {
        let name = subject_name("al", &["g".into()]);
        #[rustfmt::skip]
        let want = [
            0x30, 0x19,
            0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, b'g',
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'a', b'l',
        ];
        assert_eq!(name, want);
    }

    #[test]
    fn a_placeholder_found_twice_or_not_at_all_is_refused() {
        let tbs = element(SEQUENCE, b"xxABxxAB");
        let alg = element(SEQUENCE, b"alg");
        let cert = element(SEQUENCE, &[tbs, alg, element(BIT_STRING, &[0])].concat());
        let sign = |_: &[u8]| Some(vec![1]);
        assert_eq!(
            replace_subject(&cert, b"AB", b"CD", sign),
            Err(SpliceError::PlaceholderNotFound)
        );
        assert_eq!(
            replace_subject(&cert, b"ZZ", b"CD", sign),
            Err(SpliceError::PlaceholderNotFound)
        );
        assert_eq!(
            replace_subject(b"\x04\x00", b"AB", b"CD", sign),
            Err(SpliceError::Malformed)
        );
    }

    #[test]
    fn replacing_the_subject_rebuilds_lengths_and_signs_the_new_tbs() {
        let tbs = element(SEQUENCE, b"<OLD>tail");
        let alg = element(SEQUENCE, b"alg");
        let cert = element(
            SEQUENCE,
            &[tbs, alg.clone(), element(BIT_STRING, &[0])].concat(),
        );
        let long_name = vec![b'n'; 200];
        let mut signed = Vec::new();
        let out = replace_subject(&cert, b"<OLD>", &long_name, |tbs| {
            signed = tbs.to_vec();
            Some(b"sig".to_vec())
        })
        .unwrap();
        let want_tbs = element(SEQUENCE, &[&long_name[..], b"tail"].concat());
        assert_eq!(signed, want_tbs);
        let want = element(
            SEQUENCE,
            &[want_tbs, alg, element(BIT_STRING, b"\x00sig")].concat(),
        );
        assert_eq!(out, want);
    }
}
