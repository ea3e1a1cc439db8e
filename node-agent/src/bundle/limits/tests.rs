use flotilla_shared::wire::{Capabilities as WireCaps, ResourceList};

use super::*;

fn plain_container() -> Container {
    Container {
        name: "app".into(),
        image: "registry.local/nginx:1.25".into(),
        ..Default::default()
    }
}

fn pod(container: Container) -> Pod {
    Pod {
        name: "web".into(),
        containers: vec![container],
        ..Default::default()
    }
}

#[test]
fn capabilities_add_and_drop_by_name_and_all() {
    let caps_of = |add: &[&str], drop: &[&str]| {
        let mut c = plain_container();
        c.security.capabilities = WireCaps {
            add: add.iter().map(|s| (*s).to_owned()).collect(),
            drop: drop.iter().map(|s| (*s).to_owned()).collect(),
        };
        capabilities(&c)
    };
    let caps = caps_of(&["NET_ADMIN", "cap_sys_time"], &["MKNOD", "NET_RAW"]).unwrap();
    assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::SysTime));
    assert!(!caps.contains(&Capability::Mknod) && !caps.contains(&Capability::NetRaw));
    assert!(caps.contains(&Capability::Chown));
    let only = caps_of(&["NET_BIND_SERVICE"], &["ALL"]).unwrap();
    assert_eq!(only, [Capability::NetBindService].into_iter().collect());
    let all_but = caps_of(&["ALL"], &["SYS_ADMIN"]).unwrap();
    assert_eq!(all_but.len(), ALL_CAPS.len() - 1);
    // A single drop beats a single add of the same capability.
    assert!(
        !caps_of(&["KILL"], &["KILL"])
            .unwrap()
            .contains(&Capability::Kill)
    );
    assert!(matches!(
        caps_of(&["NET_FLY"], &[]),
        Err(BundleError::UnknownCapability { .. })
    ));
}

#[test]
fn qos_class_sets_the_oom_score_as_kubelet_does() {
    let mut c = plain_container();
    assert_eq!(oom_score_adj(&pod(c.clone()), &c, 1 << 30), 1000);
    c.resources.limits = ResourceList {
        cpu_millis: Some(100),
        memory_bytes: Some(1 << 28),
        pids: None,
    };
    assert_eq!(qos_class(&pod(c.clone())), QosClass::Guaranteed);
    assert_eq!(oom_score_adj(&pod(c.clone()), &c, 1 << 30), -997);
    c.resources.limits.cpu_millis = None;
    c.resources.requests.memory_bytes = Some(1 << 28);
    assert_eq!(qos_class(&pod(c.clone())), QosClass::Burstable);
    assert_eq!(oom_score_adj(&pod(c.clone()), &c, 1 << 30), 750);
    c.resources.requests.memory_bytes = Some(1 << 31);
    assert_eq!(oom_score_adj(&pod(c.clone()), &c, 1 << 30), 2);
}

#[test]
fn cpu_shares_and_quota_have_kubelets_floors() {
    let mut c = plain_container();
    let res = resources(&c).unwrap();
    assert_eq!(res.cpu().as_ref().unwrap().shares(), Some(2));
    assert_eq!(res.cpu().as_ref().unwrap().quota(), None);
    c.resources.requests.cpu_millis = Some(1);
    c.resources.limits.cpu_millis = Some(5);
    let res = resources(&c).unwrap();
    assert_eq!(res.cpu().as_ref().unwrap().shares(), Some(2));
    assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(1000));
    c.resources.requests.cpu_millis = Some(1500);
    c.resources.limits.cpu_millis = Some(1500);
    let res = resources(&c).unwrap();
    assert_eq!(res.cpu().as_ref().unwrap().shares(), Some(1536));
    assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(150_000));
    c.resources.limits.memory_bytes = Some(u64::MAX);
    assert!(matches!(
        resources(&c),
        Err(BundleError::ResourceRange { .. })
    ));
}
