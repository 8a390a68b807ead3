//! The users table: one item per Clerk user, keyed by the Clerk user id (`pk`). The only module
//! that knows the item's shape; the authenticator reads and lazily creates users through it, the
//! webhook gets its conditional writes from it (to run inside its delivery transaction).
//!
//! Item: `pk` (= `clerk_id`), `user_id` (BaatCheet's own id, set once with `if_not_exists`),
//! `email`, `first_name`, `last_name`, `image_url`, `role`, `tier`, `created_at`/`updated_at`
//! (Clerk's, ms), `deleted`/`deleted_at`, `synced_at` (ours, ms), `source` (`webhook`|`token`),
//! `revision` (count of writes applied), `erasure` (`pending`|`done`) and `erased_at` (ms).
//!
//! A deleted user's item is a tombstone: ids, `deleted`/`deleted_at`, the erasure state and
//! bookkeeping, and no personal data (no email, names, image; nor role, tier or Clerk's times).
//! It stays, so that no later or replayed event resurrects the user and the erasure of their
//! data knows their `user_id`.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use serde::Deserialize;
use std::collections::HashMap;

use crate::auth::{AuthUser, Role, Tier};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type Item = HashMap<String, AttributeValue>;

const PK: &str = "pk";
const USER_ID: &str = "user_id";
const CLERK_ID: &str = "clerk_id";
const EMAIL: &str = "email";
const FIRST_NAME: &str = "first_name";
const LAST_NAME: &str = "last_name";
const IMAGE_URL: &str = "image_url";
const ROLE: &str = "role";
const TIER: &str = "tier";
const CREATED_AT: &str = "created_at";
const UPDATED_AT: &str = "updated_at";
const DELETED: &str = "deleted";
const DELETED_AT: &str = "deleted_at";
const SYNCED_AT: &str = "synced_at";
const SOURCE: &str = "source";
const REVISION: &str = "revision";
const ERASURE: &str = "erasure";
const ERASED_AT: &str = "erased_at";
const ERASURE_PENDING: &str = "pending";
const ERASURE_DONE: &str = "done";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("users table: {op} failed")]
    Dynamo {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("users table: item {clerk_id}: {why}")]
    Corrupt { clerk_id: String, why: String },
}

/// What Clerk says of a user and the table keeps while the user exists (a tombstone keeps none
/// of it: its role and tier read as `user` and `free`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub role: Role,
    pub tier: Tier,
}

/// A user as the table holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: String,
    pub clerk_id: String,
    pub profile: Profile,
    pub deleted: bool,
    /// When the webhook applied the deletion (ms).
    pub deleted_at: Option<i64>,
    /// Deleted, and their data not all erased yet.
    pub erasure_pending: bool,
    /// Clerk's `updated_at` (ms) of the data held; None until the webhook has written the user.
    pub updated_at: Option<i64>,
    pub revision: i64,
}

/// The attributes of a user's item that are read back (the layout is in the module's doc; the
/// field names are the attribute names of the constants above). Optional profile attributes may
/// be absent or NULL; anything else missing or of the wrong type is a corrupt item.
#[derive(Deserialize)]
struct UserItem {
    pk: String,
    user_id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    image_url: Option<String>,
    role: Option<String>,
    tier: Option<String>,
    #[serde(default)]
    deleted: bool,
    deleted_at: Option<i64>,
    erasure: Option<String>,
    updated_at: Option<i64>,
    revision: i64,
}

impl UserRecord {
    pub fn auth_user(&self) -> AuthUser {
        AuthUser {
            user_id: self.user_id.clone(),
            clerk_id: self.clerk_id.clone(),
            email: self.profile.email.clone(),
            role: self.profile.role,
            tier: self.profile.tier,
        }
    }

