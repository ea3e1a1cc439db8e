//! MQTT topic names, defined in one place, and the access rule for devices.
//!
//! | topic                                          | direction     | QoS | retained | carries                              |
//! |------------------------------------------------|---------------|-----|----------|--------------------------------------|
//! | `flotilla/v1/nodes/{node}/desired`             | hub → device  | 1   | yes      | [`Message::DesiredState`]            |
//! | `flotilla/v1/nodes/{node}/status`              | device → hub  | 1   | no       | `PodStatusUpdate`, `NodeRegistration`, `Offline` (last will) |
//! | `flotilla/v1/nodes/{node}/heartbeat`           | device → hub  | 0   | no       | [`Message::Heartbeat`]               |
//! | `flotilla/v1/nodes/{node}/logs/request`        | hub → device  | 1   | no       | [`Message::LogRequest`], `LogCancel` |
//! | `flotilla/v1/nodes/{node}/logs/response/{id}`  | device → hub  | 1   | no       | [`Message::LogChunk`] of request `id`|
//! | `flotilla/v1/enroll/{node}/request`            | new device → hub | 1 | no      | [`Message::EnrollRequest`]           |
//! | `flotilla/v1/enroll/{node}/response`           | hub → new device | 1 | no      | [`Message::EnrollResponse`]          |
//!
//! The enrollment topics are unused: devices enroll over HTTPS
//! ([`crate::enroll`]), which works with any broker.
//!
//! `{node}` is a DNS-1123 subdomain (the Node object's name), so it never
//! contains `/`, `+`, `#` or NUL; `{id}` is a decimal `u64` without leading
//! zeros. rumqttd has no topic ACLs of its own: the broker integration calls
//! [`device_may_publish`] and friends for every client operation.

use std::fmt;

use super::messages::Message;

/// The topic namespace of protocol version 1 ([`super::PROTOCOL_VERSION`]).
pub const PREFIX: &str = "flotilla/v1";

/// What a hub replica's device gateway subscribes to.
pub const HUB_SUBSCRIPTIONS: [&str; 4] = [
    "flotilla/v1/nodes/+/status",
    "flotilla/v1/nodes/+/heartbeat",
    "flotilla/v1/nodes/+/logs/response/+",
    "flotilla/v1/enroll/+/request",
];

/// The longest node name (a DNS-1123 subdomain).
pub const MAX_NODE_NAME_LEN: usize = crate::validation::names::DNS1123_SUBDOMAIN_MAX;

/// Why a node name or topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeName { name: String, reason: String },
    #[error("topic {topic:?} is not a flotilla v1 device topic")]
    Unrecognized { topic: String },
    #[error(
        "topic {topic:?} has an invalid log request id (expected a decimal u64 without leading zeros)"
    )]
    InvalidRequestId { topic: String },
}

/// MQTT quality of service, as this protocol uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qos {
    /// Lossy, for heartbeats: the next one follows soon.
    AtMostOnce,
    AtLeastOnce,
}

/// Which of a device's topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    Desired,
    Status,
    Heartbeat,
    LogRequest,
    LogResponse { request_id: u64 },
    EnrollRequest,
    EnrollResponse,
}

impl TopicKind {
    /// Whether messages on this topic are published retained.
    pub fn retained(self) -> bool {
        matches!(self, TopicKind::Desired)
    }

    /// The QoS messages on this topic are published with.
    pub fn qos(self) -> Qos {
        match self {
            TopicKind::Heartbeat => Qos::AtMostOnce,
            _ => Qos::AtLeastOnce,
        }
    }
}

/// A device topic: a node and which of its topics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic {
    node: String,
    kind: TopicKind,
}

impl Topic {
    /// The topic `kind` of `node`, refusing a node name that is not a
    /// DNS-1123 subdomain.
    pub fn new(node: &str, kind: TopicKind) -> Result<Topic, TopicError> {
        validate_node_name(node)?;
        Ok(Topic {
            node: node.to_owned(),
            kind,
        })
    }

