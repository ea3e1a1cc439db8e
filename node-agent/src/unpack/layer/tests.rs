use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// A tar layer built in memory. Names are written raw (no validation), so
/// tests can build the hostile entries a real layer could contain.
struct Layer(tar::Builder<Vec<u8>>);

const MTIME: u64 = 1_700_000_000;

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn entry(mut self, name: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) -> Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, mode, "", data)
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(name, EntryType::Directory, mode, "", b"")
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Symlink, 0o777, "", b"")
            .relink(target)
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Link, 0o644, "", b"")
            .relink(target)
    }

    /// Rewrites the last entry's link name (kept out of `entry` for
    /// readability at call sites).
    fn relink(mut self, target: &str) -> Self {
        let bytes = self.0.get_mut();
        let start = bytes.len() - 512;
        let mut header = Header::from_byte_slice(&bytes[start..]).clone();
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        header.set_cksum();
        bytes[start..].copy_from_slice(header.as_bytes());
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A temp dir holding `rootfs/` (the target) and `outside/` (must stay
/// untouched by every layer).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), "host secret").unwrap();
        Fixture { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn apply(&self, layer: Layer) -> Result<LayerDigest, UnpackError> {
        apply_layer(&self.root(), &layer.bytes()[..], Compression::None)
    }

    fn outside_is_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(self.dir.path().join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["secret"]);
        assert_eq!(
            fs::read_to_string(self.dir.path().join("outside/secret")).unwrap(),
            "host secret"
        );
        let mut top: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(top, vec!["outside", "rootfs"]);
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn files_dirs_symlinks_hard_links_and_fifos_are_written_with_their_modes() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o711)
        .file("usr/bin/tool", 0o4755, b"#!/bin/sh\n")
        .file("etc/config", 0o640, b"key=value")
        .symlink("bin", "usr/bin")
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .entry("run/fifo", EntryType::Fifo, 0o620, "", b"");
    fx.apply(layer).unwrap();
    let root = fx.root();
    assert_eq!(fs::read(root.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(mode_of(&root.join("usr/bin/tool")), 0o4755, "setuid kept");
    assert_eq!(mode_of(&root.join("usr/bin")), 0o711);
    assert_eq!(fs::read(root.join("etc/config")).unwrap(), b"key=value");
    assert_eq!(mode_of(&root.join("etc/config")), 0o640);
    assert_eq!(
        mode_of(&root.join("etc")),
        0o755,
        "implicit parents are 0755"
    );
    assert_eq!(
        fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    let tool = fs::metadata(root.join("usr/bin/tool")).unwrap();
    let link = fs::metadata(root.join("usr/bin/tool-link")).unwrap();
    assert_eq!((tool.ino(), tool.nlink()), (link.ino(), 2));
    let fifo = fs::symlink_metadata(root.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
    assert_eq!(tool.mtime(), MTIME as i64);
}

#[test]
fn owners_from_the_layer_are_applied_when_running_as_root() {
    if crate::sys::fs::effective_uid() != 0 {
        return; // only root can give files away; non-root tolerance is by design
    }
    let fx = Fixture::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o2755);
    header.set_uid(1234);
    header.set_gid(5678);
    header.set_size(2);
    builder
        .append_data(&mut header, "owned", &b"hi"[..])
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    apply_layer(&fx.root(), &bytes[..], Compression::None).unwrap();
    let metadata = fs::metadata(fx.root().join("owned")).unwrap();
    assert_eq!((metadata.uid(), metadata.gid()), (1234, 5678));
    assert_eq!(
        metadata.mode() & 0o7777,
        0o2755,
        "setgid survives the chown"
    );
}

#[test]
fn directory_mtimes_are_set_after_their_children_are_written() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .dir("data/", 0o755)
        .file("data/a", 0o644, b"a")
        .file("data/b", 0o644, b"b");
    fx.apply(layer).unwrap();
    assert_eq!(
        fs::metadata(fx.root().join("data")).unwrap().mtime(),
        MTIME as i64
    );
}

#[test]
fn whiteouts_remove_a_lower_file_and_a_lower_directory() {
    let fx = Fixture::new();
    fx.apply(
        Layer::new()
            .file("etc/old.conf", 0o644, b"old")
            .file("etc/keep.conf", 0o644, b"keep")
            .file("var/cache/apt/pkg", 0o644, b"pkg")
            .symlink("var/link", "/etc"),
    )
    .unwrap();
    fx.apply(
        Layer::new()
            .file("etc/.wh.old.conf", 0o644, b"")
            .file("var/cache/.wh.apt", 0o644, b"")
            .file("var/.wh.link", 0o644, b"")
            .file(".wh.never-existed", 0o644, b""),
    )
    .unwrap();
    let root = fx.root();
    assert!(!root.join("etc/old.conf").exists());
    assert!(!root.join("var/cache/apt").exists());
    assert!(
        fs::symlink_metadata(root.join("var/link")).is_err(),
        "the symlink, not its target"
    );
    assert!(
        root.join("etc/keep.conf").exists(),
        "the symlink's target stays"
    );
    assert!(
        !root.join("etc/.wh.old.conf").exists(),
        "whiteout files are never written"
    );
    assert!(!root.join(".wh.never-existed").exists());
}

#[test]
fn a_whiteout_does_not_remove_an_entry_of_its_own_layer() {
    let fx = Fixture::new();
    fx.apply(Layer::new().file("a", 0o644, b"lower")).unwrap();
    fx.apply(
        Layer::new()
            .file("a", 0o644, b"same layer")
            .file(".wh.a", 0o644, b""),
    )
    .unwrap();
    assert_eq!(fs::read(fx.root().join("a")).unwrap(), b"same layer");
}

#[test]
fn an_opaque_directory_keeps_only_the_entries_of_its_own_layer() {
    let fx = Fixture::new();
    fx.apply(
        Layer::new()
            .file("app/lower.txt", 0o644, b"lower")
            .file("app/sub/lower.txt", 0o644, b"lower")
            .file("app/sub/deep/x", 0o644, b"lower")
            .file("other/stays", 0o644, b"lower"),
    )
    .unwrap();
    // The marker comes after same-layer entries, as tar order allows.
    fx.apply(
        Layer::new()
            .dir("app/", 0o755)
            .file("app/new.txt", 0o644, b"new")
            .dir("app/sub/", 0o755)
            .file("app/sub/new.txt", 0o644, b"new")
            .file("app/.wh..wh..opq", 0o644, b""),
    )
    .unwrap();
    let root = fx.root();
    let mut names: Vec<_> = fs::read_dir(root.join("app"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["new.txt", "sub"]);
    let mut names: Vec<_> = fs::read_dir(root.join("app/sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["new.txt"],
        "a same-layer directory keeps only same-layer children"
    );
    assert!(root.join("other/stays").exists());
    assert!(!root.join("app/.wh..wh..opq").exists());
}

#[test]
fn invalid_whiteouts_are_refused() {
    for name in ["dir/.wh..", "dir/.wh."] {
        let fx = Fixture::new();
        let err = fx.apply(Layer::new().file(name, 0o644, b"")).unwrap_err();
        assert!(
            matches!(&err, UnpackError::InvalidWhiteout { entry, .. } if entry == name),
            "{name}: {err}"
        );
    }
    let fx = Fixture::new();
    let err = fx
        .apply(Layer::new().file(".wh.x/child", 0o644, b""))
        .unwrap_err();
    assert!(matches!(err, UnpackError::InvalidWhiteout { .. }), "{err}");
}

#[test]
fn an_entry_climbing_above_the_root_is_refused_and_nothing_is_written_outside() {
    for name in [
        "../outside/passwd",
        "a/../../outside/x",
        "./../../etc/passwd",
    ] {
        let fx = Fixture::new();
        let err = fx
            .apply(Layer::new().file(name, 0o644, b"pwned"))
            .unwrap_err();
        match &err {
            UnpackError::Escape { entry, .. } => assert_eq!(entry, name),
            other => panic!("{name}: expected an escape, got {other}"),
        }
        assert!(err.to_string().contains("outside the rootfs"), "{err}");
        fx.outside_is_untouched();
    }
}

#[test]
fn names_with_harmless_dots_and_leading_slashes_stay_inside() {
    let fx = Fixture::new();
    fx.apply(
        Layer::new()
            .file("/abs/file", 0o644, b"1")
            .file("./a/b/../c", 0o644, b"2"),
    )
    .unwrap();
    assert_eq!(fs::read(fx.root().join("abs/file")).unwrap(), b"1");
    assert_eq!(fs::read(fx.root().join("a/c")).unwrap(), b"2");
}

#[test]
fn an_escaping_symlink_is_stored_but_writing_through_it_is_refused() {
    let fx = Fixture::new();
    // Storing it is fine: the runtime resolves it inside the rootfs.
    fx.apply(Layer::new().symlink("evil", "../../../../outside"))
        .unwrap();
    assert_eq!(
        fs::read_link(fx.root().join("evil")).unwrap(),
        Path::new("../../../../outside")
    );
    // Writing through it, in a later layer or the same one, is refused.
    for layer in [
        Layer::new().file("evil/file", 0o644, b"pwned"),
        Layer::new()
            .symlink("evil2", "../outside")
            .file("evil2/file", 0o644, b"pwned"),
        Layer::new()
            .dir("d/", 0o755)
            .symlink("d/up", "../..")
            .dir("d/up/outside/x/", 0o755),
    ] {
        let err = fx.apply(layer).unwrap_err();
        assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
        assert!(err.to_string().contains("climbs above the root"), "{err}");
        fx.outside_is_untouched();
    }
    let err = fx
        .apply(Layer::new().file("evil/file", 0o644, b""))
        .unwrap_err();
    assert!(
        err.to_string().contains("/evil -> ../../../../outside"),
        "names the symlink: {err}"
    );
}

#[test]
fn an_absolute_symlink_in_the_parent_path_resolves_inside_the_root() {
    let fx = Fixture::new();
    fx.apply(
        Layer::new()
            .dir("usr/lib/", 0o755)
            .symlink("lib", "/usr/lib")
            .symlink("var/run", "/run"),
    )
    .unwrap();
    fx.apply(
        Layer::new()
            .file("lib/x", 0o644, b"x")
            .file("var/run/pid", 0o644, b"1"),
    )
    .unwrap();
    assert_eq!(fs::read(fx.root().join("usr/lib/x")).unwrap(), b"x");
    assert_eq!(
        fs::read(fx.root().join("run/pid")).unwrap(),
        b"1",
        "missing target dirs are made"
    );
    assert_eq!(
        fs::read_link(fx.root().join("lib")).unwrap(),
        Path::new("/usr/lib")
    );
}

#[test]
fn a_hard_link_to_outside_the_root_is_refused() {
    for layer in [
        Layer::new().hardlink("link", "../outside/secret"),
        Layer::new()
            .symlink("up", "../outside")
            .hardlink("link", "up/secret"),
    ] {
        let fx = Fixture::new();
        let err = fx.apply(layer).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Escape { entry, .. } if entry == "link"),
            "{err}"
        );
        assert!(err.to_string().contains("hard link target"), "{err}");
        assert!(!fx.root().join("link").exists());
        assert_eq!(
            fs::metadata(fx.dir.path().join("outside/secret"))
                .unwrap()
                .nlink(),
            1
        );
    }
}

#[test]
fn a_hard_link_through_an_absolute_symlink_links_the_in_root_file() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .file("real/secret", 0o600, b"in root")
        .symlink("alias", "/real")
        .hardlink("link", "alias/secret");
    fx.apply(layer).unwrap();
    assert_eq!(fs::read(fx.root().join("link")).unwrap(), b"in root");
    fx.outside_is_untouched();
}

#[test]
fn device_nodes_are_refused_with_the_entry_name() {
    for kind in [EntryType::Char, EntryType::Block] {
        let fx = Fixture::new();
        let err = fx
            .apply(Layer::new().entry("dev/null", kind, 0o666, "", b""))
            .unwrap_err();
        assert!(
            matches!(&err, UnpackError::DeviceNode { entry } if entry == "dev/null"),
            "{err}"
        );
        assert!(err.to_string().contains("dev/null"));
        assert!(!fx.root().join("dev/null").exists());
    }
}

#[test]
fn a_layer_replaces_a_directory_with_a_file_and_a_file_with_a_directory() {
    let fx = Fixture::new();
    fx.apply(
        Layer::new()
            .file("was-dir/child", 0o644, b"c")
            .file("was-file", 0o644, b"f")
            .symlink("was-link", "../outside/secret")
            .symlink("was-link-dir", "../outside"),
    )
    .unwrap();
    fx.apply(
        Layer::new()
            .file("was-dir", 0o644, b"now a file")
            .dir("was-file/", 0o755)
            .file("was-file/child", 0o644, b"c")
            .file("was-link", 0o644, b"replaces the symlink, not its target")
            .dir("was-link-dir/", 0o755),
    )
    .unwrap();
    let root = fx.root();
    assert_eq!(fs::read(root.join("was-dir")).unwrap(), b"now a file");
    assert_eq!(fs::read(root.join("was-file/child")).unwrap(), b"c");
    assert!(
        fs::symlink_metadata(root.join("was-link"))
            .unwrap()
            .is_file()
    );
    assert!(
        fs::symlink_metadata(root.join("was-link-dir"))
            .unwrap()
            .is_dir()
    );
    fx.outside_is_untouched();
}

#[test]
fn long_names_in_pax_and_gnu_headers_are_unpacked() {
    let fx = Fixture::new();
    let long_dir = format!("{}/{}", "d".repeat(120), "e".repeat(120));
    let pax_name = format!("{long_dir}/pax-file");
    let gnu_name = format!("{long_dir}/gnu-file");
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("path", pax_name.as_bytes())])
        .unwrap();
    let mut header = Header::new_ustar();
    header.set_path("placeholder").unwrap();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(3);
    header.set_cksum();
    builder.append(&header, &b"pax"[..]).unwrap();
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(3);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    builder
        .append_data(&mut header, &gnu_name, &b"gnu"[..])
        .unwrap();
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Symlink);
    header.set_mode(0o777);
    header.set_size(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    builder
        .append_link(&mut header, "long-link", format!("/{pax_name}"))
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    apply_layer(&fx.root(), &bytes[..], Compression::None).unwrap();
    assert_eq!(fs::read(fx.root().join(&pax_name)).unwrap(), b"pax");
    assert_eq!(fs::read(fx.root().join(&gnu_name)).unwrap(), b"gnu");
    assert_eq!(
        fs::read_link(fx.root().join("long-link")).unwrap(),
        Path::new(&format!("/{pax_name}"))
    );
    assert!(!fx.root().join("placeholder").exists());
}

