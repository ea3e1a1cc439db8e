//! The hub ↔ agent wire protocol: what travels over MQTT between the device
//! gateway on a hub replica and the agent on a device.
//!
//! Every payload is an envelope: the protocol version (a postcard varint
//! `u16`), then one [`Message`] in postcard. [`encode`] and [`decode`] are the
//! only way in and out; [`topics`] names the MQTT topic each kind travels on
//! and the rule for who may publish or subscribe where; [`revision`] holds the
//! rule by which a device refuses desired states older than its own.
//!
//! ```
//! use flotilla_shared::wire::{self, Heartbeat, Message};
//!
//! let beat = Message::Heartbeat(Heartbeat {
//!     node: "pi-kitchen-01".into(),
//!     seq: 7,
//!     applied_revision: Some(42),
//!     ..Heartbeat::default()
//! });
//! let bytes = wire::encode(&beat);
//! assert_eq!(wire::decode(&bytes).unwrap(), beat);
//! ```
//!
//! # Rules for wire types
//!
//! postcard is positional and not self-describing, so the types here keep to
//! what it can carry faithfully, and stay safe to decode from untrusted bytes:
//!
//! - no `skip_serializing_if`, `flatten`, `untagged`, `default` tricks, and no
//!   self-describing values (`serde_json::Value`): every field is always on the
//!   wire, in declaration order;
//! - no floats (health figures are scaled integers), so every message is `Eq`;
//! - no zero-sized types inside a `Vec` (each element must consume at least one
//!   input byte, so a forged length cannot spin the decoder);
//! - no recursive types (decoding depth is fixed by the type);
//! - enum variants and struct fields are only ever appended, never reordered or
//!   removed, within one [`PROTOCOL_VERSION`]; anything else is a new version.

mod desired;
mod messages;
pub mod revision;
pub mod topics;

#[cfg(test)]
mod strategies;

pub use desired::{
    Backend, Capabilities, Container, ContainerPort, DesiredState, EnvVar, FileSet, HostPathKind,
    HttpHeader, HttpScheme, Pod, PodSecurity, Probe, ProbeAction, ProjectedFile, Protocol,
    PullPolicy, ResourceList, Resources, RestartPolicy, Seccomp, SecurityContext, Service,
    ServicePort, StorageMedium, Volume, VolumeMount, VolumeSource,
};
pub use messages::{
    AddressKind, Certificate, ContainerState, ContainerStatus, EnrollOutcome, EnrollRequest,
    EnrollResponse, Heartbeat, ImageInfo, LogCancel, LogChunk, LogRequest, Message, NodeAddress,
    NodeRegistration, NodeResources, Offline, PodPhase, PodStatusUpdate, Terminated,
};

/// The protocol this build speaks. A peer speaking another version is refused
/// by [`decode`]; the topic namespace ([`topics::PREFIX`]) carries the same
/// number so that two versions can share a broker during a fleet upgrade.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest payload [`decode`] accepts, checked before any decoding.
///
/// A desired state carries ConfigMap and Secret volumes inline, so the device
/// gateway must check the length of what [`encode`] returns against this
/// before publishing; the broker's maximum payload should be set to match.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why a payload could not be decoded. None of these is worth a retry: the
/// sender must be fixed (or upgraded, for [`WireError::UnsupportedVersion`]).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed envelope: no protocol version ({source})")]
    MissingVersion { source: postcard::Error },
    #[error("unsupported protocol version {found} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion { found: u16 },
    #[error("malformed message: {source}")]
    Malformed { source: postcard::Error },
    #[error("{count} trailing bytes after the message")]
    TrailingBytes { count: usize },
}

/// Encodes `message` in its envelope.
///
/// The result may exceed [`MAX_MESSAGE_BYTES`] (a desired state with large
/// files); a sender must check before publishing, since [`decode`] refuses it.
pub fn encode(message: &Message) -> Vec<u8> {
    // A tuple is its fields back to back in postcard: the envelope. Wire
    // types have no custom Serialize impls and every sequence has a known
    // length, so postcard cannot fail to write them into a growable Vec.
    postcard::to_allocvec(&(PROTOCOL_VERSION, message))
        .expect("wire types always serialize with postcard")
}

