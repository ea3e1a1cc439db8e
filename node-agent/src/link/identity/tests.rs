use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::*;

fn config(dir: &Path) -> IdentityConfig {
    IdentityConfig {
        node: "dev-1".into(),
        apis: Vec::new(),
        ca: dir.join("ca.crt"),
        cert: dir.join("device.crt"),
        key: dir.join("device.key"),
        bootstrap_token: None,
    }
}

fn certificate(not_before: SystemTime, not_after: SystemTime) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    certificate_for(&key, not_before, not_after)
}

/// A certificate for `key` (self-signed: the agent only reads it).
fn certificate_for(key: &KeyPair, not_before: SystemTime, not_after: SystemTime) -> String {
    let mut params = CertificateParams::new(vec!["dev-1".to_owned()]).unwrap();
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.self_signed(key).unwrap().pem()
}

/// A key and a certificate for it, as PEM.
fn pair() -> (String, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let now = SystemTime::now();
    let cert = certificate_for(&key, now, now + Duration::from_secs(60));
    (key.serialize_pem(), cert)
}

#[test]
fn the_validity_is_read_from_utc_and_generalized_times() {
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    // 2024 (UTCTime) to 2051 (GeneralizedTime, from 2050 on).
    let (from, until) = (at(1_700_000_000), at(2_560_000_000));
    let pem = certificate(from, until);
    assert_eq!(validity(pem.as_bytes()).unwrap(), (from, until));
    assert!(validity(b"no certificate here").is_err());
    let garbled = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    assert!(validity(garbled.as_bytes()).is_err());
}

#[test]
fn renewal_comes_at_two_thirds_of_the_life_less_up_to_a_tenth() {
    let from = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let until = from + Duration::from_secs(30 * 86_400);
    assert_eq!(
        renew_at(from, until, 0.0),
        from + Duration::from_secs(20 * 86_400)
    );
    let earliest = renew_at(from, until, 0.999_999);
    assert!(earliest > from + Duration::from_secs(17 * 86_400 - 1));
    assert!(earliest < from + Duration::from_secs(17 * 86_400 + 10));
    // A broken certificate (ends before it starts) is due at once.
    assert_eq!(renew_at(until, from, 0.5), until);
}

#[test]
fn a_pending_key_is_sent_again_until_its_certificate_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let first = next_key(&config).unwrap();
    let again = next_key(&config).unwrap();
    assert_eq!(first.serialize_der(), again.serialize_der());
    let mode = std::fs::metadata(next(&config.key)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // A certificate for another key is not installed.
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    assert!(install(&config, &certificate(now, later)).is_err());
    assert!(!enrolled(&config));
    // Installed, the next renewal gets a key of its own.
    install(&config, &certificate_for(&first, now, later)).unwrap();
    assert!(enrolled(&config));
    assert!(!next(&config.key).exists());
    assert!(!next(&config.cert).exists());
    let third = next_key(&config).unwrap();
    assert_ne!(third.serialize_der(), first.serialize_der());
    // An answer that is not a certificate changes nothing.
    let before = std::fs::read(&config.cert).unwrap();
    assert!(install(&config, "garbage").is_err());
    assert_eq!(std::fs::read(&config.cert).unwrap(), before);
    assert!(next(&config.key).exists());
}

#[test]
fn a_renewal_cut_short_between_its_renames_is_finished_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let write = |path: &Path, text: &str| std::fs::write(path, text).unwrap();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let (old_key, old_cert) = pair();
    write(&config.cert, &old_cert);
    write(&config.key, &old_key);
    // Cut before either rename.
    let (new_key, new_cert) = pair();
    write(&next(&config.cert), &new_cert);
    write(&next(&config.key), &new_key);
    recover(&config).unwrap();
    assert_eq!(
        (read(&config.cert), read(&config.key)),
        (new_cert.clone(), new_key.clone())
    );
    assert!(!next(&config.cert).exists() && !next(&config.key).exists());
    // Cut between the renames: the key is in place already.
    let (newer_key, newer_cert) = pair();
    write(&next(&config.cert), &newer_cert);
    write(&config.key, &newer_key);
    recover(&config).unwrap();
    assert_eq!(read(&config.cert), newer_cert);
    // A key whose request may be on its way stays pending.
    let (pending_key, _) = pair();
    write(&next(&config.key), &pending_key);
    recover(&config).unwrap();
    assert_eq!(read(&config.key), newer_key);
    assert!(next(&config.key).exists());
    // A pending certificate for neither key is dropped; the pair stays.
    let (_, stray) = pair();
    write(&next(&config.cert), &stray);
    recover(&config).unwrap();
    assert!(!next(&config.cert).exists());
    assert_eq!(
        (read(&config.cert), read(&config.key)),
        (newer_cert, newer_key)
    );
}
