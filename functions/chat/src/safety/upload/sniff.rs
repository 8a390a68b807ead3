//! What a file is, from its bytes alone. The signature picks a candidate type; a structural walk
//! of that format then confirms it, which refuses truncated headers and most polyglots (a GIF
//! header followed by HTML is not a GIF: its block structure breaks). The `infer` crate's
//! independent opinion must not contradict ours, and markup that browsers would treat as a
//! document is refused anywhere in the file.

use crate::safety::upload::kind::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the content is not a supported file type")]
    Unknown,
    #[error("the content is not a well-formed {}", .0.extension())]
    Malformed(Kind),
    #[error("the content carries embedded markup")]
    Markup,
}

pub fn detect(b: &[u8]) -> Result<Kind, SniffError> {
    let kind = candidate(b).ok_or(SniffError::Unknown)?;
    let well_formed = match kind {
        Kind::Png => png(b),
        Kind::Jpeg => jpeg(b),
        Kind::Gif => gif(b),
        Kind::Webp => riff(b, b"WEBP").is_some_and(|chunks| {
            chunks.first().is_some_and(|c| matches!(&c.0, b"VP8 " | b"VP8L" | b"VP8X") && c.1 > 0)
        }),
        Kind::Wav => riff(b, b"WAVE").is_some_and(|chunks| wav_chunks(b, &chunks)),
        Kind::Mp3 => mp3(b),
        Kind::Ogg => ogg(b),
        Kind::Flac => flac(b),
        Kind::Webm => webm(b),
        Kind::Mp4 => mp4(b),
    };
    if !well_formed {
        return Err(SniffError::Malformed(kind));
    }
    if let Some(t) = infer::get(b) {
        let theirs = Kind::from_declared(t.mime_type()).or(match t.mime_type() {
            "audio/x-flac" => Some(Kind::Flac),
            "video/quicktime" | "video/x-m4v" => Some(Kind::Mp4),
            _ => None,
        });
        if theirs != Some(kind) {
            return Err(SniffError::Unknown);
        }
    }
    if has_markup(b) {
        return Err(SniffError::Markup);
    }
    Ok(kind)
}

fn candidate(b: &[u8]) -> Option<Kind> {
    Some(if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Kind::Png
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Kind::Jpeg
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Kind::Gif
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        Kind::Webp
    } else if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WAVE") {
        Kind::Wav
    } else if b.starts_with(b"OggS") {
        Kind::Ogg
    } else if b.starts_with(b"fLaC") {
        Kind::Flac
    } else if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Kind::Webm
    } else if b.get(4..8) == Some(b"ftyp") {
        Kind::Mp4
    } else if b.starts_with(b"ID3") || mpeg_frame(b).is_some() {
        Kind::Mp3
    } else {
        return None;
    })
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}
fn be32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}
fn le16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}
fn le32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Signature, IHDR first (13 bytes, non-zero size), chunks that fit, at least one IDAT, and
/// IEND as the very last bytes.
fn png(b: &[u8]) -> bool {
    let mut pos = 8;
    let mut seen_idat = false;
    let mut first = true;
    while let (Some(len), Some(ty)) = (be32(b, pos), b.get(pos + 4..pos + 8)) {
        let Some(end) = pos.checked_add(12).and_then(|p| p.checked_add(len)) else { return false };
        if len > 0x7FFF_FFFF || end > b.len() || !ty.iter().all(u8::is_ascii_alphabetic) {
            return false;
        }
        if first {
            let ok = ty == b"IHDR" && len == 13 && be32(b, pos + 8) != Some(0) && be32(b, pos + 12) != Some(0);
            if !ok {
                return false;
            }
            first = false;
        }
        match ty {
            b"IDAT" => seen_idat = true,
            b"IEND" => return len == 0 && end == b.len() && seen_idat,
            _ => {}
        }
        pos = end;
    }
    false
}

