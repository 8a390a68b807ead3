//! Uploads by magic number, with real small files of every allowed type (`tests/data/`, made
//! with ffmpeg): they pass under their canonical type; lying declarations, truncations,
//! polyglots, empty and oversized bodies are refused with the right status. The multipart
//! extractor is exercised through an axum router.

use axum::{Json, Router, body::Body, extract::Extension, routing::post};
use base64::Engine as _;
use bytes::Bytes;
use chat::safety::upload::{self, AudioUpload, Kind, MediaClass, UploadError, UploadLimits};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// (file, kind, a declared type a browser or OS might send)
const FILES: &[(&str, Kind, &str)] = &[
    ("tiny.png", Kind::Png, "image/png"),
    ("tiny.jpg", Kind::Jpeg, "image/jpeg"),
    ("tiny.gif", Kind::Gif, "image/gif"),
    ("tiny.webp", Kind::Webp, "image/webp"),
    ("tiny.mp3", Kind::Mp3, "audio/mpeg"),
    ("tiny-noid3.mp3", Kind::Mp3, "audio/mp3"),
    ("tiny.wav", Kind::Wav, "audio/wav"),
    ("tiny.ogg", Kind::Ogg, "audio/ogg"),
    ("tiny-opus.ogg", Kind::Ogg, "audio/ogg; codecs=opus"),
    ("tiny.flac", Kind::Flac, "audio/flac"),
    ("tiny.webm", Kind::Webm, "audio/webm;codecs=opus"),
    ("tiny.m4a", Kind::Mp4, "audio/x-m4a"),
    ("tiny-isom.mp4", Kind::Mp4, "audio/mp4"),
];