/// Decodes one enveloped message, refusing oversized input, another protocol
/// version, malformed contents and trailing bytes.
///
/// Safe on untrusted input: it never panics, and allocation is bounded by the
/// input length (postcard checks every string and byte length against the
/// bytes that remain before allocating, and preallocates a `Vec` only when
/// the remaining input could hold the claimed elements).
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let (version, rest) = postcard::take_from_bytes::<u16>(bytes)
        .map_err(|source| WireError::MissingVersion { source })?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion { found: version });
    }
    let (message, rest) = postcard::take_from_bytes::<Message>(rest)
        .map_err(|source| WireError::Malformed { source })?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes { count: rest.len() });
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn heartbeat() -> Message {
        Message::Heartbeat(Heartbeat {
            node: "pi-kitchen-01".into(),
            seq: 3,
            applied_revision: Some(9),
            ..Heartbeat::default()
        })
    }

    #[test]
    fn envelope_starts_with_the_protocol_version() {
        let bytes = encode(&heartbeat());
        assert_eq!(bytes[0], 1, "version 1 is a one-byte varint");
        assert_eq!(
            bytes[1], 1,
            "Heartbeat is the second variant of Message; variants are append-only"
        );
    }

    #[test]
    fn decode_refuses_another_protocol_version_by_name() {
        let mut bytes = encode(&heartbeat());
        bytes[0] = 7;
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, WireError::UnsupportedVersion { found: 7 }));
        assert_eq!(
            err.to_string(),
            "unsupported protocol version 7 (this build speaks 1)"
        );
    }

    #[test]
    fn decode_reads_a_multi_byte_version_before_refusing_it() {
        // 300 as a varint is [0xac, 0x02]; the message after it is never read.
        let err = decode(&[0xac, 0x02, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, WireError::UnsupportedVersion { found: 300 }));
    }

    #[test]
    fn decode_refuses_empty_input_as_missing_version() {
        let err = decode(&[]).unwrap_err();
        assert!(matches!(err, WireError::MissingVersion { .. }), "{err}");
    }

    #[test]
    fn decode_refuses_a_version_varint_that_overflows_u16() {
        let err = decode(&[0xff, 0xff, 0xff, 0x01]).unwrap_err();
        assert!(matches!(err, WireError::MissingVersion { .. }), "{err}");
    }

    #[test]
    fn decode_refuses_trailing_bytes() {
        let mut bytes = encode(&heartbeat());
        bytes.extend_from_slice(&[0, 0]);
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, WireError::TrailingBytes { count: 2 }));
        assert_eq!(err.to_string(), "2 trailing bytes after the message");
    }

    #[test]
    fn decode_refuses_every_truncation_of_a_valid_message() {
        let bytes = encode(&heartbeat());
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "a {len}-byte prefix of a {}-byte message decoded",
                bytes.len()
            );
        }
    }

    #[test]
    fn decode_refuses_oversized_input_before_reading_it() {
        let mut bytes = encode(&heartbeat());
        bytes.resize(MAX_MESSAGE_BYTES + 1, 0);
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(
            err,
            WireError::TooLarge { len, limit: MAX_MESSAGE_BYTES } if len == MAX_MESSAGE_BYTES + 1
        ));
    }

    #[test]
    fn decode_refuses_an_unknown_message_variant() {
        let err = decode(&[1, 200]).unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{err}");
    }

    #[test]
    fn decode_refuses_an_out_of_range_bool() {
        // A LogChunk: request id 1, seq 0, no data, then eof = 2.
        let err = decode(&[1, 5, 1, 0, 0, 2, 0]).unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{err}");
        assert!(decode(&[1, 5, 1, 0, 0, 1, 0]).is_ok());
    }

    #[test]
    fn decode_fails_fast_on_a_length_prefix_claiming_four_billion_bytes() {
        // A LogChunk whose data claims 2^32 bytes, in a 10-byte message. The
        // decoder must see that the input cannot hold them instead of
        // allocating (or looping) first.
        let bytes = [1, 5, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0];
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{err}");
    }

    #[test]
    fn decode_fails_fast_on_a_sequence_claiming_four_billion_elements() {
        // A DesiredState with node "", revision 0 and a pod list claiming
        // 2^32 pods.
        let bytes = [1, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0];
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{err}");
    }

    #[test]
    fn decode_fails_fast_on_a_length_prefix_overflowing_usize() {
        let bytes = [
            1, 5, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(matches!(
            decode(&bytes).unwrap_err(),
            WireError::Malformed { .. }
        ));
    }

    #[test]
    fn decode_refuses_invalid_utf8_in_a_string() {
        // A Heartbeat whose node name is the two bytes ff fe.
        let err = decode(&[1, 1, 2, 0xff, 0xfe]).unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_message_survives_an_encode_decode_round_trip(
            message in strategies::message()
        ) {
            let bytes = encode(&message);
            prop_assert!(bytes.len() <= MAX_MESSAGE_BYTES);
            prop_assert_eq!(decode(&bytes).unwrap(), message);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            if let Ok(message) = decode(&bytes) {
                // postcard accepts overlong varints and repeated map keys, so
                // re-encoding can only shrink a message, never grow it.
                let again = encode(&message);
                prop_assert!(again.len() <= bytes.len());
                prop_assert_eq!(decode(&again).unwrap(), message);
            }
        }

        #[test]
        fn mutated_valid_messages_never_panic_the_decoder(
            message in strategies::message(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        ) {
            let mut bytes = encode(&message);
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(decoded) = decode(&bytes) {
                prop_assert_eq!(decode(&encode(&decoded)).unwrap(), decoded);
            }
        }

        #[test]
        fn valid_messages_with_anything_appended_are_refused(
            message in strategies::message(),
            tail in proptest::collection::vec(any::<u8>(), 1..8)
        ) {
            let mut bytes = encode(&message);
            bytes.extend_from_slice(&tail);
            let refused = matches!(decode(&bytes), Err(WireError::TrailingBytes { count }) if count == tail.len());
            prop_assert!(refused);
        }
    }
}
