//! A device's identity over its life, on real processes: a hub replica
//! issuing 30-second certificates, and an agent that starts with nothing
//! but a bootstrap token.
//!
//! It enrolls (its key generated on the device, the Node created with the
//! key's hash), renews well before expiry while connected, comes back after
//! being off past its certificate's expiry and renews with its old key, is
//! cut off when revoked (live connection closed, reconnects and renewals
//! refused, enrolling again refused while its Node exists), and is
//! re-admitted once the operator deletes its Node. The API refuses
//! enrollments without a valid token and a second key for an enrolled name.

use std::path::Path;
use std::time::{Duration, SystemTime};

use flotilla_hub::pki::Certificate;
use flotilla_tests::agent::{AgentProcess, registry_with_busybox};
use flotilla_tests::api_client::ApiClient;
use flotilla_tests::devices::{node_ready as ready, wait_until};
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::{Value, json};

const TOKEN: &str = "abcdef.0123456789abcdef";

fn token_secret() -> &'static str {
    "apiVersion: v1\nkind: Secret\n\
     metadata: {name: bootstrap-token-abcdef, namespace: kube-system}\n\
     type: bootstrap.kubernetes.io/token\n\
     stringData: {token-id: abcdef, token-secret: 0123456789abcdef, usage-bootstrap-authentication: \"true\"}\n"
}