    /// The user an item holds; a missing or malformed attribute is `Corrupt`, naming it.
    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        let u: UserItem = crate::dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
            clerk_id: item.get(PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_else(|| "?".into()),
            why: e.to_string(),
        })?;
        Ok(Self {
            user_id: u.user_id,
            profile: Profile {
                email: u.email,
                first_name: u.first_name,
                last_name: u.last_name,
                image_url: u.image_url,
                // Unknown values fall back (Clerk's metadata is free text; the webhook stores it).
                role: Role::parse_lenient(u.role.as_deref()),
                tier: Tier::parse_lenient(u.tier.as_deref()),
            },
            deleted: u.deleted,
            deleted_at: u.deleted_at,
            erasure_pending: u.erasure.as_deref() == Some(ERASURE_PENDING),
            updated_at: u.updated_at,
            revision: u.revision,
            clerk_id: u.pk,
        })
    }
}

/// A user as Clerk describes them in a `user.created` / `user.updated` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkProfile {
    pub clerk_id: String,
    pub profile: Profile,
    /// Clerk's timestamps, ms since the epoch.
    pub created_at: Option<i64>,
    pub updated_at: i64,
}

/// The two conditional user writes a webhook delivery makes.
enum Write {
    Upsert,
    Delete,
}

/// `#attr` -> attr for each attribute an expression names.
fn names(attrs: &[&'static str]) -> HashMap<String, String> {
    attrs.iter().map(|a| (format!("#{a}"), (*a).to_string())).collect()
}

const CREATE_COND: &str = "attribute_not_exists(#pk)";
const UPSERT_EXPR: &str = "SET #user_id = if_not_exists(#user_id, :user_id), #clerk_id = :clerk_id, #role = :role, \
     #tier = :tier, #synced_at = :now, #source = :source, #updated_at = :updated, #email = :email, \
     #first_name = :first_name, #last_name = :last_name, #image_url = :image_url, \
     #created_at = if_not_exists(#created_at, :created) ADD #revision :one";
const UPSERT_COND: &str = "attribute_not_exists(#pk) OR ((attribute_not_exists(#updated_at) OR #updated_at < :updated) \
     AND (attribute_not_exists(#deleted) OR #deleted = :false))";
const DELETE_EXPR: &str = "SET #user_id = if_not_exists(#user_id, :user_id), #clerk_id = :clerk_id, #deleted = :true, \
     #deleted_at = :now, #synced_at = :now, #source = :source, #erasure = :pending \
     REMOVE #email, #first_name, #last_name, #image_url, #role, #tier, #created_at, #updated_at \
     ADD #revision :one";
const ERASED_EXPR: &str = "SET #erasure = :done, #erased_at = :now ADD #revision :one";
const ERASED_COND: &str = "#deleted = :true AND #erasure = :pending";
const DELETE_COND: &str = "attribute_not_exists(#deleted) OR #deleted = :false";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn new_user_id() -> String {
    // Time-ordered and unguessable; never derived from the Clerk id.
    format!("usr_{}", uuid::Uuid::now_v7().simple())
}

fn vanished(clerk_id: &str) -> StoreError {
    StoreError::Corrupt { clerk_id: clerk_id.into(), why: "vanished after a conditional failure".into() }
}

fn dynamo_err(op: &'static str) -> impl FnOnce(BoxError) -> StoreError {
    move |source| StoreError::Dynamo { op, source }
}

#[derive(Clone)]
pub struct UsersStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl UsersStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(clerk_id: &str) -> Item {
        HashMap::from([(PK.to_string(), s(clerk_id))])
    }

    /// The user's item, read strongly consistent (a just-synced role must count at once).
    pub async fn get(&self, clerk_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(clerk_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem")(Box::new(e)))?;
        out.item().map(UserRecord::from_item).transpose()
    }

    /// Creates a user the webhook has not delivered yet, from a verified token: role `user`,
    /// tier `free`. Conditional on the item not existing, so a concurrent webhook write is never
    /// clobbered; if it lost that race, the item the webhook wrote is returned instead.
    pub async fn create_from_token(&self, clerk_id: &str, email: Option<&str>) -> Result<UserRecord, StoreError> {
        let now = time::OffsetDateTime::now_utc();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut item = Self::key(clerk_id);
        let user_id = new_user_id();
        item.insert(USER_ID.into(), s(&user_id));
        item.insert(CLERK_ID.into(), s(clerk_id));
        if let Some(e) = email {
            item.insert(EMAIL.into(), s(e));
        }
        item.insert(ROLE.into(), s(Role::User.as_str()));
        item.insert(TIER.into(), s(Tier::Free.as_str()));
        item.insert(SOURCE.into(), s("token"));
        item.insert(SYNCED_AT.into(), num(now_ms));
        item.insert(REVISION.into(), num(1));
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression(CREATE_COND)
            .set_expression_attribute_names(Some(names(&[PK])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => UserRecord::from_item(&item),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    match c.item() {
                        Some(existing) => UserRecord::from_item(existing),
                        None => self.get(clerk_id).await?.ok_or_else(|| vanished(clerk_id)),
                    }
                }
                _ => Err(dynamo_err("PutItem")(Box::new(e))),
            },
        }
    }

    /// The conditional write of a `user.created`/`user.updated` event: applied only if the item
    /// is absent, holds older Clerk data (or only token-created data), and is not deleted.
    /// Optional profile fields Clerk leaves out are stored as NULL, so the expression is constant.
    pub fn upsert_from_clerk(&self, p: &ClerkProfile, now_ms: i64) -> Result<Update, StoreError> {
        let (names, values) = Self::upsert_placeholders(p, now_ms, "webhook");
        self.update(&p.clerk_id, Write::Upsert, names, values)
    }

    /// The same conditional write as [`Self::upsert_from_clerk`], on its own (the admin API
    /// writes what Clerk's Backend API answered at once, without waiting for the webhook). Since
    /// the write carries Clerk's `updated_at`, the webhook of the same change finds nothing newer
    /// to apply and an older one cannot undo it. Returns the item as it is afterwards: the new
    /// one, or the one that was already newer (or deleted) when the condition failed.
    pub async fn apply_profile(&self, p: &ClerkProfile, now_ms: i64) -> Result<UserRecord, StoreError> {
        let (names, values) = Self::upsert_placeholders(p, now_ms, "admin");
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&p.clerk_id)))
            .update_expression(UPSERT_EXPR)
            .condition_expression(UPSERT_COND)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => out.attributes().map(UserRecord::from_item).transpose()?.ok_or_else(|| StoreError::Corrupt {
                clerk_id: p.clerk_id.clone(),
                why: "not returned by the update".into(),
            }),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    match c.item() {
                        Some(existing) => UserRecord::from_item(existing),
                        None => self.get(&p.clerk_id).await?.ok_or_else(|| vanished(&p.clerk_id)),
                    }
                }
                _ => Err(dynamo_err("UpdateItem")(Box::new(e))),
            },
        }
    }

    /// Names and values of [`UPSERT_EXPR`] / [`UPSERT_COND`]; `source` records which path wrote
    /// Clerk's data (`webhook` or `admin`).
    fn upsert_placeholders(
        p: &ClerkProfile,
        now_ms: i64,
        source: &'static str,
    ) -> (HashMap<String, String>, HashMap<String, AttributeValue>) {
        let opt = |v: &Option<String>| v.as_deref().map(s).unwrap_or(AttributeValue::Null(true));
        let values = HashMap::from([
            (":user_id".to_string(), s(&new_user_id())),
            (":clerk_id".to_string(), s(&p.clerk_id)),
            (":role".to_string(), s(p.profile.role.as_str())),
            (":tier".to_string(), s(p.profile.tier.as_str())),
            (":now".to_string(), num(now_ms)),
            (":source".to_string(), s(source)),
            (":updated".to_string(), num(p.updated_at)),
            (":email".to_string(), opt(&p.profile.email)),
            (":first_name".to_string(), opt(&p.profile.first_name)),
            (":last_name".to_string(), opt(&p.profile.last_name)),
            (":image_url".to_string(), opt(&p.profile.image_url)),
            (":created".to_string(), p.created_at.map(num).unwrap_or(AttributeValue::Null(true))),
            (":one".to_string(), num(1)),
            (":false".to_string(), AttributeValue::Bool(false)),
        ]);
        let names = names(&[
            PK, USER_ID, CLERK_ID, ROLE, TIER, SYNCED_AT, SOURCE, UPDATED_AT, EMAIL, FIRST_NAME, LAST_NAME, IMAGE_URL,
            CREATED_AT, REVISION, DELETED,
        ]);
        (names, values)
    }

    /// The write of a `user.deleted` event: marks the user deleted, drops their personal data
    /// (leaving the tombstone) and marks the erasure of everything else of theirs pending. Deletion is final (Clerk never reuses ids), so later or replayed events cannot
    /// resurrect the user; an item is created if the user was never seen, for the same reason.
    pub fn mark_deleted(&self, clerk_id: &str, now_ms: i64) -> Result<Update, StoreError> {
        let values = HashMap::from([
            (":user_id".to_string(), s(&new_user_id())),
            (":clerk_id".to_string(), s(clerk_id)),
            (":true".to_string(), AttributeValue::Bool(true)),
            (":false".to_string(), AttributeValue::Bool(false)),
            (":now".to_string(), num(now_ms)),
            (":source".to_string(), s("webhook")),
            (":one".to_string(), num(1)),
            (":pending".to_string(), s(ERASURE_PENDING)),
        ]);
        let names = names(&[
            USER_ID, CLERK_ID, DELETED, DELETED_AT, SYNCED_AT, SOURCE, EMAIL, FIRST_NAME, LAST_NAME, IMAGE_URL,
            REVISION, ERASURE, ROLE, TIER, CREATED_AT, UPDATED_AT,
        ]);
        self.update(clerk_id, Write::Delete, names, values)
    }

    /// Records that nothing of a deleted user is left but the tombstone. Conditional on the
    /// erasure being pending, so a repeat changes nothing; returns whether this call recorded it.
    pub async fn mark_erased(&self, clerk_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(clerk_id)))
            .update_expression(ERASED_EXPR)
            .condition_expression(ERASED_COND)
            .set_expression_attribute_names(Some(names(&[ERASURE, ERASED_AT, REVISION, DELETED])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":done".to_string(), s(ERASURE_DONE)),
                (":pending".to_string(), s(ERASURE_PENDING)),
                (":true".to_string(), AttributeValue::Bool(true)),
                (":now".to_string(), num(now_ms)),
                (":one".to_string(), num(1)),
            ])))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(dynamo_err("UpdateItem")(Box::new(e))),
        }
    }

    fn update(
        &self,
        clerk_id: &str,
        write: Write,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    ) -> Result<Update, StoreError> {
        let b = Update::builder().table_name(&self.table).set_key(Some(Self::key(clerk_id)));
        // Constant expressions at the call site (tests/expressions.rs checks it).
        let b = match write {
            Write::Upsert => b.update_expression(UPSERT_EXPR).condition_expression(UPSERT_COND),
            Write::Delete => b.update_expression(DELETE_EXPR).condition_expression(DELETE_COND),
        };
        b.set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| dynamo_err("building Update")(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> UsersStore {
        let conf = aws_sdk_dynamodb::Config::builder().behavior_version_latest().build();
        UsersStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "users")
    }

    #[test]
    fn every_name_and_value_is_a_placeholder() {
        let p = ClerkProfile {
            clerk_id: "user_1".into(),
            profile: Profile {
                email: Some("a@b.c".into()),
                first_name: None,
                last_name: Some("L".into()),
                image_url: None,
                role: Role::Admin,
                tier: Tier::Pro,
            },
            created_at: Some(1),
            updated_at: 2,
        };
        for u in [store().upsert_from_clerk(&p, 3).unwrap(), store().mark_deleted("user_1", 3).unwrap()] {
            let text = format!("{} {}", u.update_expression(), u.condition_expression().unwrap_or_default());
            for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '#' || c == ':')) {
                let ok = word.is_empty()
                    || word.starts_with('#')
                    || word.starts_with(':')
                    || ["SET", "REMOVE", "ADD", "OR", "AND", "if_not_exists", "attribute_not_exists"].contains(&word);
                assert!(ok, "bare word {word:?} in {text}");
            }
            let names = u.expression_attribute_names().unwrap();
            for k in names.keys() {
                assert!(text.contains(k.as_str()));
            }
        }
    }

    /// An item as the writes above leave it: key, ids, revision, and `extra`.
    fn item(extra: &[(&str, AttributeValue)]) -> Item {
        let mut item = UsersStore::key("user_1");
        item.insert(USER_ID.into(), s("usr_1"));
        item.insert(REVISION.into(), num(3));
        item.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        item
    }

    #[test]
    fn records_parse_leniently() {
        let mut item = item(&[
            (ROLE, s("superuser")),
            (TIER, s("pro")),
            (DELETED, AttributeValue::Bool(true)),
            (EMAIL, s("a@b.c")),
        ]);
        let r = UserRecord::from_item(&item).unwrap();
        assert_eq!((r.profile.role, r.profile.tier, r.deleted, r.revision), (Role::User, Tier::Pro, true, 3));
        assert_eq!((r.clerk_id.as_str(), r.profile.email.as_deref()), ("user_1", Some("a@b.c")));
        item.remove(USER_ID);
        assert!(UserRecord::from_item(&item).is_err());
    }

    /// What Clerk left out is stored as NULL (the upsert's expression is constant): read as none.
    #[test]
    fn null_profile_attributes_read_as_none() {
        let null = AttributeValue::Null(true);
        let r = UserRecord::from_item(&item(&[
            (EMAIL, null.clone()),
            (FIRST_NAME, null.clone()),
            (IMAGE_URL, null.clone()),
            (CREATED_AT, null),
            (UPDATED_AT, num(9)),
        ]))
        .unwrap();
        assert_eq!((r.profile.email, r.profile.first_name, r.updated_at), (None, None, Some(9)));
        assert_eq!(
            (r.profile.role, r.profile.tier, r.deleted, r.erasure_pending),
            (Role::User, Tier::Free, false, false)
        );
    }

    /// A garbled or missing number is an error naming the attribute (a 500), never a 0; the
    /// message never carries the value.
    #[test]
    fn a_corrupt_item_is_an_error_naming_the_attribute() {
        let corrupt = |item: Item| match UserRecord::from_item(&item) {
            Err(StoreError::Corrupt { clerk_id, why }) => {
                assert_eq!(clerk_id, "user_1");
                why
            }
            other => panic!("not corrupt: {other:?}"),
        };
        let why = corrupt(item(&[(REVISION, AttributeValue::N("x7".into()))]));
        assert_eq!(why, "attribute `revision`: malformed");
        let mut no_revision = item(&[]);
        no_revision.remove(REVISION);
        assert_eq!(corrupt(no_revision), "missing field `revision`");
        assert_eq!(corrupt(item(&[(DELETED_AT, s("yesterday"))])), "attribute `deleted_at`: malformed");
        assert_eq!(corrupt(item(&[(UPDATED_AT, AttributeValue::Bool(true))])), "attribute `updated_at`: malformed");
        assert_eq!(corrupt(item(&[(DELETED, s("no"))])), "attribute `deleted`: malformed");
        assert_eq!(corrupt(item(&[(ROLE, num(1))])), "attribute `role`: malformed");
    }
}