fn sample_layer() -> Vec<u8> {
    let mut bytes = Layer::new()
        .dir("etc/", 0o755)
        .file("etc/hostname", 0o644, b"flotilla")
        .file("big", 0o644, &vec![b'z'; 300_000])
        .bytes();
    // Record padding after the end-of-archive blocks, as GNU tar writes it:
    // part of the diff id.
    bytes.extend(vec![0u8; 8192]);
    bytes
}

#[test]
fn the_diff_id_is_the_sha256_of_the_whole_uncompressed_tar_for_every_compression() {
    let raw = sample_layer();
    let expected = crate::image::sha256_of(&raw).to_string();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&raw).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd =
        ruzstd::encoding::compress_to_vec(&raw[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (compression, blob) in [
        (Compression::None, raw.clone()),
        (Compression::Gzip, gzip),
        (Compression::Zstd, zstd),
    ] {
        let fx = Fixture::new();
        let diff_id = apply_layer(&fx.root(), &blob[..], compression).unwrap();
        assert_eq!(diff_id, expected, "{compression:?}");
        assert_eq!(
            fs::read(fx.root().join("etc/hostname")).unwrap(),
            b"flotilla"
        );
        assert_eq!(fs::metadata(fx.root().join("big")).unwrap().len(), 300_000);
    }
}

#[test]
fn a_gzip_layer_of_several_members_is_unpacked_whole() {
    let raw = sample_layer();
    let (first, second) = raw.split_at(1000);
    let mut blob = Vec::new();
    for part in [first, second] {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(part).unwrap();
        blob.extend(gzip.finish().unwrap());
    }
    let fx = Fixture::new();
    let diff_id = apply_layer(&fx.root(), &blob[..], Compression::Gzip).unwrap();
    assert_eq!(diff_id, crate::image::sha256_of(&raw).to_string());
    assert_eq!(fs::metadata(fx.root().join("big")).unwrap().len(), 300_000);
}

#[test]
fn a_truncated_layer_is_reported_as_corrupt() {
    let raw = sample_layer();
    let fx = Fixture::new();
    let err = apply_layer(&fx.root(), &raw[..200_000], Compression::None).unwrap_err();
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
    let fx = Fixture::new();
    let err = apply_layer(&fx.root(), &b"not gzip"[..], Compression::Gzip).unwrap_err();
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
}

#[test]
fn a_missing_rootfs_is_an_error() {
    let fx = Fixture::new();
    let missing = fx.dir.path().join("missing");
    let err = apply_layer(&missing, &sample_layer()[..], Compression::None).unwrap_err();
    assert!(
        matches!(&err, UnpackError::Io { path, .. } if *path == missing),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn file_capabilities_are_applied_and_other_xattrs_are_not() {
    if crate::sys::fs::effective_uid() != 0 {
        return; // setting security.capability needs CAP_SETFCAP
    }
    // vfs_cap_data revision 2 with CAP_NET_BIND_SERVICE (bit 10) permitted
    // and the effective flag.
    let mut capability = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 10, 0, 0, 0] {
        capability.extend(word.to_le_bytes());
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([
            ("SCHILY.xattr.security.capability", &capability[..]),
            ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
        ])
        .unwrap();
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(4);
    builder
        .append_data(&mut header, "usr/bin/ping", &b"\x7fELF"[..])
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    let fx = Fixture::new();
    apply_layer(&fx.root(), &bytes[..], Compression::None).unwrap();
    let file = File::open(fx.root().join("usr/bin/ping")).unwrap();
    let stored = crate::sys::fs::fgetxattr(&file, "security.capability").unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(&capability[..]),
        "set after the chown that clears it"
    );
    assert_eq!(
        crate::sys::fs::fgetxattr(&file, "trusted.overlay.opaque").unwrap(),
        None
    );
}
