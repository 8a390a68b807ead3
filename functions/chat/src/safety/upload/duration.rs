//! How long an audio file plays, measured by what it holds: transcription is charged by the second
//! (`audio_seconds`), so a file must not pass for shorter than it is.
//!
//! MP3, Ogg (Opus, Vorbis, FLAC), FLAC, WebM/Matroska and M4A/MP4 are demuxed (no decoding) with
//! symphonia's reader for the kind the upload check detected, and the durations of all the audio
//! track's packets are added up. A packet's duration comes from its content (an MP3 frame's
//! samples, an Opus packet's TOC, a FLAC frame header, an MP4 sample table entry), not from the
//! header fields that state a total (an MP3 Xing/Info frame count, an Ogg page's granule position,
//! a Matroska `Duration`, an MP4 `mdhd` duration), so a file that lies in one of those is measured
//! by its packets. Matroska blocks carry no duration of their own: an Opus block is measured by its
//! TOC (RFC 6716 §3.1), and WebM of any other codec is refused.
//!
//! WAV is measured by hand: every byte after the `data` chunk header is audio at the `fmt `
//! chunk's sample rate and block size (PCM, float, A-law, µ-law), whatever the data size says
//! (a streamed recording says 0 or `0xFFFFFFFF`; a lying one says less than it holds, and lenient
//! decoders play on to the end). Its stated byte rate is not used (decoders ignore it).
//!
//! A file whose packets cannot be read to the end is refused: its length cannot be told.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::units::TimeBase;
use symphonia::default::formats::{FlacReader, IsoMp4Reader, MkvReader, MpaReader, OggReader};

use super::kind::Kind;

/// Why a file's duration could not be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("the audio's duration cannot be told from the file ({0})")]
    Unreadable(String),
    #[error("the file holds no audio track")]
    NoAudio,
    #[error("the file is not audio")]
    NotAudio,
}

/// Measured length of one audio file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLength {
    duration: Duration,
}

impl AudioLength {
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Whole seconds, rounded to the nearest, at least 1: what the `audio_seconds` limit charges.
    /// (Packets include the encoder's priming and padding, up to ~0.1 s: rounding up would charge a
    /// 3 s recording 4.)
    pub fn charged_seconds(&self) -> u32 {
        let secs = self.duration.as_secs() + u64::from(self.duration.subsec_millis() >= 500);
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }
}

/// The duration of `bytes`, a file already detected as `kind` by its magic number.
pub fn measure(kind: Kind, bytes: &Bytes) -> Result<AudioLength, DurationError> {
    let secs = match kind {
        Kind::Wav => wav_seconds(bytes)?,
        _ => packet_seconds(kind, bytes)?,
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(DurationError::Unreadable("an impossible duration".into()));
    }
    Ok(AudioLength { duration: Duration::from_secs_f64(secs) })
}

fn reader(kind: Kind, bytes: &Bytes) -> Result<Box<dyn FormatReader>, SymphoniaError> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.clone())), MediaSourceStreamOptions::default());
    // Gapless trimming off: durations are the packets' own, not what a header says to trim.
    let opts = FormatOptions { enable_gapless: false, ..FormatOptions::default() };
    Ok(match kind {
        Kind::Mp3 => Box::new(MpaReader::try_new(source, &opts)?),
        Kind::Ogg => Box::new(OggReader::try_new(source, &opts)?),
        Kind::Flac => Box::new(FlacReader::try_new(source, &opts)?),
        Kind::Webm => Box::new(MkvReader::try_new(source, &opts)?),
        Kind::Mp4 => Box::new(IsoMp4Reader::try_new(source, &opts)?),
        _ => return Err(SymphoniaError::Unsupported("not an audio kind")),
    })
}