fn csr(key: &KeyPair) -> String {
    CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

fn certificate(path: &Path) -> Option<Certificate> {
    Certificate::load(path).ok()
}

async fn enroll(
    api: &str,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    token: Option<&str>,
    node: &str,
    key: &KeyPair,
) -> (u16, Value) {
    let mut client = ApiClient::connect(api, tls.clone()).await.expect("connect");
    if let Some(token) = token {
        client = client.with_bearer(token);
    }
    let answer = client
        .post(
            flotilla_shared::enroll::ENROLL_PATH,
            &json!({"node": node, "csr": csr(key)}),
        )
        .await
        .expect("post");
    (answer.code, answer.json())
}

#[test]
fn a_device_enrolls_renews_outlives_its_certificate_and_is_cut_off_when_revoked() {
    let (registry, _image) = registry_with_busybox();
    let cluster = Cluster::start(
        1,
        ClusterOptions {
            extra_args: vec![
                "--device-cert-seconds".into(),
                "30".into(),
                "--lease-renewal-seconds".into(),
                "1".into(),
            ],
            ..ClusterOptions::default()
        },
    );
    let replica = &cluster.replicas[0];
    let kubectl = Kubectl::new(&replica.kubeconfig());
    kubectl.apply(token_secret(), &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.crt");
    std::fs::copy(cluster.pki_dir().join("ca.crt"), &ca_file).expect("the CA");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");

    // The API's side: only a valid token enrolls, and a name once.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let tls = ApiClient::ca_only_tls(&cluster.pki_dir()).expect("tls");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let other_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    runtime.block_on(async {
        let (code, _) = enroll(&replica.api, &tls, None, "probe-1", &key).await;
        assert_eq!(code, 401, "no credentials");
        let wrong = "abcdef.ffffffffffffffff";
        let (code, _) = enroll(&replica.api, &tls, Some(wrong), "probe-1", &key).await;
        assert_eq!(code, 401, "a wrong token secret");
        let (code, body) = enroll(&replica.api, &tls, Some(TOKEN), "Probe_1", &key).await;
        assert_eq!(code, 400, "an invalid node name: {body}");
        let (code, body) = enroll(&replica.api, &tls, Some(TOKEN), "probe-1", &key).await;
        assert_eq!(code, 200, "{body}");
        let issued = Certificate::from_pem(body["certificate"].as_str().unwrap()).unwrap();
        let identity = issued.identity().unwrap();
        assert_eq!(identity.common_name, "probe-1");
        assert_eq!(identity.organizations, ["system:nodes"]);
        // The answer lost, the same key asks again: answered again.
        let (code, body) = enroll(&replica.api, &tls, Some(TOKEN), "probe-1", &key).await;
        assert_eq!(code, 200, "a retry with the same key: {body}");
        // Another key for the enrolled name: refused.
        let (code, body) = enroll(&replica.api, &tls, Some(TOKEN), "probe-1", &other_key).await;
        assert_eq!(code, 409, "another key: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("already enrolled")
        );
    });
    let annotation = kubectl.run(&[
        "get",
        "node",
        "probe-1",
        "-o",
        "jsonpath={.metadata.annotations.flotilla\\.dev/enrolled-key-sha256}",
    ]);
    assert_eq!(annotation.stdout.trim().len(), 64, "{annotation:?}");

    // A device with nothing but its token.
    let node = "enrolled-1";
    let cert = dir.path().join("device.crt");
    let key_file = dir.path().join("device.key");
    let path = |p: &Path| p.display().to_string();
    let args = vec![
        "--hub".into(),
        replica.mqtt.clone(),
        "--api".into(),
        replica.api.clone(),
        "--hub-ca".into(),
        path(&ca_file),
        "--cert".into(),
        path(&cert),
        "--key".into(),
        path(&key_file),
        "--bootstrap-token-file".into(),
        path(&token_file),
        "--heartbeat-seconds".into(),
        "2".into(),
        "--disk-pressure-percent".into(),
        "0".into(),
    ];
    let mut agent = AgentProcess::start_linked(&registry.host(), node, args).expect("agent");
    let hub_log = replica.data_dir.with_extension("log");
    let logs = |agent: &AgentProcess| {
        format!(
            "agent log:\n{}\nhub log:\n{}",
            agent.log(),
            std::fs::read_to_string(&hub_log).unwrap_or_default()
        )
    };
    wait_until("the enrolled device Ready", &|| logs(&agent), || {
        ready(&kubectl, node).as_deref() == Some("True")
    });
    let first = certificate(&cert).expect("the device's certificate");
    assert_eq!(first.identity().unwrap().common_name, node);
    let mode = std::fs::metadata(&key_file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // Renewed at about two thirds of its 33 s, while connected.
    wait_until("a renewal while connected", &|| logs(&agent), || {
        certificate(&cert).is_some_and(|c| c.not_before() > first.not_before())
    });
    let renewed = certificate(&cert).unwrap();
    assert!(renewed.not_after() > first.not_after());
    assert_eq!(ready(&kubectl, node).as_deref(), Some("True"));

    // Off past its certificate's expiry, then back: it renews with the
    // expired certificate's key and reconnects.
    agent.kill9();
    let expired = certificate(&cert).unwrap().not_after();
    while SystemTime::now() < expired + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until("the dead device Unknown", &|| logs(&agent), || {
        ready(&kubectl, node).as_deref() == Some("Unknown")
    });
    agent.restart().expect("restart");
    wait_until(
        "the device back after its certificate expired",
        &|| logs(&agent),
        || ready(&kubectl, node).as_deref() == Some("True"),
    );
    assert!(certificate(&cert).unwrap().not_after() > expired);

    // Revoked: its live connection is closed, and it stays out.
    let now = flotilla_hub::api::time::format_time(SystemTime::now()).0;
    kubectl.apply(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\n\
             metadata: {{name: flotilla-revoked-devices, namespace: kube-system}}\n\
             data: {{{node}: \"{now}\", probe-1: \"{now}\"}}\n"
        ),
        &[],
    );
    // A revoked name cannot enroll again, not even with its enrolled key,
    // while its Node is there.
    runtime.block_on(async {
        let (code, body) = enroll(&replica.api, &tls, Some(TOKEN), "probe-1", &key).await;
        assert_eq!(code, 403, "a revoked name enrolled again: {body}");
    });
    wait_until("the revoked device cut off", &|| logs(&agent), || {
        ready(&kubectl, node).as_deref() == Some("Unknown")
    });
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        ready(&kubectl, node).as_deref(),
        Some("Unknown"),
        "a revoked device came back\n{}",
        logs(&agent)
    );
    let hub = std::fs::read_to_string(&hub_log).unwrap_or_default();
    assert!(hub.contains("the device was revoked"), "{}", logs(&agent));
    // Its renewal refused, it tried to enroll again: refused too while its
    // Node (from before the revocation) exists.
    assert!(agent.log().contains("delete its Node"), "{}", logs(&agent));

    // Re-admitted: the operator deletes its Node; it enrolls again with a
    // new key, its certificate issued after the revocation.
    let delete = kubectl.run(&["delete", "node", node]);
    assert!(delete.success, "{delete:?}");
    wait_until("the re-admitted device Ready", &|| logs(&agent), || {
        ready(&kubectl, node).as_deref() == Some("True")
    });
}
