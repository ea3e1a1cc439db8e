//! Feeds arbitrary bytes to the wire decoder, as a device (or anything on the
//! broker) could. Decoding must never panic; whatever decodes must survive an
//! encode/decode round trip unchanged.
#![no_main]

use flotilla_shared::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = wire::decode(data) {
        let bytes = wire::encode(&message);
        assert!(bytes.len() <= data.len(), "re-encoding grew the message");
        let again = wire::decode(&bytes).expect("a re-encoded message decodes");
        assert_eq!(again, message);
    }
});
