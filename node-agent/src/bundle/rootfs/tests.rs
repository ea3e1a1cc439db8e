use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

/// An image rootfs with the kinds of entries an unpacked image has.
fn image(dir: &Path) -> PathBuf {
    let root = dir.join("image");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("etc/motd"), "hello\n").unwrap();
    fs::set_permissions(root.join("etc/motd"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(root.join("etc/motd"), Some(1234), Some(5678)).unwrap();
    fs::write(root.join("usr/bin/su"), "binary").unwrap();
    fs::set_permissions(root.join("usr/bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("../etc/motd", root.join("usr/motd")).unwrap();
    std::os::unix::fs::lchown(root.join("usr/motd"), Some(7), Some(8)).unwrap();
    fs::hard_link(root.join("etc/motd"), root.join("etc/motd.link")).unwrap();
    crate::sys::fs::mkfifo(&root.join("etc/pipe"), 0o600).unwrap();
    fs::set_permissions(root.join("etc"), fs::Permissions::from_mode(0o751)).unwrap();
    root
}

/// Releases the container dir on drop so a failing test leaves no mount.
struct Container(PathBuf);

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = release(&self.0) {
            eprintln!("release: {e}");
        }
    }
}

fn mounts_at(path: &Path) -> usize {
    mount::mounts_at(&fs::canonicalize(path).unwrap()).unwrap()
}

#[test]
fn an_overlay_rootfs_shows_the_image_and_writes_go_to_upper() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let ctr = Container(tmp.path().join("containers/c1"));
    assert_eq!(prepare(&image, &ctr.0).unwrap(), RootfsKind::Overlay);
    let rootfs = ctr.0.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("usr/motd")).unwrap(),
        "hello\n"
    );
    fs::write(rootfs.join("etc/motd"), "changed\n").unwrap();
    assert_eq!(
        fs::read_to_string(image.join("etc/motd")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        fs::read_to_string(ctr.0.join("upper/etc/motd")).unwrap(),
        "changed\n"
    );
    // After an agent restart the existing mount is kept, not stacked.
    assert_eq!(prepare(&image, &ctr.0).unwrap(), RootfsKind::Overlay);
    assert_eq!(mounts_at(&rootfs), 1);
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "changed\n"
    );
    release(&ctr.0).unwrap();
    assert!(!rootfs.exists() && !ctr.0.join("upper").exists() && !ctr.0.join("work").exists());
    assert_eq!(
        fs::read_to_string(image.join("etc/motd")).unwrap(),
        "hello\n"
    );
    release(&ctr.0).unwrap();
}

#[test]
fn a_busy_overlay_is_released_lazily() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let ctr = Container(tmp.path().join("c2"));
    prepare(&image, &ctr.0).unwrap();
    let open = fs::File::open(ctr.0.join("rootfs/etc/motd")).unwrap();
    release(&ctr.0).unwrap();
    assert!(!ctr.0.join("rootfs").exists());
    drop(open);
}

#[test]
fn a_copied_rootfs_keeps_modes_owners_symlinks_and_fifos() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let ctr = Container(tmp.path().join("c3"));
    assert_eq!(
        prepare_with(&image, &ctr.0, Strategy::Copy).unwrap(),
        RootfsKind::Copy
    );
    let rootfs = ctr.0.join("rootfs");
    assert_eq!(mounts_at(&rootfs), 0);
    let motd = fs::metadata(rootfs.join("etc/motd")).unwrap();
    assert_eq!(
        (motd.mode() & 0o7777, motd.uid(), motd.gid()),
        (0o640, 1234, 5678)
    );
    assert_eq!(
        fs::metadata(rootfs.join("usr/bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(rootfs.join("etc")).unwrap().mode() & 0o7777,
        0o751
    );
    let link = fs::symlink_metadata(rootfs.join("usr/motd")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!((link.uid(), link.gid()), (7, 8));
    assert_eq!(
        fs::read_link(rootfs.join("usr/motd")).unwrap(),
        Path::new("../etc/motd")
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/motd.link")).unwrap(),
        "hello\n"
    );
    assert!(
        fs::metadata(rootfs.join("etc/pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A completed copy is kept on the next prepare.
    fs::write(rootfs.join("written"), "by the container").unwrap();
    assert_eq!(prepare(&image, &ctr.0).unwrap(), RootfsKind::Copy);
    assert!(rootfs.join("written").exists());
    release(&ctr.0).unwrap();
    assert!(!rootfs.exists() && !ctr.0.join(COPY_MARKER).exists());
}

#[test]
fn a_partial_copy_from_a_crash_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let ctr = Container(tmp.path().join("c4"));
    fs::create_dir_all(ctr.0.join("rootfs/etc")).unwrap();
    fs::write(ctr.0.join("rootfs/half-written"), "x").unwrap();
    assert_eq!(
        prepare_with(&image, &ctr.0, Strategy::Copy).unwrap(),
        RootfsKind::Copy
    );
    assert!(!ctr.0.join("rootfs/half-written").exists());
    assert!(ctr.0.join("rootfs/etc/motd").exists());
}

#[test]
fn a_missing_image_rootfs_is_an_error_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let err = prepare(&tmp.path().join("nope"), &tmp.path().join("c5")).unwrap_err();
    assert!(matches!(err, RootfsError::NoImage { .. }));
    assert!(!tmp.path().join("c5").exists());
}

#[test]
fn when_overlayfs_refuses_the_container_dir_the_rootfs_is_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    // A container dir on an overlayfs: overlayfs refuses another overlay's
    // upper layer there, which is what prepare must survive.
    let outer = Container(tmp.path().join("outer"));
    prepare(&image, &outer.0).unwrap();
    let ctr = Container(outer.0.join("rootfs/containers/c6"));
    assert_eq!(prepare(&image, &ctr.0).unwrap(), RootfsKind::Copy);
    assert!(!ctr.0.join("upper").exists() && !ctr.0.join("work").exists());
    assert_eq!(
        fs::read_to_string(ctr.0.join("rootfs/etc/motd")).unwrap(),
        "hello\n"
    );
    release(&ctr.0).unwrap();
}