    /// Parses an incoming topic name; anything this module would not build is
    /// refused.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let unrecognized = || TopicError::Unrecognized {
            topic: topic.to_owned(),
        };
        let rest = topic
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(unrecognized)?;
        let mut parts = rest.split('/');
        let (area, node) = (parts.next(), parts.next().ok_or_else(unrecognized)?);
        let tail: Vec<&str> = parts.collect();
        let kind = match (area, tail.as_slice()) {
            (Some("nodes"), ["desired"]) => TopicKind::Desired,
            (Some("nodes"), ["status"]) => TopicKind::Status,
            (Some("nodes"), ["heartbeat"]) => TopicKind::Heartbeat,
            (Some("nodes"), ["logs", "request"]) => TopicKind::LogRequest,
            (Some("nodes"), ["logs", "response", id]) => TopicKind::LogResponse {
                request_id: parse_request_id(id).ok_or_else(|| TopicError::InvalidRequestId {
                    topic: topic.to_owned(),
                })?,
            },
            (Some("enroll"), ["request"]) => TopicKind::EnrollRequest,
            (Some("enroll"), ["response"]) => TopicKind::EnrollResponse,
            _ => return Err(unrecognized()),
        };
        Topic::new(node, kind)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn kind(&self) -> TopicKind {
        self.kind
    }

    /// Whether `message` belongs on this topic: the right kind, for this
    /// node (and for a log chunk, this request). The hub checks every
    /// incoming message with it, so a device cannot speak for another.
    pub fn carries(&self, message: &Message) -> bool {
        let kind_fits = match (self.kind, message) {
            (TopicKind::Desired, Message::DesiredState(_))
            | (
                TopicKind::Status,
                Message::PodStatusUpdate(_) | Message::NodeRegistration(_) | Message::Offline(_),
            )
            | (TopicKind::Heartbeat, Message::Heartbeat(_))
            | (TopicKind::LogRequest, Message::LogRequest(_) | Message::LogCancel(_))
            | (TopicKind::EnrollRequest, Message::EnrollRequest(_))
            | (TopicKind::EnrollResponse, Message::EnrollResponse(_)) => true,
            (TopicKind::LogResponse { request_id }, Message::LogChunk(chunk)) => {
                chunk.request_id == request_id
            }
            _ => false,
        };
        kind_fits && message.node().is_none_or(|node| node == self.node)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = &self.node;
        match self.kind {
            TopicKind::Desired => write!(f, "{PREFIX}/nodes/{node}/desired"),
            TopicKind::Status => write!(f, "{PREFIX}/nodes/{node}/status"),
            TopicKind::Heartbeat => write!(f, "{PREFIX}/nodes/{node}/heartbeat"),
            TopicKind::LogRequest => write!(f, "{PREFIX}/nodes/{node}/logs/request"),
            TopicKind::LogResponse { request_id } => {
                write!(f, "{PREFIX}/nodes/{node}/logs/response/{request_id}")
            }
            TopicKind::EnrollRequest => write!(f, "{PREFIX}/enroll/{node}/request"),
            TopicKind::EnrollResponse => write!(f, "{PREFIX}/enroll/{node}/response"),
        }
    }
}

/// The topic name of `kind` for `node`.
pub fn topic(node: &str, kind: TopicKind) -> Result<String, TopicError> {
    Topic::new(node, kind).map(|t| t.to_string())
}

