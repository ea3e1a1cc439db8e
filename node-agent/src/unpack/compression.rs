//! Layer compression: which one a media type names, and a reader that undoes
//! it.
//!
//! gzip goes through `flate2`'s `MultiGzDecoder`, since pigz-style layers
//! have several members. zstd goes through `ruzstd`, one frame at a time:
//! `zstd:chunked` and `estargz`-like layers have several frames and skippable
//! frames, which `ruzstd`'s `StreamingDecoder` does not handle on its own. A
//! frame that asks for a window above [`ZSTD_MAX_WINDOW`] is refused, so a
//! hostile layer cannot make a small device allocate hundreds of MiB.

use std::io::{self, BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use ruzstd::decoding::FrameDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};

use super::UnpackError;

/// The largest zstd window accepted: 32 MiB (`zstd -19` uses 8 MiB; only
/// `--long` goes beyond).
pub const ZSTD_MAX_WINDOW: u64 = 32 << 20;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer's media type names. Accepted are the OCI layer
    /// types (plain, `+gzip`, `+zstd`, and their `nondistributable` twins,
    /// which hold the same formats) and Docker's `rootfs.diff.tar.gzip`
    /// (and its `foreign` and uncompressed variants). Anything else, such as
    /// an artifact or a Helm chart, is refused.
    pub fn from_media_type(media_type: &str) -> Result<Self, UnpackError> {
        let compression = match media_type.trim().to_ascii_lowercase().as_str() {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            _ => {
                return Err(UnpackError::UnsupportedMediaType {
                    media_type: media_type.to_string(),
                });
            }
        };
        Ok(compression)
    }

    /// Wraps `compressed` in a reader that yields the uncompressed bytes.
    pub fn decoder<R: Read>(self, compressed: R) -> Decoder<R> {
        match self {
            Compression::None => Decoder::None(compressed),
            Compression::Gzip => Decoder::Gzip(MultiGzDecoder::new(compressed)),
            Compression::Zstd => Decoder::Zstd(Box::new(ZstdFrames::new(compressed))),
        }
    }
}

/// The uncompressed bytes of a layer, from [`Compression::decoder`].
#[derive(Debug)]
pub enum Decoder<R: Read> {
    None(R),
    Gzip(MultiGzDecoder<R>),
    /// Boxed: the frame decoder's state is large.
    Zstd(Box<ZstdFrames<R>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::None(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Decodes every frame of a zstd stream in turn, skipping skippable frames
/// and checking each frame's content checksum when it has one.
pub struct ZstdFrames<R: Read> {
    source: BufReader<R>,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: Read> std::fmt::Debug for ZstdFrames<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdFrames")
            .field("in_frame", &self.in_frame)
            .finish()
    }
}

impl<R: Read> ZstdFrames<R> {
    fn new(source: R) -> Self {
        let mut decoder = FrameDecoder::new();
        decoder.set_max_window_size(ZSTD_MAX_WINDOW);
        ZstdFrames {
            source: BufReader::new(source),
            decoder,
            in_frame: false,
        }
    }

    /// Starts the next frame. Returns false at the clean end of the stream
    /// (end of input between frames).
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.init(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped != u64::from(length) {
                        return Err(invalid("zstd skippable frame is truncated"));
                    }
                }
                Err(err) => return Err(invalid(err)),
            }
        }
    }

    /// Fails if the frame just finished carries a checksum that does not
    /// match its content.
    fn check_frame_checksum(&self) -> io::Result<()> {
        match (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            (Some(stored), Some(calculated)) if stored != calculated => Err(invalid(format!(
                "zstd frame checksum mismatch: stored {stored:08x}, content {calculated:08x}"
            ))),
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.start_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(
                        &mut self.source,
                        ruzstd::decoding::BlockDecodingStrategy::UptoBlocks(1),
                    )
                    .map_err(invalid)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                self.check_frame_checksum()?;
                self.in_frame = false;
            }
        }
    }
}

fn invalid(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};
    use std::io::Write;

    fn decode(compression: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        compression.decoder(data).read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A skippable frame (magic 0x184D2A5?) holding `payload`.
    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut frame = 0x184D_2A53u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn media_types_map_to_their_compression() {
        let table = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "Application/VND.oci.image.layer.v1.tar+GZIP",
                Compression::Gzip,
            ),
        ];
        for (media_type, expected) in table {
            assert_eq!(
                Compression::from_media_type(media_type).unwrap(),
                expected,
                "{media_type}"
            );
        }
    }

    #[test]
    fn unknown_media_types_are_refused_with_their_name() {
        for media_type in [
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "",
        ] {
            let err = Compression::from_media_type(media_type).unwrap_err();
            assert!(
                matches!(&err, UnpackError::UnsupportedMediaType { media_type: m } if m == media_type)
            );
            assert!(err.to_string().contains(media_type), "{err}");
        }
    }

    #[test]
    fn gzip_with_several_members_decodes_all_of_them() {
        let mut data = gzip(b"first member, ");
        data.extend(gzip(b"second member"));
        assert_eq!(
            decode(Compression::Gzip, &data).unwrap(),
            b"first member, second member"
        );
    }

    #[test]
    fn zstd_with_several_frames_and_skippable_frames_decodes_all_frames() {
        let first = vec![b'a'; 100_000];
        let second = b"the second frame".to_vec();
        let mut data = skippable(b"zstd:chunked manifest");
        data.extend(compress_to_vec(&first[..], CompressionLevel::Fastest));
        data.extend(skippable(b""));
        data.extend(compress_to_vec(&second[..], CompressionLevel::Uncompressed));
        data.extend(skippable(b"trailing"));
        let mut expected = first;
        expected.extend(second);
        assert_eq!(decode(Compression::Zstd, &data).unwrap(), expected);
    }

    #[test]
    fn zstd_truncated_inside_a_frame_is_an_error() {
        let data = compress_to_vec(&vec![7u8; 50_000][..], CompressionLevel::Fastest);
        let err = decode(Compression::Zstd, &data[..data.len() - 3]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ),
            "{err:?}"
        );
        let mut short_skip = skippable(b"0123456789");
        short_skip.truncate(12);
        assert!(decode(Compression::Zstd, &short_skip).is_err());
    }

    #[test]
    fn zstd_frames_asking_for_a_huge_window_are_refused() {
        // Frame header: magic, descriptor 0x00 (no single-segment flag, no
        // checksum, no dictionary, no content size), window descriptor
        // 0x88 = exponent 17 -> 2^(10+17) = 128 MiB.
        let data = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x88, 0x01, 0x00, 0x00];
        let err = decode(Compression::Zstd, &data).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().to_lowercase().contains("window"), "{err}");
    }

    #[test]
    fn garbage_is_not_mistaken_for_zstd() {
        assert!(decode(Compression::Zstd, b"this is not zstd at all").is_err());
    }
}