/// SOI, marker segments that fit, a frame header before the first scan, entropy-coded data,
/// and EOI as the last two bytes.
fn jpeg(b: &[u8]) -> bool {
    let mut pos = 2;
    let (mut seen_sof, mut seen_sos) = (false, false);
    loop {
        if b.get(pos) != Some(&0xFF) {
            return false;
        }
        while b.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else { return false };
        pos += 1;
        match marker {
            0xD9 => return pos == b.len() && seen_sof && seen_sos,
            0x01 | 0xD0..=0xD7 => continue,
            0x00 | 0xD8 => return false,
            _ => {}
        }
        let Some(len) = be16(b, pos) else { return false };
        if len < 2 || pos + len > b.len() {
            return false;
        }
        pos += len;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            seen_sof = true;
        }
        if marker == 0xDA {
            if !seen_sof {
                return false;
            }
            seen_sos = true;
            // Entropy-coded data runs to the next marker that is not a stuffed 0x00 or a restart.
            loop {
                match b.get(pos..pos + 2) {
                    None => return false,
                    Some([0xFF, m]) if *m != 0x00 && !(0xD0..=0xD7).contains(m) && *m != 0xFF => break,
                    _ => pos += 1,
                }
            }
        }
    }
}

/// Header, logical screen, optional colour table, then extension and image blocks made of
/// sub-blocks, and the trailer as the last byte.
fn gif(b: &[u8]) -> bool {
    let Some(&packed) = b.get(10) else { return false };
    let table = |p: u8| if p & 0x80 != 0 { 3usize << ((p & 7) + 1) } else { 0 };
    let mut pos = 13 + table(packed);
    let mut images = 0;
    let sub_blocks = |mut pos: usize| -> Option<usize> {
        loop {
            let n = *b.get(pos)? as usize;
            pos += 1 + n;
            if n == 0 {
                return Some(pos);
            }
        }
    };
    loop {
        let Some(&block) = b.get(pos) else { return false };
        let next = match block {
            0x21 => b.get(pos + 1).and_then(|_| sub_blocks(pos + 2)),
            0x2C => b.get(pos + 9).and_then(|&p| {
                let lzw = pos + 10 + table(p);
                let code_size = *b.get(lzw)?;
                images += 1;
                (2..=12).contains(&code_size).then_some(())?;
                sub_blocks(lzw + 1)
            }),
            0x3B => return pos + 1 == b.len() && images > 0,
            _ => return false,
        };
        match next {
            Some(n) if n <= b.len() => pos = n,
            _ => return false,
        }
    }
}

/// A RIFF file of form `form` whose declared size is exactly the file, walked chunk by chunk
/// (each padded to even length) to the end. Returns (fourcc, size, data offset) per chunk.
fn riff(b: &[u8], form: &[u8; 4]) -> Option<Vec<([u8; 4], usize, usize)>> {
    if b.get(8..12)? != form || le32(b, 4)?.checked_add(8)? != b.len() {
        return None;
    }
    let mut chunks = Vec::new();
    let mut pos = 12;
    while pos < b.len() {
        let id: [u8; 4] = b.get(pos..pos + 4)?.try_into().ok()?;
        let size = le32(b, pos + 4)?;
        let end = (pos + 8).checked_add(size)?;
        if end > b.len() || !id.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return None;
        }
        chunks.push((id, size, pos + 8));
        pos = end + (size & 1);
    }
    (pos == b.len() && !chunks.is_empty()).then_some(chunks)
}

/// A `fmt ` chunk (PCM or another format tag, channels and rate set) before a `data` chunk.
fn wav_chunks(b: &[u8], chunks: &[([u8; 4], usize, usize)]) -> bool {
    let fmt = chunks.iter().position(|c| &c.0 == b"fmt ");
    let data = chunks.iter().position(|c| &c.0 == b"data");
    match (fmt, data) {
        (Some(f), Some(d)) if f < d => {
            let (_, size, at) = chunks[f];
            size >= 16
                && le16(b, at).is_some_and(|tag| tag != 0)
                && le16(b, at + 2).is_some_and(|ch| ch > 0)
                && le32(b, at + 4).is_some_and(|rate| rate > 0)
        }
        _ => false,
    }
}

