//! The API server's semantics at the HTTP level, against real replica
//! processes: paging, watch resumption, bookmarks and 410 Gone after
//! compaction, generateName, conflicts, dry runs, the status subresource,
//! deletion with finalizers, collections, size limits, metrics, the node
//! authorizer with a device certificate, and bootstrap tokens.

use std::time::Duration;

use flotilla_tests::api_client::ApiClient;
use flotilla_tests::hub::{Cluster, ClusterOptions};
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn one_replica(extra: &[&str]) -> Cluster {
    Cluster::start(
        1,
        ClusterOptions {
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            ..ClusterOptions::default()
        },
    )
}

async fn admin(cluster: &Cluster) -> ApiClient {
    let tls = ApiClient::admin_tls(&cluster.pki_dir()).unwrap();
    ApiClient::connect(&cluster.replicas[0].api, tls)
        .await
        .unwrap()
}

fn config_map(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_limit_and_continue_at_one_revision() {
    let cluster = one_replica(&[]);
    let mut api = admin(&cluster).await;
    for i in 0..25 {
        let answer = api
            .post(
                CONFIGMAPS,
                &config_map(&format!("cm-{i:02}"), json!({"page": "yes"})),
            )
            .await
            .unwrap();
        assert_eq!(answer.code, 201, "{:?}", answer.json());
    }
    let first = api
        .get(&format!("{CONFIGMAPS}?labelSelector=page%3Dyes&limit=10"))
        .await
        .unwrap()
        .json();
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    // A change after the first page does not show in the later ones.
    api.post(CONFIGMAPS, &config_map("cm-99", json!({"page": "yes"})))
        .await
        .unwrap();
    let second = api
        .get(&format!(
            "{CONFIGMAPS}?labelSelector=page%3Dyes&limit=10&continue={token}"
        ))
        .await
        .unwrap()
        .json();
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    let token = second["metadata"]["continue"].as_str().unwrap().to_owned();
    let third = api
        .get(&format!(
            "{CONFIGMAPS}?labelSelector=page%3Dyes&limit=10&continue={token}"
        ))
        .await
        .unwrap()
        .json();
    let names: Vec<&str> = [&first, &second, &third]
        .iter()
        .flat_map(|page| page["items"].as_array().unwrap())
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(names, expected);
    assert!(third["metadata"].get("continue").is_none());
    let bad = api
        .get(&format!("{CONFIGMAPS}?limit=10&continue=garbage"))
        .await
        .unwrap();
    assert_eq!(
        (bad.code, bad.json()["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let bad = api
        .get(&format!("{CONFIGMAPS}?labelSelector=a%20in%20("))
        .await
        .unwrap();
    assert_eq!(bad.code, 400);
    let bad = api
        .get(&format!("{CONFIGMAPS}?fieldSelector=spec.nodeName%3Dx"))
        .await
        .unwrap();
    assert_eq!(bad.code, 400, "configmaps cannot select on spec.nodeName");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_send_bookmarks_and_expire_after_compaction() {
    let cluster = one_replica(&[
        "--watch-bookmark-interval-s",
        "1",
        "--compaction-interval-s",
        "1",
    ]);
    let mut api = admin(&cluster).await;
    let created = api
        .post(CONFIGMAPS, &config_map("w", json!({})))
        .await
        .unwrap()
        .json();
    let mut changed = created.clone();
    changed["data"]["k"] = json!("v2");
    let updated = api
        .put(&format!("{CONFIGMAPS}/w"), &changed)
        .await
        .unwrap()
        .json();

    let tls = ApiClient::admin_tls(&cluster.pki_dir()).unwrap();
    let watcher = ApiClient::connect(&cluster.replicas[0].api, tls.clone())
        .await
        .unwrap();
    let mut watch = watcher
        .watch(&format!(
            "{CONFIGMAPS}?watch=1&resourceVersion={}&allowWatchBookmarks=true",
            rv(&created)
        ))
        .await
        .unwrap();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(rv(&event["object"]), rv(&updated));
    let bookmark = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert!(
        rv(&bookmark["object"]).parse::<u64>().unwrap() >= rv(&updated).parse::<u64>().unwrap()
    );

    // Once compaction has passed the first revision, a watch from it gets 410.
    let mut expired = None;
    for _ in 0..100 {
        api.post(
            CONFIGMAPS,
            &config_map(&format!("tick-{}", rand_suffix()), json!({})),
        )
        .await
        .unwrap();
        let client = ApiClient::connect(&cluster.replicas[0].api, tls.clone())
            .await
            .unwrap();
        let mut watch = client
            .watch(&format!(
                "{CONFIGMAPS}?watch=1&resourceVersion={}&timeoutSeconds=1",
                rv(&created)
            ))
            .await
            .unwrap();
        if let Ok(Some(event)) = watch.next().await
            && event["type"] == "ERROR"
        {
            expired = Some(event);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expired = expired.expect("the watch from the first revision expired");
    assert_eq!(expired["object"]["code"], 410, "{expired}");
    assert_eq!(expired["object"]["reason"], "Expired");
    let list = api
        .get(&format!(
            "{CONFIGMAPS}?resourceVersion={}&resourceVersionMatch=Exact",
            rv(&created)
        ))
        .await
        .unwrap();
    assert_eq!(list.code, 410);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_generate_names_updates_conflict_and_dry_runs_store_nothing() {
    let cluster = one_replica(&[]);
    let mut api = admin(&cluster).await;
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "web-"}});
    let created = api.post(CONFIGMAPS, &body).await.unwrap();
    assert_eq!(created.code, 201);
    let name = created.json()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    assert!(
        !created.json()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(created.json()["metadata"]["creationTimestamp"].is_string());

    let mut stale = created.json();
    stale["data"] = json!({"a": "1"});
    assert_eq!(
        api.put(&format!("{CONFIGMAPS}/{name}"), &stale)
            .await
            .unwrap()
            .code,
        200
    );
    stale["data"] = json!({"a": "2"});
    let conflict = api
        .put(&format!("{CONFIGMAPS}/{name}"), &stale)
        .await
        .unwrap();
    assert_eq!(
        (conflict.code, conflict.json()["reason"].as_str()),
        (409, Some("Conflict"))
    );
    let again = api
        .post(CONFIGMAPS, &config_map(&name, json!({})))
        .await
        .unwrap();
    assert_eq!(
        (again.code, again.json()["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );

    let dry = api
        .post(
            &format!("{CONFIGMAPS}?dryRun=All"),
            &config_map("dry", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(dry.code, 201);
    assert_eq!(
        api.get(&format!("{CONFIGMAPS}/dry")).await.unwrap().code,
        404
    );
    let wrong_ns = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}});
    assert_eq!(api.post(CONFIGMAPS, &wrong_ns).await.unwrap().code, 400);
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    assert_eq!(api.post(CONFIGMAPS, &wrong_kind).await.unwrap().code, 400);
    let huge = config_map("huge", json!({}));
    let mut huge_body = huge.clone();
    huge_body["data"]["k"] = json!("x".repeat(4 * 1024 * 1024));
    // The server answers 413 as soon as it sees the size and closes the
    // connection; a client still sending may see the close first.
    let tls = ApiClient::admin_tls(&cluster.pki_dir()).unwrap();
    let mut sender = ApiClient::connect(&cluster.replicas[0].api, tls)
        .await
        .unwrap();
    if let Ok(answer) = sender.post(CONFIGMAPS, &huge_body).await {
        assert_eq!(answer.code, 413);
    }
    assert_eq!(
        api.get(&format!("{CONFIGMAPS}/huge")).await.unwrap().code,
        404
    );
    let unknown = api.get("/api/v1/namespaces/default/widgets").await.unwrap();
    assert_eq!(unknown.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_main_updates_each_change_only_their_part() {
    let cluster = one_replica(&[]);
    let mut api = admin(&cluster).await;
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 7},
    });
    let created = api.post(deployments, &deployment).await.unwrap().json();
    assert_eq!(
        created["status"].get("replicas"),
        None,
        "status is not taken on create: {created}"
    );
    assert_eq!(created["metadata"]["generation"], 1);

    let mut status = created.clone();
    status["spec"]["replicas"] = json!(9);
    status["status"] = json!({"replicas": 3, "observedGeneration": 1});
    let after = api
        .put(&format!("{deployments}/d/status"), &status)
        .await
        .unwrap()
        .json();
    assert_eq!(
        (
            after["spec"]["replicas"].as_i64(),
            after["status"]["replicas"].as_i64()
        ),
        (Some(1), Some(3))
    );
    assert_eq!(after["metadata"]["generation"], 1);

    let mut main = after.clone();
    main["spec"]["replicas"] = json!(4);
    main["status"] = json!({"replicas": 100});
    let after = api
        .put(&format!("{deployments}/d"), &main)
        .await
        .unwrap()
        .json();
    assert_eq!(
        (
            after["spec"]["replicas"].as_i64(),
            after["status"]["replicas"].as_i64()
        ),
        (Some(4), Some(3))
    );
    assert_eq!(after["metadata"]["generation"], 2);

    // An immutable field: the selector.
    let refused = api
        .call("PATCH", &format!("{deployments}/d"), "application/merge-patch+json",
              br#"{"spec":{"selector":{"matchLabels":{"a":"c"}},"template":{"metadata":{"labels":{"a":"c"}}}}}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(refused.code, 422, "{:?}", refused.json());
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable"),
        "{:?}",
        refused.json()
    );
    let scale = api
        .get(&format!("{deployments}/d/scale"))
        .await
        .unwrap()
        .json();
    assert_eq!(
        (
            scale["kind"].as_str(),
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["selector"].as_str()
        ),
        (Some("Scale"), Some(4), Some("a=b"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletions_and_collections_delete_by_selector() {
    let cluster = one_replica(&[]);
    let mut api = admin(&cluster).await;
    for (name, labels) in [
        ("a", json!({"set": "x"})),
        ("b", json!({"set": "x"})),
        ("c", json!({"set": "x"})),
        ("d", json!({})),
    ] {
        assert_eq!(
            api.post(CONFIGMAPS, &config_map(name, labels))
                .await
                .unwrap()
                .code,
            201
        );
    }
    let deleted = api
        .delete(&format!("{CONFIGMAPS}?labelSelector=set%3Dx"))
        .await
        .unwrap();
    assert_eq!(deleted.code, 200);
    assert_eq!(deleted.json()["items"].as_array().unwrap().len(), 3);
    let left = api.get(CONFIGMAPS).await.unwrap().json();
    let names: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d"]);

    let mut held = config_map("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    assert_eq!(api.post(CONFIGMAPS, &held).await.unwrap().code, 201);
    let marked = api
        .delete(&format!("{CONFIGMAPS}/held"))
        .await
        .unwrap()
        .json();
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let still = api.get(&format!("{CONFIGMAPS}/held")).await.unwrap();
    assert_eq!(still.code, 200);
    let released = api
        .merge_patch(
            &format!("{CONFIGMAPS}/held"),
            &json!({"metadata": {"finalizers": null}}),
        )
        .await
        .unwrap();
    assert_eq!(released.code, 200, "{:?}", released.json());
    assert_eq!(
        api.get(&format!("{CONFIGMAPS}/held")).await.unwrap().code,
        404
    );

    let orphaning = api
        .call(
            "DELETE",
            &format!("{CONFIGMAPS}/d"),
            "application/json",
            br#"{"propagationPolicy":"Orphan"}"#.to_vec(),
        )
        .await
        .unwrap()
        .json();
    assert_eq!(orphaning["metadata"]["finalizers"], json!(["orphan"]));
    let metrics = api.get("/metrics").await.unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains(r#"apiserver_request_total{verb="POST",group="",resource="configmaps",subresource="",code="201"} 5"#), "{text}");
    assert!(text.contains("apiserver_request_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_identity_reaches_only_its_own_node_pods_and_their_secrets() {
    let cluster = one_replica(&[]);
    let mut api = admin(&cluster).await;
    for (pod, node, secret) in [("p1", "gw-1", "s1"), ("p2", "gw-2", "s2")] {
        let secret_body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "stringData": {"k": "v"}});
        assert_eq!(
            api.post("/api/v1/namespaces/default/secrets", &secret_body)
                .await
                .unwrap()
                .code,
            201
        );
        let pod_body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "i", "envFrom": [{"secretRef": {"name": secret}}]}]}});
        let answer = api
            .post("/api/v1/namespaces/default/pods", &pod_body)
            .await
            .unwrap();
        assert_eq!(answer.code, 201, "{:?}", answer.json());
    }
    let tls =
        ApiClient::issued_tls(&cluster.pki_dir(), "system:node:gw-1", &["system:nodes"]).unwrap();
    let mut device = ApiClient::connect(&cluster.replicas[0].api, tls)
        .await
        .unwrap();
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    assert_eq!(
        device
            .post("/api/v1/nodes", &node("gw-1"))
            .await
            .unwrap()
            .code,
        201
    );
    let other = device.post("/api/v1/nodes", &node("gw-2")).await.unwrap();
    assert_eq!(other.code, 403, "{:?}", other.json());
    // The authorizer's graph follows the store; give it a moment.
    let mut own_secret = 0;
    for _ in 0..50 {
        own_secret = device
            .get("/api/v1/namespaces/default/secrets/s1")
            .await
            .unwrap()
            .code;
        if own_secret == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(own_secret, 200);
    assert_eq!(
        device
            .get("/api/v1/namespaces/default/secrets/s2")
            .await
            .unwrap()
            .code,
        403
    );
    assert_eq!(
        device
            .get("/api/v1/namespaces/default/pods/p1")
            .await
            .unwrap()
            .code,
        200
    );
    assert_eq!(
        device
            .get("/api/v1/namespaces/default/pods/p2")
            .await
            .unwrap()
            .code,
        403
    );
    let own = device
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dgw-1")
        .await
        .unwrap();
    assert_eq!(own.code, 200);
    assert_eq!(own.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(device.get("/api/v1/pods").await.unwrap().code, 403);
    let denied = device
        .get("/api/v1/namespaces/default/configmaps")
        .await
        .unwrap()
        .json();
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains(r#"User "system:node:gw-1""#),
        "{denied}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_tokens_authenticate_as_bootstrappers_only() {
    let cluster = one_replica(&[]);
    let mut api = admin(&cluster).await;
    let token_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"}});
    let answer = api
        .post("/api/v1/namespaces/kube-system/secrets", &token_secret)
        .await
        .unwrap();
    assert_eq!(answer.code, 201, "{:?}", answer.json());
    let tls = ApiClient::ca_only_tls(&cluster.pki_dir()).unwrap();
    let mut bootstrap = ApiClient::connect(&cluster.replicas[0].api, tls.clone())
        .await
        .unwrap()
        .with_bearer("abcdef.0123456789abcdef");
    assert_eq!(
        bootstrap.get("/api").await.unwrap().code,
        200,
        "discovery is open to authenticated users"
    );
    let denied = bootstrap
        .get("/api/v1/namespaces/default/pods")
        .await
        .unwrap();
    assert_eq!(denied.code, 403);
    assert!(
        denied.json()["message"]
            .as_str()
            .unwrap()
            .contains("system:bootstrap:abcdef")
    );
    let mut wrong = ApiClient::connect(&cluster.replicas[0].api, tls.clone())
        .await
        .unwrap()
        .with_bearer("abcdef.0123456789abcdeX");
    assert_eq!(wrong.get("/api").await.unwrap().code, 401);
    let mut anonymous = ApiClient::connect(&cluster.replicas[0].api, tls)
        .await
        .unwrap();
    assert_eq!(anonymous.get("/api").await.unwrap().code, 401);
}
