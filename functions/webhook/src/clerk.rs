//! Clerk's webhook payloads: the event envelope and the user object, read leniently (Clerk adds
//! fields freely) but with the fields we store checked.

use baatcheet_shared::clerk::{UserObjectError, profile_from_user, valid_clerk_id};
use baatcheet_shared::users::ClerkProfile;
use serde::Deserialize;
use serde_json::Value;

/// Why a delivery's body cannot be applied: not an event at all, or an event whose user object
/// is unusable (checked by the same code as the Backend API's answers, `shared::clerk`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("the body is not a Clerk event: {0}")]
    Shape(String),
    #[error(transparent)]
    User(#[from] UserObjectError),
}

/// What a delivery asks of the users table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Upsert(ClerkProfile),
    Delete {
        clerk_id: String,
    },
    /// Any other event type: acknowledged, not stored.
    Ignore,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

/// The event type (bounded, for logs and the delivery record) and what it asks for. The user
/// object is read by the same code that reads the Backend API's answers (`shared::clerk`).
pub fn parse(body: &[u8]) -> Result<(String, Action), EventError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| EventError::Shape(e.to_string()))?;
    let event_type: String = env.kind.chars().filter(|c| !c.is_control()).take(64).collect();
    let action = match env.kind.as_str() {
        "user.created" | "user.updated" => Action::Upsert(profile_from_user(env.data)?),
        "user.deleted" => Action::Delete { clerk_id: valid_clerk_id(env.data.get("id").and_then(Value::as_str))? },
        _ => Action::Ignore,
    };
    Ok((event_type, action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baatcheet_shared::auth::{Role, Tier};
    use serde_json::json;

    /// The user object's fields are read by `shared::clerk` (its tests cover them); here, that a
    /// created user becomes an upsert of what it reads.
    #[test]
    fn user_created_is_an_upsert_of_the_user_object() {
        let user = json!({"id": "user_29w83sxmDNGwOuEthce5gg56FcC", "object": "user",
            "email_addresses": [{"id": "idn_1", "email_address": "ayesha@example.org"}],
            "primary_email_address_id": "idn_1", "public_metadata": {"role": "moderator", "tier": "enterprise"},
            "created_at": 1654012591514_i64, "updated_at": 1654012591835_i64});
        let body = json!({"type": "user.created", "object": "event", "data": user});
        let (kind, Action::Upsert(p)) = parse(body.to_string().as_bytes()).unwrap() else { panic!() };
        assert_eq!(kind, "user.created");
        assert_eq!(p, profile_from_user(user).unwrap());
        assert_eq!((p.profile.role, p.profile.tier), (Role::Moderator, Tier::Enterprise));
    }

    #[test]
    fn unknown_metadata_falls_back() {
        let body = json!({"type": "user.updated", "data": {"id": "user_1", "updated_at": 5,
            "public_metadata": {"role": "root", "tier": 3}}});
        let (_, Action::Upsert(p)) = parse(body.to_string().as_bytes()).unwrap() else { panic!() };
        assert_eq!((p.profile.role, p.profile.tier, p.profile.email), (Role::User, Tier::Free, None));
    }

    #[test]
    fn deleted_and_other_events() {
        let del = json!({"type": "user.deleted", "data": {"id": "user_1", "deleted": true, "object": "user"}});
        assert_eq!(
            parse(del.to_string().as_bytes()).unwrap(),
            ("user.deleted".into(), Action::Delete { clerk_id: "user_1".into() })
        );
        let other = json!({"type": "session.created", "data": {"id": "sess_1"}});
        assert_eq!(parse(other.to_string().as_bytes()).unwrap(), ("session.created".into(), Action::Ignore));
    }

    #[test]
    fn rejects_unusable_events() {
        assert!(matches!(parse(b"not json"), Err(EventError::Shape(_))));
        assert!(matches!(parse(b"{\"data\":{}}"), Err(EventError::Shape(_))));
        let no_id = json!({"type": "user.created", "data": {"updated_at": 1}});
        assert_eq!(parse(no_id.to_string().as_bytes()), Err(EventError::User(UserObjectError::UserId)));
        let bad_id = json!({"type": "user.deleted", "data": {"id": "user 1"}});
        assert_eq!(parse(bad_id.to_string().as_bytes()), Err(EventError::User(UserObjectError::UserId)));
        let no_ts = json!({"type": "user.updated", "data": {"id": "user_1"}});
        assert_eq!(parse(no_ts.to_string().as_bytes()), Err(EventError::User(UserObjectError::UpdatedAt)));
    }
}
