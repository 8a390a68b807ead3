//! Decoder for the `text/event-stream` an upstream sends (WHATWG server-sent events): bytes in,
//! complete `data` payloads out. Lines end in LF, CRLF or CR (a CRLF split across two network
//! chunks counts once); `data:` lines of one event join with LF; comments and other fields are
//! skipped. Lines are split on ASCII terminators before UTF-8 decoding, so a multi-byte character
//! split across chunks is reassembled. An event larger than the bound is an error, not a memory leak.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("event exceeds {0} bytes")]
    TooLarge(usize),
    #[error("event is not valid UTF-8")]
    Utf8,
}

#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    /// The previous chunk ended in CR: a leading LF of the next one belongs to it.
    after_cr: bool,
    max_event: usize,
}

impl SseDecoder {
    pub fn new(max_event: usize) -> Self {
        Self { line: Vec::new(), data: String::new(), has_data: false, after_cr: false, max_event }
    }

    /// Feeds one chunk; returns the data of every event it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, SseError> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(r) = rest.strip_prefix(b"\n") {
                rest = r;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let was_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            self.take_line(&mut out)?;
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(out)
    }

    /// The stream ended: a final event without its blank line is discarded, as the spec says.
    pub fn finish(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
    }

    fn take_line(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment (keep-alive)
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            let value = std::str::from_utf8(value).map_err(|_| SseError::Utf8)?;
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
            if self.data.len() > self.max_event {
                return Err(SseError::TooLarge(self.max_event));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new(1 << 20);
        chunks.iter().flat_map(|c| d.push(c).unwrap()).collect()
    }

    #[test]
    fn decodes_openai_style_chunks() {
        let got = all(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]);
        assert_eq!(got, ["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn handles_every_line_ending_and_splits() {
        assert_eq!(all(&[b"data: x\r\n\r\ndata: y\r\rdata: z\n\n"]), ["x", "y", "z"]);
        assert_eq!(all(&[b"data: x\r", b"\n\r", b"\n"]), ["x"]);
        assert_eq!(all(&[b"da", b"ta: hel", b"lo\n", b"\n"]), ["hello"]);
    }

    #[test]
    fn joins_multi_line_data_and_skips_comments_and_other_fields() {
        assert_eq!(all(&[b": keep-alive\n\nevent: x\nid: 7\ndata: a\ndata:b\nretry: 5\n\n"]), ["a\nb"]);
        assert_eq!(all(&[b"data\n\n"]), [""]);
        assert!(all(&[b"event: only\n\n"]).is_empty());
    }

    #[test]
    fn reassembles_multibyte_characters_split_across_chunks() {
        let text = "data: آپ کیسے ہیں\n\n".as_bytes();
        let (a, b) = text.split_at(7); // inside the first Urdu letter (2 bytes, from byte 6)
        assert_eq!(all(&[a, b]), ["آپ کیسے ہیں"]);
    }

    #[test]
    fn bounds_event_size() {
        let mut d = SseDecoder::new(16);
        assert_eq!(d.push(b"data: 0123456789abcdef0123"), Err(SseError::TooLarge(16)));
        let mut d = SseDecoder::new(16);
        assert!(d.push(b"data: 0123456789\ndata: 0123456789\n").is_err());
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut d = SseDecoder::new(1024);
        assert_eq!(d.push(b"data: \xff\xfe\n\n"), Err(SseError::Utf8));
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(payloads in proptest::collection::vec("[a-z0-9 {}\":é]{0,20}", 0..6), cut in 0usize..200) {
            let text: String = payloads.iter().map(|p| format!("data: {p}\n\n")).collect();
            let bytes = text.as_bytes();
            let cut = cut.min(bytes.len());
            let (a, b) = bytes.split_at(cut);
            let mut d = SseDecoder::new(1 << 20);
            let mut got = d.push(a).unwrap();
            got.extend(d.push(b).unwrap());
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = SseDecoder::new(256);
            let _ = d.push(&bytes);
        }
    }
}
