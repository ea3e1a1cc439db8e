use super::*;

const RECORDS: &str = "\
2026-11-22T10:00:00.000000001Z stdout F first
2026-11-22T10:00:01.000000000Z stderr P sec
2026-11-22T10:00:01.500000000Z stderr F ond
2026-11-22T10:00:02.000000000Z stdout F third
";

fn request(uid: &str, container: &str) -> LogRequest {
    LogRequest {
        request_id: 7,
        pod_uid: uid.into(),
        container: container.into(),
        ..LogRequest::default()
    }
}

fn rendered(render: &mut Render, records: &str) -> String {
    let mut out = Vec::new();
    render.records(records.as_bytes(), &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn records_render_as_kubectl_shows_them() {
    assert_eq!(
        rendered(&mut Render::default(), RECORDS),
        "first\nsecond\nthird\n"
    );
    let mut stamped = Render {
        timestamps: true,
        ..Render::default()
    };
    assert_eq!(
        rendered(&mut stamped, RECORDS),
        "2026-11-22T10:00:00.000000001Z first\n\
         2026-11-22T10:00:01.000000000Z second\n\
         2026-11-22T10:00:02.000000000Z third\n"
    );
    // A line split across two reads stays one line.
    let mut split = Render::default();
    let (head, rest) = RECORDS.split_at(RECORDS.find("2026-11-22T10:00:01.5").unwrap());
    let text = rendered(&mut split, head) + &rendered(&mut split, rest);
    assert_eq!(text, "first\nsecond\nthird\n");
    // Garbage lines are skipped, not fatal.
    assert_eq!(
        rendered(
            &mut Render::default(),
            "garbage\n2026-11-22T10:00:00Z stdout F ok\n"
        ),
        "ok\n"
    );
}

#[test]
fn since_leaves_out_older_records() {
    let request = LogRequest {
        since_seconds: Some(1),
        ..LogRequest::default()
    };
    let now = OffsetDateTime::parse("2026-11-22T10:00:02.5Z", &Rfc3339).unwrap();
    let mut render = Render::new(&request, now);
    assert_eq!(rendered(&mut render, RECORDS), "ond\nthird\n");
}

#[test]
fn tail_keeps_the_last_lines() {
    let text = b"a\nb\nc\n";
    assert_eq!(tail(text, 2), b"b\nc\n");
    assert_eq!(tail(text, 3), text);
    assert_eq!(tail(text, 10), text);
    assert_eq!(tail(text, 0), b"");
    assert_eq!(tail(b"a\nb", 1), b"b");
}

#[test]
fn the_latest_run_is_located_with_its_rotated_files_first() {
    let dir = tempfile::tempdir().unwrap();
    let uid = "0f1e2d3c-aaaa-bbbb-cccc-000000000001";
    for run in ["main-0", "main-2", "main-10", "side-car-3"] {
        let shim = dir
            .path()
            .join("containers")
            .join(format!("{uid}-{run}"))
            .join("shim");
        std::fs::create_dir_all(&shim).unwrap();
        std::fs::write(shim.join("container.log"), "").unwrap();
    }
    let shim = dir
        .path()
        .join("containers")
        .join(format!("{uid}-main-10"))
        .join("shim");
    std::fs::write(shim.join("container.log.1"), "").unwrap();
    std::fs::write(shim.join("container.log.2"), "").unwrap();
    let located = locate(dir.path(), &request(uid, "main")).unwrap();
    assert_eq!(
        located.files,
        vec![
            shim.join("container.log.2"),
            shim.join("container.log.1"),
            shim.join("container.log"),
        ]
    );
    assert_eq!(located.shim_dir, Some(shim));
    // `side` is not `side-car`; nothing runs for it.
    let error = locate(dir.path(), &request(uid, "side")).unwrap_err();
    assert!(error.contains("waiting to start"), "{error}");
    // The previous run's log.
    let previous = LogRequest {
        previous: true,
        ..request(uid, "main")
    };
    assert!(
        locate(dir.path(), &previous)
            .unwrap_err()
            .contains("previous")
    );
    let logs = dir.path().join("pods").join(uid).join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("main.previous.log"), "").unwrap();
    let located = locate(dir.path(), &previous).unwrap();
    assert_eq!(located.files, vec![logs.join("main.previous.log")]);
    assert_eq!(located.shim_dir, None);
}

#[test]
fn a_followed_file_is_read_through_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.log");
    std::fs::write(
        &path,
        "2026-11-22T10:00:00Z stdout F one\n2026-11-22T10:00:00Z stdout F tw",
    )
    .unwrap();
    let mut follower = Follower {
        path: path.clone(),
        file: std::fs::File::open(&path).unwrap(),
        offset: 0,
    };
    let mut render = Render::default();
    let mut out = Vec::new();
    follower.read(&mut render, &mut out);
    assert_eq!(out, b"one\n");
    // The record completes, the file is rotated, a new one is started.
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut old, b"o\n").unwrap();
    std::fs::rename(&path, dir.path().join("container.log.1")).unwrap();
    std::fs::write(&path, "2026-11-22T10:00:01Z stdout F three\n").unwrap();
    out.clear();
    follower.read(&mut render, &mut out);
    assert_eq!(out, b"two\nthree\n");
}