fn read(name: &str) -> Bytes {
    Bytes::from(std::fs::read(format!("{DATA}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn limits() -> UploadLimits {
    UploadLimits::default()
}

#[test]
fn every_real_file_is_detected_and_accepted_under_its_canonical_type() {
    for (name, kind, declared) in FILES {
        let bytes = read(name);
        assert_eq!(upload::detect(&bytes), Ok(*kind), "{name}");
        let f = upload::verify(kind.class(), Some(declared), bytes.clone(), &limits())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.kind(), *kind);
        assert_eq!(f.media_type(), kind.media_type());
        // Stored under a server-made name: the id and the canonical extension, nothing else.
        assert_eq!(f.file_name(), format!("{}.{}", f.id(), kind.extension()));
        assert_eq!(f.bytes(), &bytes);
    }
}

#[test]
fn a_declared_type_that_lies_is_415() {
    for (name, kind, _) in FILES {
        for (_, other, other_declared) in FILES.iter().filter(|(_, k, _)| k != kind && k.class() == kind.class()) {
            let err = upload::verify(kind.class(), Some(other_declared), read(name), &limits()).unwrap_err();
            assert!(matches!(err, UploadError::Mismatch { .. }), "{name} declared {other:?}: {err:?}");
            assert_eq!(err.at("/file").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        for declared in ["application/octet-stream", "text/html", "image/svg+xml", "", "garbage"] {
            let err = upload::verify(kind.class(), Some(declared), read(name), &limits()).unwrap_err();
            assert_eq!(err.at("/file").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name} as {declared:?}");
        }
        assert_eq!(upload::verify(kind.class(), None, read(name), &limits()).unwrap_err(), UploadError::Undeclared);
    }
}

#[test]
fn audio_is_measured_and_a_file_longer_than_allowed_is_422() {
    // ffmpeg, from a 3 s tone, into each container.
    let tones = [
        ("tone-3s.mp3", "audio/mpeg"),
        ("tone-3s.ogg", "audio/ogg"),
        ("tone-3s.webm", "audio/webm"),
        ("tone-3s.live.webm", "audio/webm"),
        ("tone-3s.m4a", "audio/mp4"),
        ("tone-3s.flac", "audio/flac"),
    ];
    let short = UploadLimits { max_audio_seconds: 2, ..limits() };
    for (name, declared) in tones {
        let f = upload::verify(MediaClass::Audio, Some(declared), read(name), &limits()).unwrap();
        assert_eq!(f.audio_length().map(|l| l.charged_seconds()), Some(3), "{name}");
        let err = upload::verify(MediaClass::Audio, Some(declared), read(name), &short).unwrap_err();
        assert_eq!(err, UploadError::TooLong { seconds: 3, max: 2 }, "{name}");
        assert_eq!(err.at("/file").status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    for (name, _, declared) in FILES.iter().filter(|(_, k, _)| k.class() == MediaClass::Audio) {
        let f = upload::verify(MediaClass::Audio, Some(declared), read(name), &limits()).unwrap();
        assert_eq!(f.audio_length().map(|l| l.charged_seconds()), Some(1), "{name}: under a second");
    }
    assert_eq!(
        upload::verify(MediaClass::Image, Some("image/png"), read("tiny.png"), &limits()).unwrap().audio_length(),
        None
    );
}

#[test]
fn a_file_of_the_other_class_is_415() {
    let err = upload::verify(MediaClass::Audio, Some("audio/wav"), read("tiny.png"), &limits()).unwrap_err();
    assert_eq!(err.at("/file").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let err = upload::verify(MediaClass::Image, Some("audio/wav"), read("tiny.wav"), &limits()).unwrap_err();
    assert_eq!(err.at("/images/0").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let err = upload::verify(MediaClass::Image, Some("image/png"), read("tiny.wav"), &limits()).unwrap_err();
    assert!(matches!(err, UploadError::WrongClass { .. }), "{err:?}");
}

#[test]
fn truncated_files_are_refused() {
    for (name, kind, declared) in FILES {
        let bytes = read(name);
        let n = bytes.len();
        let cuts: Vec<usize> = [1, 3, 4, 8, 12, 16, 24, 33, 44, n / 2, n - 1].into_iter().filter(|c| *c < n).collect();
        for cut in cuts {
            // Headers cut short are always refused. Past the headers, streams whose end we do not
            // walk (FLAC and WebM audio frames) or that tolerate a last frame cut short (MP3) can
            // still pass, but only as their own type.
            match upload::verify(kind.class(), Some(declared), bytes.slice(..cut), &limits()) {
                Ok(f) => assert!(
                    matches!(kind, Kind::Mp3 | Kind::Ogg | Kind::Flac | Kind::Webm) && f.kind() == *kind && cut > 44,
                    "{name} cut at {cut} accepted"
                ),
                Err(e) => assert_eq!(e.at("/file").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}@{cut}"),
            }
        }
    }
}

#[test]
fn polyglots_are_refused() {
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    // A GIF header followed by HTML.
    let mut gif_html = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
    gif_html.extend_from_slice(html);
    // A structurally valid GIF whose comment extension holds a script.
    let gif = read("tiny.gif");
    let mut gif_comment = gif[..gif.len() - 1].to_vec();
    gif_comment.extend_from_slice(&[0x21, 0xFE, 29]);
    gif_comment.extend_from_slice(b"<script>alert(1)</script>   ");
    gif_comment.extend_from_slice(&[0x00, 0x3B]);
    // Real files with markup appended.
    let with_tail = |name: &str, tail: &[u8]| {
        let mut v = read(name).to_vec();
        v.extend_from_slice(tail);
        v
    };
    let cases: Vec<(&str, Vec<u8>, MediaClass, &str)> = vec![
        ("gif header + html", gif_html, MediaClass::Image, "image/gif"),
        ("gif comment script", gif_comment, MediaClass::Image, "image/gif"),
        ("png + html", with_tail("tiny.png", html), MediaClass::Image, "image/png"),
        ("jpeg + php", with_tail("tiny.jpg", b"<?php system($_GET['c']); ?>"), MediaClass::Image, "image/jpeg"),
        ("webp + html", with_tail("tiny.webp", html), MediaClass::Image, "image/webp"),
        ("flac + html", with_tail("tiny.flac", html), MediaClass::Audio, "audio/flac"),
        ("mp3 + html", with_tail("tiny.mp3", html), MediaClass::Audio, "audio/mpeg"),
        ("m4a + html", with_tail("tiny.m4a", html), MediaClass::Audio, "audio/mp4"),
        ("html alone", html.to_vec(), MediaClass::Image, "image/png"),
        (
            "svg",
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec(),
            MediaClass::Image,
            "image/png",
        ),
        ("pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n".to_vec(), MediaClass::Image, "image/png"),
        ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec(), MediaClass::Audio, "audio/mpeg"),
        ("elf", b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(), MediaClass::Audio, "audio/wav"),
    ];
    for (what, bytes, class, declared) in cases {
        let err = upload::verify(class, Some(declared), Bytes::from(bytes), &limits()).unwrap_err();
        assert_eq!(err.at("/file").status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{what}: {err:?}");
    }
}

#[test]
fn empty_and_oversized_bodies() {
    let err = upload::verify(MediaClass::Image, Some("image/png"), Bytes::new(), &limits()).unwrap_err();
    assert_eq!(err, UploadError::Empty);
    assert_eq!(err.at("/images/0").status(), StatusCode::UNPROCESSABLE_ENTITY);
    let small = UploadLimits { max_image_bytes: 100, max_audio_bytes: 1000, ..UploadLimits::default() };
    let err = upload::verify(MediaClass::Image, Some("image/gif"), read("tiny.gif"), &small).unwrap_err();
    assert_eq!(err, UploadError::TooLarge(100));
    assert_eq!(err.at("/images/0").status(), StatusCode::PAYLOAD_TOO_LARGE);
    let big = Bytes::from(vec![0u8; UploadLimits::default().max_audio_bytes + 1]);
    assert_eq!(upload::verify(MediaClass::Audio, Some("audio/wav"), big, &limits()).unwrap_err().at("").status(), 413);
    assert!(limits().check_image_count(5).is_ok());
    let too_many = limits().check_image_count(6).unwrap_err().at("/images");
    assert_eq!(too_many.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_many.problem().detail, "/images: at most 5 images per message.");
}

#[test]
fn data_urls_of_every_image_type() {
    for (name, kind, _) in FILES.iter().filter(|(_, k, _)| k.class() == MediaClass::Image) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(read(name));
        let url = format!("data:{};base64,{b64}", kind.media_type());
        let f = upload::parse_data_url(&url, MediaClass::Image, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.kind(), *kind);
        assert_eq!(f.to_data_url(), url);
        // A client-chosen name parameter is ignored; a lying type is not.
        let named = format!("data:{};name=evil.html;base64,{b64}", kind.media_type());
        assert!(upload::parse_data_url(&named, MediaClass::Image, &limits()).is_ok());
        let lying = format!("data:image/svg+xml;base64,{b64}");
        assert_eq!(upload::parse_data_url(&lying, MediaClass::Image, &limits()).unwrap_err().at("/x").status(), 415);
    }
    let bad_b64 = "data:image/png;base64,iVBORw0KGgo*&^%";
    assert_eq!(upload::parse_data_url(bad_b64, MediaClass::Image, &limits()).unwrap_err(), UploadError::Base64);
    let not_b64 = "data:image/png,rawbytes";
    assert_eq!(upload::parse_data_url(not_b64, MediaClass::Image, &limits()).unwrap_err().at("/x").status(), 422);
    // 6 MB of base64 is refused from its length, before decoding.
    let huge = format!("data:image/png;base64,{}", "A".repeat(6_000_000));
    assert_eq!(
        upload::parse_data_url(&huge, MediaClass::Image, &limits()).unwrap_err(),
        UploadError::TooLarge(4 << 20)
    );
}

// ---- multipart, through a router ----

fn router(limits: Option<UploadLimits>) -> Router {
    let route = post(|AudioUpload(f): AudioUpload| async move {
        Json(json!({"file_name": f.file_name(), "media_type": f.media_type(), "size": f.bytes().len()}))
    });
    let route = match limits {
        Some(l) => route.layer(Extension(l)),
        None => route,
    };
    Router::new().route("/api/v1/chat/transcribe", route)
}

const BOUNDARY: &str = "----baatcheet-test-boundary";

/// (field name, file name, Content-Type, data)
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);
/// (what, request Content-Type, body, expected status, expected pointer)
type Refusal<'a> = (&'a str, String, Vec<u8>, u16, Option<&'a str>);

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, filename, ct, data) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disp = match filename {
            Some(f) => format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\n"),
            None => format!("Content-Disposition: form-data; name=\"{field}\"\r\n"),
        };
        body.extend_from_slice(disp.as_bytes());
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn send(app: Router, content_type: &str, body: Vec<u8>) -> (StatusCode, String, Value) {
    let req =
        Request::post("/api/v1/chat/transcribe").header("content-type", content_type).body(Body::from(body)).unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, ct, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

#[tokio::test]
async fn transcribe_upload_accepts_each_audio_type_under_a_server_name() {
    for (name, kind, declared) in FILES.iter().filter(|(_, k, _)| k.class() == MediaClass::Audio) {
        let body = multipart(&[("file", Some("../../etc/passwd.html"), Some(declared), &read(name))]);
        let (status, _, v) = send(router(None), &form_type(), body).await;
        assert_eq!(status, 200, "{name}: {v}");
        assert_eq!(v["media_type"], kind.media_type());
        let file_name = v["file_name"].as_str().unwrap();
        assert!(file_name.ends_with(&format!(".{}", kind.extension())) && !file_name.contains("passwd"), "{file_name}");
    }
}

#[tokio::test]
async fn transcribe_upload_refusals() {
    let wav = read("tiny.wav");
    let problem = "application/problem+json";
    let cases: Vec<Refusal<'_>> = vec![
        ("lying type", form_type(), multipart(&[("file", Some("a.mp3"), Some("audio/mpeg"), &wav)]), 415, None),
        ("image", form_type(), multipart(&[("file", Some("a.png"), Some("image/png"), &read("tiny.png"))]), 415, None),
        ("no type", form_type(), multipart(&[("file", Some("a.wav"), None, &wav)]), 415, None),
        ("empty file", form_type(), multipart(&[("file", Some("a.wav"), Some("audio/wav"), b"")]), 422, Some("/file")),
        ("no file", form_type(), multipart(&[]), 422, Some("/file")),
        (
            "two files",
            form_type(),
            multipart(&[
                ("file", Some("a.wav"), Some("audio/wav"), &wav),
                ("file", Some("b.wav"), Some("audio/wav"), &wav),
            ]),
            422,
            Some("/file"),
        ),
        (
            "unknown field",
            form_type(),
            multipart(&[("model", None, None, b"whisper"), ("file", Some("a.wav"), Some("audio/wav"), &wav)]),
            422,
            Some("/model"),
        ),
        ("json body", "application/json".into(), b"{}".to_vec(), 415, None),
        ("no boundary", "multipart/form-data".into(), multipart(&[("file", None, Some("audio/wav"), &wav)]), 400, None),
        ("garbage", form_type(), b"not multipart at all".to_vec(), 400, None),
    ];
    for (what, ct, body, status, pointer) in cases {
        let (got, got_ct, v) = send(router(None), &ct, body).await;
        assert_eq!(got.as_u16(), status, "{what}: {v}");
        assert_eq!(got_ct, problem, "{what}");
        if let Some(p) = pointer {
            assert_eq!(v["errors"][0]["pointer"], p, "{what}: {v}");
        }
    }
}

#[tokio::test]
async fn transcribe_upload_is_bounded() {
    let small = UploadLimits { max_audio_bytes: 1024, ..UploadLimits::default() };
    // The part itself over the limit (body within the envelope): 413 from the multipart reader.
    let body = multipart(&[("file", Some("a.wav"), Some("audio/wav"), &read("tiny.wav"))]);
    let (status, _, v) = send(router(Some(small)), &form_type(), body).await;
    assert_eq!(status, 413, "{v}");
    // A body far over the limit: 413 before parsing.
    let body = multipart(&[("file", Some("a.wav"), Some("audio/wav"), &vec![0u8; 5 << 20])]);
    let (status, _, _) = send(router(None), &form_type(), body).await;
    assert_eq!(status, 413);
}
