//! Checks only the chat function needs: the URL guard for images fetched from the web (no requests
//! to private, loopback or metadata addresses, however the URL or DNS is dressed up) and the upload
//! checks for images and audio (the bytes, not the declared type, decide what a file is).

pub mod ssrf;
pub mod upload;
