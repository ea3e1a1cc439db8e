//! The platform an image must be built for, and the choice of a manifest
//! from a multi-platform image index.
//!
//! Matching follows containerd's rules for the architectures Flotilla runs on:
//! an arm64 device takes `arm64` with variant `v8` or none; a 32-bit ARM (v7)
//! device prefers `arm/v7`, then `arm` without a variant, then the older
//! `v6` and `v5` builds it can also run; an amd64 device takes `amd64` with no
//! variant or `v1`.

use std::fmt;

use oci_spec::image::Descriptor;

/// An OS, CPU architecture and variant, spelled as OCI image indexes do
/// (`linux`, `arm64`/`arm`/`amd64`, `v8`/`v7`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// A platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform this agent binary was built for: what images it can run.
    pub fn of_this_device() -> Self {
        Self::for_rust_target(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// The platform for a Rust `target_os` and `target_arch` (32-bit ARM is
    /// taken to be ARMv7, the oldest ARM Flotilla builds for).
    pub fn for_rust_target(os: &str, arch: &str) -> Self {
        match arch {
            "aarch64" => Self::new(os, "arm64", Some("v8")),
            "arm" => Self::new(os, "arm", Some("v7")),
            "x86_64" => Self::new(os, "amd64", None),
            "x86" => Self::new(os, "386", None),
            other => Self::new(os, other, None),
        }
    }

    /// The variants this platform runs, best first; `None` stands for an
    /// entry that names no variant.
    fn accepted_variants(&self) -> Vec<Option<&str>> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None | Some("v8")) => vec![Some("v8"), None],
            ("arm", Some("v7")) => vec![Some("v7"), None, Some("v6"), Some("v5")],
            ("arm", Some("v6")) => vec![Some("v6"), None, Some("v5")],
            ("arm", None) => vec![None],
            ("amd64", None | Some("v1")) => vec![None, Some("v1")],
            (_, wanted) => vec![wanted],
        }
    }

    /// How well an image built for `os`/`architecture`/`variant` suits this
    /// platform: `Some(rank)` (0 is best) if it can run here, `None` if not.
    pub fn rank(&self, os: &str, architecture: &str, variant: Option<&str>) -> Option<usize> {
        if os != self.os || architecture != self.architecture {
            return None;
        }
        let variant = variant.filter(|v| !v.is_empty());
        self.accepted_variants().iter().position(|v| *v == variant)
    }

    /// Picks the best entry of an image index for this platform; entries
    /// without a platform (attestations, for one) are never picked.
    pub fn select<'a>(&self, entries: &'a [Descriptor]) -> Option<&'a Descriptor> {
        entries
            .iter()
            .filter_map(|entry| {
                let p = entry.platform().as_ref()?;
                let rank = self.rank(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )?;
                Some((rank, entry))
            })
            // The first entry wins among equally good ones, as in containerd.
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, entry)| entry)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// `os/arch[/variant]` of an index entry, for error messages.
pub(crate) fn describe(entry: &Descriptor) -> String {
    match entry.platform() {
        Some(p) => {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Digest, MediaType, PlatformBuilder};

    fn entry(n: u8, os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        let mut platform = PlatformBuilder::default().os(os).architecture(arch);
        if let Some(v) = variant {
            platform = platform.variant(v);
        }
        let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            100,
            digest.parse::<Digest>().unwrap(),
        );
        d.set_platform(Some(platform.build().unwrap()));
        d
    }

    fn picked(want: &Platform, entries: &[Descriptor]) -> Option<u8> {
        let chosen = want.select(entries)?;
        let index = entries.iter().position(|e| e == chosen).unwrap();
        Some(index as u8)
    }

    #[test]
    fn rust_targets_map_to_oci_platforms() {
        let table = [
            ("aarch64", "linux/arm64/v8"),
            ("arm", "linux/arm/v7"),
            ("x86_64", "linux/amd64"),
        ];
        for (arch, want) in table {
            assert_eq!(Platform::for_rust_target("linux", arch).to_string(), want);
        }
        assert_eq!(
            Platform::of_this_device(),
            Platform::for_rust_target("linux", std::env::consts::ARCH)
        );
    }

    #[test]
    fn index_entries_are_chosen_by_architecture_and_variant() {
        let arm64 = Platform::new("linux", "arm64", Some("v8"));
        let armv7 = Platform::new("linux", "arm", Some("v7"));
        let amd64 = Platform::new("linux", "amd64", None);
        let full = [
            entry(0, "linux", "amd64", None),
            entry(1, "linux", "arm", Some("v6")),
            entry(2, "linux", "arm", Some("v7")),
            entry(3, "linux", "arm64", Some("v8")),
        ];
        let no_variants = [
            entry(0, "linux", "arm", None),
            entry(1, "linux", "arm64", None),
        ];
        let only_v6 = [
            entry(0, "linux", "arm", Some("v6")),
            entry(1, "linux", "arm", None),
        ];
        let wrong_os = [
            entry(0, "windows", "amd64", None),
            entry(1, "unknown", "unknown", None),
        ];
        let table: [(&Platform, &[Descriptor], Option<u8>); 10] = [
            (&arm64, &full, Some(3)),
            (&armv7, &full, Some(2)),
            (&amd64, &full, Some(0)),
            (&arm64, &no_variants, Some(1)),
            (&armv7, &no_variants, Some(0)),
            (&amd64, &no_variants, None),
            // A v7 device takes an unnamed arm variant over a v6 build.
            (&armv7, &only_v6, Some(1)),
            (&arm64, &only_v6, None),
            (&amd64, &wrong_os, None),
            (&armv7, &[], None),
        ];
        for (i, (want, entries, expected)) in table.into_iter().enumerate() {
            assert_eq!(picked(want, entries), expected, "row {i}: {want}");
        }
    }

    #[test]
    fn an_arm64_device_refuses_arm_v8_and_armv7_refuses_arm64() {
        let arm64 = Platform::new("linux", "arm64", Some("v8"));
        let armv7 = Platform::new("linux", "arm", Some("v7"));
        assert_eq!(arm64.rank("linux", "arm", Some("v8")), None);
        assert_eq!(armv7.rank("linux", "arm64", None), None);
        assert_eq!(armv7.rank("linux", "arm", Some("v8")), None);
        assert_eq!(arm64.rank("linux", "arm64", Some("")), Some(1));
    }

    #[test]
    fn entries_without_a_platform_are_never_picked() {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let d = Descriptor::new(MediaType::ImageManifest, 1, digest);
        assert!(Platform::of_this_device().select(&[d]).is_none());
    }
}
