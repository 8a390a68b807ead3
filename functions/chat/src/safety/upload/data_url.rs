//! `data:<type>[;params];base64,<data>` URLs (RFC 2397), as inline images arrive in chat
//! requests. The encoded length is bounded before anything is decoded.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;

use crate::safety::upload::{MediaClass, UploadError, UploadLimits, VerifiedFile, verify};

/// Standard alphabet; padding optional (some encoders omit it) but never wrong.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Splits a data URL into its declared media type and base64 payload, without decoding.
fn split(s: &str) -> Result<(&str, &str), UploadError> {
    let rest =
        s.get(..5).filter(|p| p.eq_ignore_ascii_case("data:")).map(|_| &s[5..]).ok_or(UploadError::NotDataUrl)?;
    let (meta, payload) = rest.split_once(',').ok_or(UploadError::NotDataUrl)?;
    let (media, params) = meta.split_once(';').unwrap_or((meta, ""));
    // `;base64` must be the last parameter; a client-chosen `name=` or other parameter is ignored.
    let base64 = params.rsplit(';').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("base64"));
    if !base64 {
        return Err(UploadError::NotDataUrl);
    }
    Ok((media.trim(), payload))
}

/// Decodes and verifies a data URL of `class`. Size: 413 from the encoded length alone when it
/// cannot fit, so an oversized payload is never decoded.
pub fn parse_data_url(s: &str, class: MediaClass, limits: &UploadLimits) -> Result<VerifiedFile, UploadError> {
    let (media, payload) = split(s)?;
    let max = limits.max_bytes(class);
    let max_encoded = max.div_ceil(3) * 4;
    if payload.len() > max_encoded {
        return Err(UploadError::TooLarge(max));
    }
    if payload.is_empty() {
        return Err(UploadError::Empty);
    }
    let bytes = BASE64.decode(payload).map_err(|_| UploadError::Base64)?;
    verify(class, Some(media), Bytes::from(bytes), limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses() {
        assert_eq!(split("data:image/png;base64,AAAA").unwrap(), ("image/png", "AAAA"));
        assert_eq!(split("DATA:image/png;name=x.html;base64,AA").unwrap(), ("image/png", "AA"));
        for bad in ["image/png;base64,AA", "data:image/png,AA", "data:image/png;base64", "data:", "", "dat"] {
            assert_eq!(split(bad), Err(UploadError::NotDataUrl), "{bad}");
        }
    }

    #[test]
    fn size_is_bounded_before_decoding() {
        let limits = UploadLimits { max_image_bytes: 30, ..Default::default() };
        // 44 base64 chars could decode to 33 bytes > 30: refused without decoding (the data is
        // not even valid base64).
        let url = format!("data:image/png;base64,{}", "!".repeat(44));
        assert_eq!(parse_data_url(&url, MediaClass::Image, &limits).unwrap_err(), UploadError::TooLarge(30));
        let url = format!("data:image/png;base64,{}", "!".repeat(40));
        assert_eq!(parse_data_url(&url, MediaClass::Image, &limits).unwrap_err(), UploadError::Base64);
        assert_eq!(
            parse_data_url("data:image/png;base64,", MediaClass::Image, &limits).unwrap_err(),
            UploadError::Empty
        );
    }
}
