//! The chat function: completions, conversations and search, attachments and uploads, the admin's
//! changes, the URL guard and validation.
//!
//! One test binary per area (few binaries: each links the whole AWS SDK); each file below is one
//! module, as it was one binary before.

#[path = "chat.rs"]
mod chat;

#[path = "chat_store.rs"]
mod chat_store;

#[path = "chat_gateway.rs"]
mod chat_gateway;

#[path = "chat_admin.rs"]
mod chat_admin;

#[path = "chat_attachments.rs"]
mod chat_attachments;

#[path = "ssrf.rs"]
mod ssrf;

#[path = "uploads.rs"]
mod uploads;

#[path = "validation.rs"]
mod validation;