/// The length of the MPEG-1/2/2.5 Layer III frame starting at `b[0]`, if its header is valid.
fn mpeg_frame(b: &[u8]) -> Option<usize> {
    let h = b.get(..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: 2.5, 1: reserved, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 3; // 1: Layer III
    let bitrate_idx = (h[2] >> 4) as usize;
    let rate_idx = ((h[2] >> 2) & 3) as usize;
    if version == 1 || layer != 1 || bitrate_idx == 0 || bitrate_idx == 15 || rate_idx == 3 {
        return None;
    }
    const V1: [usize; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const V2: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let (kbps, rate, factor) = match version {
        3 => (V1[bitrate_idx], [44100, 48000, 32000][rate_idx], 144_000),
        2 => (V2[bitrate_idx], [22050, 24000, 16000][rate_idx], 72_000),
        _ => (V2[bitrate_idx], [11025, 12000, 8000][rate_idx], 72_000),
    };
    let padding = ((h[2] >> 1) & 1) as usize;
    Some(factor * kbps / rate + padding)
}

/// Optional ID3v2 tag, then a chain of Layer III frames to the end of the file, optionally
/// closed by an ID3v1 tag or a final frame cut short.
fn mp3(b: &[u8]) -> bool {
    let mut pos = 0;
    if b.starts_with(b"ID3") {
        let Some(h) = b.get(..10) else { return false };
        if !(2..=4).contains(&h[3]) || h[4] == 0xFF || h[6..10].iter().any(|x| x & 0x80 != 0) {
            return false;
        }
        let size = h[6..10].iter().fold(0usize, |acc, x| (acc << 7) | *x as usize);
        pos = 10 + size + if h[5] & 0x10 != 0 { 10 } else { 0 };
    }
    let mut frames = 0;
    while pos < b.len() {
        let rest = &b[pos..];
        match mpeg_frame(rest) {
            Some(len) if len <= rest.len() => {
                frames += 1;
                pos += len;
            }
            Some(_) => return frames > 0, // last frame cut short
            None => return frames > 0 && rest.len() == 128 && rest.starts_with(b"TAG"),
        }
    }
    frames > 0 && pos == b.len()
}

/// Ogg pages (capture pattern, version 0, segment table) back to back to the end of the file;
/// the first page begins a stream of Vorbis, Opus, FLAC or Speex.
fn ogg(b: &[u8]) -> bool {
    let mut pos = 0;
    let mut first = true;
    while pos < b.len() {
        let Some(h) = b.get(pos..pos + 27) else { return false };
        if &h[..4] != b"OggS" || h[4] != 0 {
            return false;
        }
        let nseg = h[26] as usize;
        let Some(table) = b.get(pos + 27..pos + 27 + nseg) else { return false };
        let body: usize = table.iter().map(|x| *x as usize).sum();
        let start = pos + 27 + nseg;
        if start + body > b.len() {
            return false;
        }
        if first {
            let packet = &b[start..start + body];
            let codec = [&b"\x01vorbis"[..], b"OpusHead", b"\x7fFLAC", b"Speex   "];
            if h[5] & 0x02 == 0 || !codec.iter().any(|c| packet.starts_with(c)) {
                return false;
            }
            first = false;
        }
        pos = start + body;
    }
    !first
}

/// `fLaC`, STREAMINFO first (34 bytes, non-zero rate), metadata blocks that fit up to the last
/// one, then audio frames starting with a frame sync code.
fn flac(b: &[u8]) -> bool {
    let mut pos = 4;
    let mut first = true;
    loop {
        let Some(&head) = b.get(pos) else { return false };
        let Some(len) = be32(b, pos).map(|x| x & 0x00FF_FFFF) else { return false };
        let ty = head & 0x7F;
        if ty == 127 || pos + 4 + len > b.len() {
            return false;
        }
        if first {
            // Sample rate: the first 20 bits of byte 10 of STREAMINFO.
            let rate = be32(b, pos + 4 + 10).map(|x| x >> 12);
            if ty != 0 || len != 34 || rate.is_none_or(|r| r == 0) {
                return false;
            }
            first = false;
        }
        pos += 4 + len;
        if head & 0x80 != 0 {
            break;
        }
    }
    matches!(b.get(pos..pos + 2), Some([0xFF, 0xF8 | 0xF9]))
}

/// An EBML variable-length integer at `pos`: (value without marker, length, all ones).
fn vint(b: &[u8], pos: usize, keep_marker: bool) -> Option<(u64, usize, bool)> {
    let first = *b.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = b.get(pos..pos + len)?;
    let mut v = if keep_marker { u64::from(first) } else { u64::from(first) & (0xFF >> len) };
    for x in &bytes[1..] {
        v = (v << 8) | u64::from(*x);
    }
    let all_ones = v == (1u64 << (7 * len)) - 1;
    Some((v, len, all_ones && !keep_marker))
}

/// EBML header with DocType `webm`, then a Segment; a Segment of known size ends the file.
fn webm(b: &[u8]) -> bool {
    let Some((_, id_len, _)) = vint(b, 0, true) else { return false };
    let Some((size, size_len, _)) = vint(b, id_len, false) else { return false };
    let start = id_len + size_len;
    let Some(end) = usize::try_from(size).ok().and_then(|s| start.checked_add(s)) else { return false };
    if end > b.len() {
        return false;
    }
    let mut pos = start;
    let mut doctype = None;
    while pos < end {
        let Some((id, il, _)) = vint(b, pos, true) else { return false };
        let Some((sz, sl, _)) = vint(b, pos + il, false) else { return false };
        let data = pos + il + sl;
        let Some(next) = usize::try_from(sz).ok().and_then(|s| data.checked_add(s)) else { return false };
        if next > end {
            return false;
        }
        if id == 0x4282 {
            doctype = Some(&b[data..next]);
        }
        pos = next;
    }
    if doctype != Some(b"webm") {
        return false;
    }
    let Some((seg_id, il, _)) = vint(b, end, true) else { return false };
    let Some((seg_size, sl, unknown)) = vint(b, end + il, false) else { return false };
    if seg_id != 0x1853_8067 {
        return false;
    }
    // Recorders that stream (MediaRecorder) leave the Segment size unknown.
    unknown || usize::try_from(seg_size).ok().and_then(|s| (end + il + sl).checked_add(s)) == Some(b.len())
}

/// ISO base media: `ftyp` first, top-level boxes back to back to the end, a `moov` among them.
fn mp4(b: &[u8]) -> bool {
    let mut pos = 0;
    let mut seen_moov = false;
    while pos < b.len() {
        let Some(size32) = be32(b, pos) else { return false };
        let Some(ty) = b.get(pos + 4..pos + 8) else { return false };
        if !ty.iter().all(|c| (0x20..0x7F).contains(c)) {
            return false;
        }
        let (size, header) = match size32 {
            0 => (b.len() - pos, 8),
            1 => match b.get(pos + 8..pos + 16).and_then(|x| x.try_into().ok()).map(u64::from_be_bytes) {
                Some(s) => match usize::try_from(s) {
                    Ok(s) => (s, 16),
                    Err(_) => return false,
                },
                None => return false,
            },
            s => (s, 8),
        };
        if size < header || pos.checked_add(size).is_none_or(|e| e > b.len()) {
            return false;
        }
        if pos == 0 && (ty != b"ftyp" || size < 16) {
            return false;
        }
        seen_moov |= ty == b"moov";
        pos += size;
    }
    seen_moov
}

/// Markup a browser would render or run, refused anywhere in the file: these never occur in
/// real media except as an attack (an HTML page in a GIF comment, a PHP tail on a JPEG). Only
/// long patterns, so compressed data does not match by chance.
fn has_markup(b: &[u8]) -> bool {
    const PATTERNS: [&[u8]; 7] = [b"<script", b"<iframe", b"<!doctype", b"<?php", b"javascript:", b"<html", b"<body"];
    let lower_eq = |hay: &[u8], pat: &[u8]| {
        hay.len() >= pat.len() && hay.iter().zip(pat).all(|(h, p)| h.to_ascii_lowercase() == *p)
    };
    b.iter().enumerate().filter(|(_, c)| **c == b'<' || **c == b'j' || **c == b'J').any(|(i, _)| {
        let rest = &b[i..];
        PATTERNS.iter().any(|p| {
            lower_eq(rest, p)
                && (!matches!(*p, b"<html" | b"<body")
                    || rest.get(p.len()).is_some_and(|c| c.is_ascii_whitespace() || *c == b'>'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markup_patterns() {
        assert!(has_markup(b"xx<SCRIPT>alert(1)</script>"));
        assert!(has_markup(b"<html><body>"));
        assert!(!has_markup(b"<htmlx"));
        assert!(!has_markup(b"plain bytes < 3"));
    }

    proptest! {
        #[test]
        fn no_bytes_panic_the_sniffer(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = detect(&b);
        }

        #[test]
        fn no_bytes_after_a_signature_panic_the_sniffer(
            sig in prop::sample::select(vec![
                &b"\x89PNG\r\n\x1a\n"[..], b"\xFF\xD8\xFF", b"GIF89a", b"RIFF\0\0\0\0WEBP", b"RIFF\0\0\0\0WAVE",
                b"OggS", b"fLaC", b"\x1A\x45\xDF\xA3", b"\0\0\0\x18ftyp", b"ID3", b"\xFF\xFB",
            ]),
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut b = sig.to_vec();
            b.extend(tail);
            let _ = detect(&b);
        }
    }
}