fn parse_request_id(text: &str) -> Option<u64> {
    // `u64::from_str` also takes `+5`; a leading zero would give one id two names.
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// Checks that `name` is a DNS-1123 subdomain, as Kubernetes requires of node
/// names: at most 253 characters of lowercase letters, digits, `-` and `.`,
/// each dot-separated label starting and ending with a letter or digit.
pub fn validate_node_name(name: &str) -> Result<(), TopicError> {
    match crate::validation::names::dns1123_subdomain(name)
        .into_iter()
        .next()
    {
        None => Ok(()),
        Some(reason) => Err(TopicError::InvalidNodeName {
            name: name.to_owned(),
            reason,
        }),
    }
}

/// Whether the device `node` may publish on `topic`: only its own status,
/// heartbeat and log-response topics.
pub fn device_may_publish(node: &str, topic: &str) -> bool {
    match Topic::parse(topic) {
        Ok(t) => {
            t.node == node
                && matches!(
                    t.kind,
                    TopicKind::Status | TopicKind::Heartbeat | TopicKind::LogResponse { .. }
                )
        }
        Err(_) => false,
    }
}

/// Whether the device `node` may subscribe to `filter`: only to exactly its
/// own desired and log-request topics. Every wildcard filter is refused,
/// even one that could only match the device's own topics: there is nothing
/// a device needs one for.
pub fn device_may_subscribe(node: &str, filter: &str) -> bool {
    exact_topic_of(node, filter, &[TopicKind::Desired, TopicKind::LogRequest])
}

/// Whether a client holding only a bootstrap token for `node` may publish on
/// `topic`: only its own enrollment request topic.
pub fn enrollee_may_publish(node: &str, topic: &str) -> bool {
    exact_topic_of(node, topic, &[TopicKind::EnrollRequest])
}

/// Whether a client holding only a bootstrap token for `node` may subscribe
/// to `filter`: only exactly its own enrollment response topic.
pub fn enrollee_may_subscribe(node: &str, filter: &str) -> bool {
    exact_topic_of(node, filter, &[TopicKind::EnrollResponse])
}

/// The ACL file of an external Mosquitto broker that enforces the rules
/// above: `hub_user` (the gateway's certificate name) may do anything under
/// [`PREFIX`]; every other client, named by its certificate
/// (`use_identity_as_username`), only what [`device_may_publish`] and
/// [`device_may_subscribe`] allow it. Mosquitto refuses whatever no line
/// grants, so another device's topics and wildcard filters are refused.
pub fn mosquitto_acl(hub_user: &str) -> String {
    format!(
        "# Written by Flotilla: device topics, each device its own (shared/src/wire/topics.rs).\n\
         user {hub_user}\n\
         topic readwrite {PREFIX}/#\n\
         \n\
         pattern write {PREFIX}/nodes/%u/status\n\
         pattern write {PREFIX}/nodes/%u/heartbeat\n\
         pattern write {PREFIX}/nodes/%u/logs/response/+\n\
         pattern read {PREFIX}/nodes/%u/desired\n\
         pattern read {PREFIX}/nodes/%u/logs/request\n"
    )
}

fn exact_topic_of(node: &str, name: &str, kinds: &[TopicKind]) -> bool {
    kinds
        .iter()
        .any(|&kind| Topic::new(node, kind).is_ok_and(|t| t.to_string() == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Heartbeat, LogChunk, PodStatusUpdate};

    /// MQTT filter matching (`+` one level, `#` the rest), for checking the
    /// hub's filters against the topics devices publish on.
    fn filter_matches(filter: &str, topic: &str) -> bool {
        let mut topic_levels = topic.split('/');
        for level in filter.split('/') {
            match (level, topic_levels.next()) {
                ("#", _) => return true,
                ("+", Some(_)) => {}
                (l, Some(t)) if l == t => {}
                _ => return false,
            }
        }
        topic_levels.next().is_none()
    }

    const ALL_KINDS: [TopicKind; 7] = [
        TopicKind::Desired,
        TopicKind::Status,
        TopicKind::Heartbeat,
        TopicKind::LogRequest,
        TopicKind::LogResponse { request_id: 42 },
        TopicKind::EnrollRequest,
        TopicKind::EnrollResponse,
    ];

    #[test]
    fn topics_have_the_documented_names() {
        let cases = [
            (TopicKind::Desired, "flotilla/v1/nodes/pi-1/desired"),
            (TopicKind::Status, "flotilla/v1/nodes/pi-1/status"),
            (TopicKind::Heartbeat, "flotilla/v1/nodes/pi-1/heartbeat"),
            (TopicKind::LogRequest, "flotilla/v1/nodes/pi-1/logs/request"),
            (
                TopicKind::LogResponse { request_id: 42 },
                "flotilla/v1/nodes/pi-1/logs/response/42",
            ),
            (TopicKind::EnrollRequest, "flotilla/v1/enroll/pi-1/request"),
            (
                TopicKind::EnrollResponse,
                "flotilla/v1/enroll/pi-1/response",
            ),
        ];
        for (kind, name) in cases {
            assert_eq!(topic("pi-1", kind).unwrap(), name);
        }
    }

    #[test]
    fn every_topic_parses_back_to_its_node_and_kind() {
        for node in ["pi-1", "a", "rack3.site-b.example", "0", &"x".repeat(253)] {
            for kind in ALL_KINDS {
                let name = topic(node, kind).unwrap();
                let parsed = Topic::parse(&name).unwrap();
                assert_eq!((parsed.node(), parsed.kind()), (node, kind), "{name}");
            }
        }
    }

    #[test]
    fn node_names_that_are_not_dns_subdomains_are_refused() {
        let long = "a".repeat(254);
        let cases = [
            "",
            "Pi-1",
            "pi/1",
            "pi+1",
            "pi#1",
            "pi\0",
            "-pi",
            "pi-",
            "pi..1",
            ".pi",
            "pi.",
            "pi_1",
            "pï",
            "pi 1",
            long.as_str(),
        ];
        for name in cases {
            let err = Topic::new(name, TopicKind::Status).unwrap_err();
            assert!(
                matches!(err, TopicError::InvalidNodeName { .. }),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn invalid_node_name_error_names_the_node_and_the_rule() {
        let err = topic("Pi/1", TopicKind::Desired).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid node name \"Pi/1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
            ),
            "{err}"
        );
    }

    #[test]
    fn foreign_and_malformed_topics_are_refused() {
        let cases = [
            "",
            "flotilla",
            "flotilla/v1",
            "flotilla/v1/",
            "flotilla/v2/nodes/pi-1/status",
            "flotilla/v1/nodes/pi-1",
            "flotilla/v1/nodes/pi-1/",
            "flotilla/v1/nodes/pi-1/status/",
            "flotilla/v1/nodes/pi-1/status/extra",
            "flotilla/v1/nodes//status",
            "flotilla/v1/nodes/+/status",
            "flotilla/v1/nodes/#",
            "flotilla/v1/nodes/pi-1/logs",
            "flotilla/v1/nodes/pi-1/logs/response",
            "flotilla/v1/nodes/pi-1/enroll",
            "flotilla/v1/enroll/pi-1/desired",
            "flotilla/v1/nodes/PI-1/status",
            "/flotilla/v1/nodes/pi-1/status",
            "flotilla/v1x/nodes/pi-1/status",
            "$SYS/broker/clients",
        ];
        for name in cases {
            assert!(Topic::parse(name).is_err(), "{name:?} parsed");
        }
        let err = Topic::parse("flotilla/v1/nodes/pi-1/reboot").unwrap_err();
        assert_eq!(
            err.to_string(),
            "topic \"flotilla/v1/nodes/pi-1/reboot\" is not a flotilla v1 device topic"
        );
    }

    #[test]
    fn log_request_ids_must_be_canonical_decimal() {
        for id in [
            "",
            "+5",
            "-5",
            "05",
            "00",
            "5a",
            "18446744073709551616",
            " 5",
        ] {
            let name = format!("flotilla/v1/nodes/pi-1/logs/response/{id}");
            assert!(
                matches!(
                    Topic::parse(&name),
                    Err(TopicError::InvalidRequestId { .. })
                ),
                "{id:?}"
            );
        }
        for (id, value) in [("0", 0), ("7", 7), ("18446744073709551615", u64::MAX)] {
            let name = format!("flotilla/v1/nodes/pi-1/logs/response/{id}");
            assert_eq!(
                Topic::parse(&name).unwrap().kind(),
                TopicKind::LogResponse { request_id: value }
            );
        }
    }

    #[test]
    fn hub_subscriptions_match_exactly_the_topics_devices_and_enrollees_publish() {
        for kind in ALL_KINDS {
            let name = topic("pi-1", kind).unwrap();
            let hub_hears = HUB_SUBSCRIPTIONS.iter().any(|f| filter_matches(f, &name));
            let device_says =
                device_may_publish("pi-1", &name) || enrollee_may_publish("pi-1", &name);
            assert_eq!(hub_hears, device_says, "{name}");
        }
    }

    #[test]
    fn only_desired_is_retained_and_only_heartbeat_is_lossy() {
        for kind in ALL_KINDS {
            assert_eq!(kind.retained(), kind == TopicKind::Desired, "{kind:?}");
            assert_eq!(
                kind.qos() == Qos::AtMostOnce,
                kind == TopicKind::Heartbeat,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_device_publishes_only_its_own_status_heartbeat_and_log_responses() {
        let cases = [
            ("flotilla/v1/nodes/pi-1/status", true),
            ("flotilla/v1/nodes/pi-1/heartbeat", true),
            ("flotilla/v1/nodes/pi-1/logs/response/9", true),
            ("flotilla/v1/nodes/pi-1/desired", false),
            ("flotilla/v1/nodes/pi-1/logs/request", false),
            ("flotilla/v1/nodes/pi-2/status", false),
            ("flotilla/v1/nodes/pi-2/heartbeat", false),
            ("flotilla/v1/nodes/pi-2/logs/response/9", false),
            ("flotilla/v1/nodes/pi-10/status", false),
            ("flotilla/v1/nodes/pi-1/logs/response/09", false),
            ("flotilla/v1/nodes/pi-1/status/extra", false),
            ("flotilla/v1/nodes/+/status", false),
            ("flotilla/v1/nodes/pi-1/#", false),
            ("flotilla/v1/enroll/pi-1/request", false),
            ("flotilla/v1/enroll/pi-1/response", false),
            ("other/pi-1/status", false),
            ("", false),
        ];
        for (name, allowed) in cases {
            assert_eq!(device_may_publish("pi-1", name), allowed, "{name}");
        }
    }

    #[test]
    fn a_device_subscribes_only_to_its_own_desired_and_log_requests_without_wildcards() {
        let cases = [
            ("flotilla/v1/nodes/pi-1/desired", true),
            ("flotilla/v1/nodes/pi-1/logs/request", true),
            ("flotilla/v1/nodes/pi-1/status", false),
            ("flotilla/v1/nodes/pi-1/logs/response/1", false),
            ("flotilla/v1/nodes/other/desired", false),
            ("flotilla/v1/nodes/other/logs/request", false),
            ("flotilla/v1/nodes/+/desired", false),
            ("flotilla/v1/nodes/+/logs/request", false),
            ("flotilla/v1/nodes/pi-1/+", false),
            ("flotilla/v1/nodes/pi-1/#", false),
            ("flotilla/v1/nodes/pi-1/logs/+", false),
            ("flotilla/v1/nodes/#", false),
            ("flotilla/v1/+/pi-1/desired", false),
            ("flotilla/#", false),
            ("#", false),
            ("+/v1/nodes/pi-1/desired", false),
            ("$share/g/flotilla/v1/nodes/pi-1/desired", false),
            ("flotilla/v1/enroll/pi-1/response", false),
            ("flotilla/v1/nodes/pi-1/desired/", false),
            ("", false),
        ];
        for (filter, allowed) in cases {
            assert_eq!(device_may_subscribe("pi-1", filter), allowed, "{filter}");
        }
    }

    #[test]
    fn a_client_with_an_invalid_node_name_may_do_nothing() {
        for node in ["", "+", "#", "pi/1", "Pi-1"] {
            for kind in ALL_KINDS {
                let name = topic("x", kind)
                    .unwrap()
                    .replacen("/x/", &format!("/{node}/"), 1);
                assert!(!device_may_publish(node, &name), "{node:?} {name}");
                assert!(!device_may_subscribe(node, &name), "{node:?} {name}");
                assert!(!enrollee_may_publish(node, &name), "{node:?} {name}");
                assert!(!enrollee_may_subscribe(node, &name), "{node:?} {name}");
            }
        }
    }

    #[test]
    fn an_enrollee_may_only_request_and_hear_its_own_enrollment() {
        let cases: [(&str, bool, bool); 7] = [
            ("flotilla/v1/enroll/pi-1/request", true, false),
            ("flotilla/v1/enroll/pi-1/response", false, true),
            ("flotilla/v1/enroll/pi-2/request", false, false),
            ("flotilla/v1/enroll/pi-2/response", false, false),
            ("flotilla/v1/enroll/+/response", false, false),
            ("flotilla/v1/nodes/pi-1/status", false, false),
            ("flotilla/v1/nodes/pi-1/desired", false, false),
        ];
        for (name, publish, subscribe) in cases {
            assert_eq!(enrollee_may_publish("pi-1", name), publish, "{name}");
            assert_eq!(enrollee_may_subscribe("pi-1", name), subscribe, "{name}");
        }
    }

    #[test]
    fn a_topic_carries_only_its_kind_of_message_for_its_own_node() {
        let status = Topic::new("pi-1", TopicKind::Status).unwrap();
        let heartbeat_topic = Topic::new("pi-1", TopicKind::Heartbeat).unwrap();
        let logs_42 = Topic::new("pi-1", TopicKind::LogResponse { request_id: 42 }).unwrap();
        let own_status = Message::PodStatusUpdate(PodStatusUpdate {
            node: "pi-1".into(),
            ..PodStatusUpdate::default()
        });
        let foreign_status = Message::PodStatusUpdate(PodStatusUpdate {
            node: "pi-2".into(),
            ..PodStatusUpdate::default()
        });
        let own_beat = Message::Heartbeat(Heartbeat {
            node: "pi-1".into(),
            ..Heartbeat::default()
        });
        let chunk = |request_id| {
            Message::LogChunk(LogChunk {
                request_id,
                ..LogChunk::default()
            })
        };
        let cases = [
            (&status, &own_status, true),
            (&status, &foreign_status, false),
            (&status, &own_beat, false),
            (&heartbeat_topic, &own_beat, true),
            (&heartbeat_topic, &own_status, false),
            (&logs_42, &chunk(42), true),
            (&logs_42, &chunk(43), false),
            (&status, &chunk(42), false),
        ];
        for (topic, message, expected) in cases {
            assert_eq!(
                topic.carries(message),
                expected,
                "{topic} {}",
                message.kind()
            );
        }
    }
}