/// Seconds of the first audio track, the sum of its packets' durations.
fn packet_seconds(kind: Kind, bytes: &Bytes) -> Result<f64, DurationError> {
    if !matches!(kind, Kind::Mp3 | Kind::Ogg | Kind::Flac | Kind::Webm | Kind::Mp4) {
        return Err(DurationError::NotAudio);
    }
    let unreadable = |e: SymphoniaError| DurationError::Unreadable(e.to_string());
    let mut reader = reader(kind, bytes).map_err(unreadable)?;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some())
        .or_else(|| reader.tracks().iter().find(|t| t.codec_params.sample_rate.is_some()))
        .ok_or(DurationError::NoAudio)?;
    let id = track.id;
    let params = &track.codec_params;
    let opus = params.codec == CODEC_TYPE_OPUS;
    let time_base = match (params.time_base, params.sample_rate) {
        (Some(tb), _) => tb,
        (None, Some(rate)) if rate > 0 => TimeBase::new(1, rate),
        _ => return Err(DurationError::NoAudio),
    };
    let mut units: u64 = 0;
    loop {
        match reader.next_packet() {
            Ok(p) if p.track_id() == id => {
                let dur = match p.dur {
                    0 if kind == Kind::Webm && opus => opus_packet_units(&p.data, time_base)?,
                    0 if kind == Kind::Webm => {
                        return Err(DurationError::Unreadable("WebM audio other than Opus".into()));
                    }
                    d => d,
                };
                units = units.saturating_add(dur);
            }
            Ok(_) => {}
            // The end of the file (every reader reports it as an unexpected end of its source).
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A chained Ogg stream begins: what follows is another file's audio, still played.
            Err(SymphoniaError::ResetRequired) => {
                return Err(DurationError::Unreadable("more than one audio stream".into()));
            }
            Err(e) => return Err(unreadable(e)),
        }
    }
    if time_base.denom == 0 {
        return Err(DurationError::NoAudio);
    }
    Ok(units as f64 * f64::from(time_base.numer) / f64::from(time_base.denom))
}

/// An Opus packet's duration (RFC 6716 §3.1: the TOC byte's frame size times its frame count)
/// in `time_base` units.
fn opus_packet_units(packet: &[u8], time_base: TimeBase) -> Result<u64, DurationError> {
    let bad = || DurationError::Unreadable("an Opus packet without a valid TOC".into());
    let toc = *packet.first().ok_or_else(bad)?;
    let config = toc >> 3;
    // Frame size in 1/400 s (2.5 ms) units.
    let frame_quarters: u64 = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    let frames: u64 = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(packet.get(1).ok_or_else(bad)? & 0x3f),
    };
    // At most 120 ms per packet.
    if frames == 0 || frames * frame_quarters > 48 {
        return Err(bad());
    }
    let (numer, denom) = (u64::from(time_base.numer), u64::from(time_base.denom));
    if numer == 0 {
        return Err(bad());
    }
    // units = seconds * denom / numer, seconds = frames * quarters / 400.
    Ok((frames * frame_quarters * denom).div_ceil(400 * numer))
}

/// PCM-like WAV format tags: a block is one sample of every channel.
const WAV_PCM: u16 = 1;
const WAV_FLOAT: u16 = 3;
const WAV_ALAW: u16 = 6;
const WAV_MULAW: u16 = 7;
const WAV_EXTENSIBLE: u16 = 0xfffe;

/// A WAV file's seconds by its bytes: everything after the `data` chunk header, in blocks of the
/// `fmt ` chunk's block size at its sample rate.
fn wav_seconds(bytes: &[u8]) -> Result<f64, DurationError> {
    let bad = |why: &str| DurationError::Unreadable(why.to_string());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a RIFF WAVE file"));
    }
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut at = 12usize;
    // (sample rate, block align)
    let mut format: Option<(u32, u32)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4).ok_or_else(|| bad("a truncated chunk"))? as usize;
        let body = at + 8;
        match id {
            b"fmt " => {
                let tag = u16_at(body).ok_or_else(|| bad("a truncated fmt chunk"))?;
                let channels = u16_at(body + 2).unwrap_or(0);
                let rate = u32_at(body + 4).unwrap_or(0);
                let align = u16_at(body + 12).unwrap_or(0);
                let bits = u16_at(body + 14).unwrap_or(0);
                if !matches!(tag, WAV_PCM | WAV_FLOAT | WAV_ALAW | WAV_MULAW | WAV_EXTENSIBLE) {
                    return Err(bad("a compressed WAV format"));
                }
                let sample_bytes = u32::from(bits).div_ceil(8);
                if channels == 0
                    || !(1..=768_000).contains(&rate)
                    || sample_bytes == 0
                    || u32::from(align) != u32::from(channels) * sample_bytes
                {
                    return Err(bad("an inconsistent fmt chunk"));
                }
                format = Some((rate, u32::from(align)));
            }
            b"data" => {
                let (rate, align) = format.ok_or_else(|| bad("data before the fmt chunk"))?;
                let blocks = (bytes.len() - body) as u64 / u64::from(align);
                return Ok(blocks as f64 / f64::from(rate));
            }
            _ => {}
        }
        // Chunks are word-aligned.
        at = body.checked_add(size).and_then(|e| e.checked_add(size & 1)).ok_or_else(|| bad("a chunk too large"))?;
    }
    Err(bad("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCM WAV file: `frames` frames of 16-bit mono at `rate` Hz, its data chunk saying
    /// `declared` bytes.
    pub(crate) fn wav(rate: u32, frames: u32, declared: Option<u32>) -> Vec<u8> {
        let data_len = frames * 2;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // PCM
        v.extend_from_slice(&1u16.to_le_bytes()); // mono
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * 2).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&declared.unwrap_or(data_len).to_le_bytes());
        v.extend((0..frames).flat_map(|i| (((i % 64) as i16 - 32) * 500).to_le_bytes()));
        v
    }

    fn secs(kind: Kind, bytes: Vec<u8>) -> Result<f64, DurationError> {
        measure(kind, &Bytes::from(bytes)).map(|l| l.duration().as_secs_f64())
    }

    #[test]
    fn a_wav_file_is_as_long_as_its_samples() {
        assert!((secs(Kind::Wav, wav(8000, 24_000, None)).unwrap() - 3.0).abs() < 1e-6);
    }

    #[test]
    fn a_wav_file_whose_data_size_lies_is_measured_by_its_bytes() {
        // Claims ten times the data it holds, or a tenth of it: 3 s either way.
        for declared in [480_000, 4_800] {
            let s = secs(Kind::Wav, wav(8000, 24_000, Some(declared))).unwrap();
            assert!((s - 3.0).abs() < 0.01, "declared {declared}: {s}");
        }
    }

    #[test]
    fn the_charge_is_whole_seconds_rounded_to_the_nearest() {
        let charge = |ms| AudioLength { duration: Duration::from_millis(ms) }.charged_seconds();
        assert_eq!(charge(3096), 3);
        assert_eq!(charge(2500), 3);
        assert_eq!(charge(4000), 4);
        assert_eq!(charge(0), 1);
        assert_eq!(charge(200), 1);
    }

    /// Checked-in files made with ffmpeg from a 3 s tone (`sine=duration=3`, mono).
    fn tone(ext: &str) -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/tone-3s.").to_string() + ext)
            .expect("fixture")
    }

    const TONES: [(&str, Kind); 5] =
        [("mp3", Kind::Mp3), ("ogg", Kind::Ogg), ("webm", Kind::Webm), ("m4a", Kind::Mp4), ("flac", Kind::Flac)];

    #[test]
    fn each_containers_charge_is_its_duration() {
        for (ext, kind) in TONES {
            let l = measure(kind, &Bytes::from(tone(ext))).unwrap_or_else(|e| panic!("{ext}: {e}"));
            assert!((l.duration().as_secs_f64() - 3.0).abs() < 0.15, "{ext}: {:?}", l.duration());
            assert_eq!(l.charged_seconds(), 3, "{ext}");
        }
        let wav = measure(Kind::Wav, &Bytes::from(wav(8000, 24_000, None))).unwrap();
        assert_eq!(wav.charged_seconds(), 3);
    }

    /// Streamed WebM (MediaRecorder, ffmpeg to a pipe): unknown-size segment and clusters, no
    /// `Duration`, no cues.
    #[test]
    fn a_webm_recording_without_sizes_or_duration_is_measured() {
        let l = measure(Kind::Webm, &Bytes::from(tone("live.webm"))).unwrap();
        assert_eq!(l.charged_seconds(), 3, "{:?}", l.duration());
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).position(|w| w == needle).expect("field present")
    }

    #[test]
    fn an_mp3_whose_frame_count_lies_is_measured_by_its_frames() {
        for claimed in [1u32, 10_000_000] {
            let mut f = tone("mp3");
            // LAME's `Info` header: flags (u32 BE), then the frame count when flag 1 is set.
            let at = find(&f, b"Info") + 4;
            assert_eq!(f[at + 3] & 1, 1, "the fixture states its frame count");
            f[at + 4..at + 8].copy_from_slice(&claimed.to_be_bytes());
            assert_eq!(measure(Kind::Mp3, &Bytes::from(f)).unwrap().charged_seconds(), 3, "claims {claimed}");
        }
    }

    /// Ogg's page checksum (CRC-32, polynomial 0x04c11db7, unreflected, over the page with the
    /// checksum field zeroed).
    fn ogg_crc(page: &[u8]) -> u32 {
        let mut crc = 0u32;
        for b in page {
            crc ^= u32::from(*b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
            }
        }
        crc
    }

    #[test]
    fn an_ogg_file_whose_granule_position_lies_is_measured_by_its_packets() {
        for claimed in [960u64, 48_000 * 3600] {
            let mut f = tone("ogg");
            // The last page: its granule position says where the stream ends.
            let last = f.windows(4).rposition(|w| w == b"OggS").unwrap();
            f[last + 6..last + 14].copy_from_slice(&claimed.to_le_bytes());
            f[last + 22..last + 26].fill(0);
            let segments = usize::from(f[last + 26]);
            let body: usize = f[last + 27..last + 27 + segments].iter().map(|b| usize::from(*b)).sum();
            let end = last + 27 + segments + body;
            assert_eq!(end, f.len(), "the last page ends the file");
            let crc = ogg_crc(&f[last..end]);
            f[last + 22..last + 26].copy_from_slice(&crc.to_le_bytes());
            let l = measure(Kind::Ogg, &Bytes::from(f)).unwrap();
            assert_eq!(l.charged_seconds(), 3, "claims {claimed}: {:?}", l.duration());
        }
    }

    #[test]
    fn a_webm_file_whose_duration_lies_is_measured_by_its_blocks() {
        let mut f = tone("webm");
        // Segment Info's Duration (id 0x4489, an 8-byte float in milliseconds).
        let at = find(&f, &[0x44, 0x89, 0x88]) + 3;
        f[at..at + 8].copy_from_slice(&1.0f64.to_be_bytes());
        assert_eq!(measure(Kind::Webm, &Bytes::from(f)).unwrap().charged_seconds(), 3);
    }

    #[test]
    fn an_m4a_file_whose_header_durations_lie_is_measured_by_its_samples() {
        let mut f = tone("m4a");
        // mvhd and mdhd (version 0): created, modified, timescale, duration (u32 BE).
        for atom in [&b"mvhd"[..], b"mdhd"] {
            let at = find(&f, atom) + 4;
            assert_eq!(f[at], 0, "version 0");
            f[at + 16..at + 20].copy_from_slice(&1u32.to_be_bytes());
        }
        assert_eq!(measure(Kind::Mp4, &Bytes::from(f)).unwrap().charged_seconds(), 3);
    }

    #[test]
    fn opus_packets_are_measured_by_their_toc() {
        let ms = TimeBase::new(1, 1000);
        assert_eq!(opus_packet_units(&[31 << 3], ms).unwrap(), 20, "CELT 20 ms, one frame");
        assert_eq!(opus_packet_units(&[(1 << 3) | 1], ms).unwrap(), 40, "SILK 20 ms, two frames");
        assert_eq!(opus_packet_units(&[(16 << 3) | 3, 6], ms).unwrap(), 15, "CELT 2.5 ms x 6");
        assert!(opus_packet_units(&[(31 << 3) | 3, 7], ms).is_err(), "140 ms is more than a packet holds");
        assert!(opus_packet_units(&[], ms).is_err());
    }

    #[test]
    fn a_wav_file_needs_a_plain_format() {
        let mut f = wav(8000, 8000, None);
        f[20] = 2; // MS ADPCM
        assert!(measure(Kind::Wav, &Bytes::from(f)).is_err());
        let mut f = wav(8000, 8000, None);
        f[32] = 7; // a block align that does not fit the channels and bits
        assert!(measure(Kind::Wav, &Bytes::from(f)).is_err());
    }

    #[test]
    fn garbage_has_no_duration() {
        let mut v = b"OggS".to_vec();
        v.extend([0u8; 100]);
        assert!(matches!(secs(Kind::Ogg, v), Err(DurationError::Unreadable(_))));
        assert!(secs(Kind::Png, vec![1, 2, 3]).is_err());
    }
}
