//! Console accounts: signing in and out, sessions, the CSRF token, password
//! changes, the optional TOTP second factor and the admins' user management.
//!
//! Sessions live in the database (every node accepts them); only the
//! SHA-256 of a session token is stored. Failed sign-ins are throttled per
//! account and per client address (in memory, per node, like the API-key
//! failure throttle). Every change is audited, with `user:<email>` as the
//! actor when a user made it. Time comes from the injected clock only.

use crate::error::{ApiError, ErrorCode};
use crate::limiter::{KeyedLimiter, Quota};
use crate::metrics::{rate_scope, Metrics};
use crate::webhook_secrets::SecretBox;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use updraft_core::account::{self, AccountInputError, User};
use updraft_core::model::{Clock, Millis, Role};
use updraft_store::{
    AuditStore, NewAuditEntry, NewSession, NewUser, Session, SessionStore, StoreError, UserPatch,
    UserStore,
};

/// The one sentence of every refused sign-in: it does not say which part was wrong.
pub const INVALID_CREDENTIALS_MESSAGE: &str =
    "the email, password or second-factor code is wrong (or the account is disabled)";

/// A session's `last_seen_at` is written at most this often (not on every request).
const TOUCH_INTERVAL_MS: Millis = 60_000;

/// Session lifetimes and the sign-in throttle (settings with defaults; see
/// the README's configuration table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountSettings {
    /// A session unused this long ends.
    #[serde(deserialize_with = "crate::settings::at_least::<60, _, _>")]
    pub session_idle_timeout_secs: u64,
    /// A session ends this long after sign-in, however busy.
    #[serde(deserialize_with = "crate::settings::at_least::<60, _, _>")]
    pub session_lifetime_secs: u64,
    /// Failed sign-ins per account (then refused with 429 until the bucket refills).
    pub sign_in_account_rate: Quota,
    /// Failed sign-ins per client address.
    pub sign_in_client_rate: Quota,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            session_idle_timeout_secs: 12 * 3600,
            session_lifetime_secs: 7 * 24 * 3600,
            sign_in_account_rate: Quota {
                burst: 5,
                per_minute: 1,
            },
            sign_in_client_rate: Quota {
                burst: 20,
                per_minute: 5,
            },
        }
    }
}

/// Who makes an account change: a signed-in user, an API key (by name) or
/// the offline CLI; the audit actor is [`Actor::label`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User(User),
    Key { name: String, id: i64 },
    Offline,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User(user) => user.actor(),
            Actor::Key { name, .. } => format!("key:{name}"),
            Actor::Offline => crate::audit::OFFLINE_ACTOR.to_string(),
        }
    }

    fn key_id(&self) -> Option<i64> {
        match self {
            Actor::Key { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// A new session: the token goes into the cookie, the CSRF token to the page.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub token: String,
    pub session: Session,
    pub user: User,
}

/// The user behind a valid session cookie.
#[derive(Clone, Debug)]
pub struct SessionUser {
    pub user: User,
    pub session: Session,
}

/// What a sign-in carries.
#[derive(Clone, Debug, Default)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
    /// A TOTP code or a recovery code, when the account has a second factor.
    pub code: Option<String>,
    /// The peer (or trusted-proxy-named) address.
    pub client: Option<IpAddr>,
    /// The session token the browser still had: ended (rotation on sign-in).
    pub previous_token: Option<String>,
}

/// A TOTP enrolment started: what the authenticator app needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// Base32.
    pub secret: String,
    pub otpauth_uri: String,
}

/// A new user to create (admins, the CLI, the start-up bootstrap).
#[derive(Clone, Debug)]
pub struct CreateUser {
    pub email: String,
    pub password: String,
    pub role: Role,
    pub apps: Option<Vec<String>>,
}

/// A refused email, password or app list, as this API answers it.
pub fn input_error(err: AccountInputError) -> ApiError {
    let code = match &err {
        AccountInputError::InvalidEmail(_) => ErrorCode::InvalidEmail,
        AccountInputError::PasswordTooShort => ErrorCode::PasswordTooShort,
        AccountInputError::PasswordTooLong => ErrorCode::PasswordTooLong,
        AccountInputError::EmptyAppList => ErrorCode::InvalidAppList,
        AccountInputError::Hashing(_) => {
            return ApiError::internal(err.to_string());
        }
    };
    ApiError::bad_request(code, err.to_string())
}

fn user_not_found(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound(_) => {
            ApiError::not_found(ErrorCode::UserNotFound, "no user with this id")
        }
        other => other.into(),
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
        INVALID_CREDENTIALS_MESSAGE,
    )
}

fn session_invalid() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::SessionInvalid,
        "not signed in: the session is unknown, signed out or expired; sign in again",
    )
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashing and checking passwords is slow on purpose: off the async workers.
async fn verify_blocking(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || account::verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

async fn hash_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || account::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(format!("password hashing failed: {e}")))?
        .map_err(input_error)
}

/// The audit view of a user (never a secret).
fn user_view(user: &User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "email": user.email,
        "role": user.role.as_str(),
        "apps": user.apps,
        "disabled": user.disabled,
        "totp_enabled": user.totp_enabled,
    })
}

pub struct AccountService {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    audit: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
    settings: AccountSettings,
    /// Keyed by normalised email; takes a token per failed sign-in.
    account_failures: KeyedLimiter,
    /// Keyed by client address.
    client_failures: KeyedLimiter,
    /// Seals TOTP secrets at rest (the webhook secrets' key).
    secrets: Arc<SecretBox>,
    metrics: Arc<Metrics>,
}

/// What the account service works with.
pub struct AccountDeps {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub audit: Arc<dyn AuditStore>,
    pub clock: Arc<dyn Clock>,
    /// Seals TOTP secrets at rest.
    pub secrets: Arc<SecretBox>,
    pub metrics: Arc<Metrics>,
}

impl AccountService {
    /// `max_keys`: accounts and addresses each throttle remembers.
    pub fn new(deps: AccountDeps, settings: AccountSettings, max_keys: usize) -> AccountService {
        AccountService {
            users: deps.users,
            sessions: deps.sessions,
            audit: deps.audit,
            clock: deps.clock,
            account_failures: KeyedLimiter::new(settings.sign_in_account_rate, max_keys),
            client_failures: KeyedLimiter::new(settings.sign_in_client_rate, max_keys),
            settings,
            secrets: deps.secrets,
            metrics: deps.metrics,
        }
    }

    /// The TOTP secret bytes of a stored (sealed) value; `None` when it cannot be opened.
    fn open_totp_secret(&self, stored: &str) -> Option<Vec<u8>> {
        match self.secrets.open(stored) {
            Ok(encoded) => account::totp_secret_from_base32(&encoded),
            Err(err) => {
                tracing::error!(error = %err, "a stored TOTP secret cannot be opened (another webhook_secret_key?)");
                None
            }
        }
    }

    pub fn settings(&self) -> AccountSettings {
        self.settings
    }

    async fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        before: Option<&User>,
        after: Option<&User>,
    ) {
        let entry = NewAuditEntry {
            at: self.clock.now(),
            actor: actor.label(),
            api_key_id: actor.key_id(),
            app_id: None,
            action: action.to_string(),
            target: target.to_string(),
            before: before.map(user_view),
            after: after.map(user_view),
        };
        if let Err(err) = self.audit.record_audit(entry).await {
            self.metrics
                .record_database_error(crate::metrics::db_operation::API);
            tracing::error!(error = %err, action, target, "audit entry could not be stored");
        }
    }

    /// 429 when this account or this client failed too often.
    fn throttled(&self, email_key: &str, client: Option<IpAddr>, now: Millis) -> Option<ApiError> {
        let blocked = [
            self.account_failures.blocked(email_key, now),
            self.client_failures.blocked(client, now),
        ]
        .into_iter()
        .flatten()
        .map(|retry| retry.0)
        .max()?;
        self.metrics.record_rate_limited(rate_scope::AUTH_FAILURES);
        Some(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManySignInAttempts,
                "too many failed sign-ins for this account or from this address; retry later",
            )
            .with("retry_after_seconds", blocked),
        )
    }

    fn count_failure(&self, email_key: &str, client: Option<IpAddr>, now: Millis) {
        self.metrics.record_auth_failure();
        let _ = self.account_failures.check(email_key, now);
        let _ = self.client_failures.check(client, now);
    }

    /// Checks the email, password and (when the account has one) second
    /// factor; on success ends the browser's previous session and starts a
    /// new one. Every refusal is the same `invalid_credentials`, and takes
    /// as long: an unknown email is checked against a dummy hash.
    pub async fn sign_in(&self, request: SignInRequest) -> Result<SignedIn, ApiError> {
        let now = self.clock.now();
        let email = account::normalize_email(&request.email).ok();
        let email_key = email
            .clone()
            .unwrap_or_else(|| request.email.trim().to_lowercase());
        if let Some(refusal) = self.throttled(&email_key, request.client, now) {
            return Err(refusal);
        }
        let credentials = match &email {
            Some(email) => self.users.user_credentials(email).await?,
            None => None,
        };
        let hash = credentials
            .as_ref()
            .map(|c| c.password_hash.clone())
            .unwrap_or_else(|| account::dummy_password_hash().to_string());
        let password_ok = verify_blocking(hash, request.password.clone()).await;
        let credentials = match credentials {
            Some(c) if password_ok && !c.user.disabled => c,
            _ => {
                self.count_failure(&email_key, request.client, now);
                tracing::warn!(client = ?request.client, "console sign-in refused");
                return Err(invalid_credentials());
            }
        };
        if let Some(secret) = &credentials.totp_secret {
            let code = request.code.as_deref().unwrap_or("");
            if !self
                .second_factor(credentials.user.id, secret, code, now)
                .await?
            {
                self.count_failure(&email_key, request.client, now);
                tracing::warn!(client = ?request.client, "console sign-in refused (second factor)");
                return Err(invalid_credentials());
            }
        }
        if let Some(previous) = request.previous_token.as_deref() {
            self.sessions
                .delete_session(&account::token_hash(previous))
                .await?;
        }
        let signed_in = self.start_session(credentials.user, now).await?;
        tracing::info!(user = %signed_in.user.email, "console sign-in");
        Ok(signed_in)
    }

    /// A TOTP code of an unused step, or an unused recovery code.
    async fn second_factor(
        &self,
        user_id: i64,
        secret: &str,
        code: &str,
        now: Millis,
    ) -> Result<bool, ApiError> {
        if account::looks_like_totp_code(code) {
            let Some(secret) = self.open_totp_secret(secret) else {
                return Ok(false);
            };
            return match account::totp_matching_step(&secret, code, now) {
                Some(step) => Ok(self
                    .users
                    .claim_totp_step(user_id, i64::try_from(step).unwrap_or(i64::MAX))
                    .await?),
                None => Ok(false),
            };
        }
        if code.trim().is_empty() {
            return Ok(false);
        }
        Ok(self
            .users
            .use_recovery_code(user_id, &account::recovery_code_hash(code))
            .await?)
    }

    async fn start_session(&self, user: User, now: Millis) -> Result<SignedIn, ApiError> {
        let token = account::random_token();
        let lifetime = Millis::try_from(self.settings.session_lifetime_secs)
            .unwrap_or(Millis::MAX / 2_000)
            .saturating_mul(1000);
        let session = self
            .sessions
            .create_session(NewSession {
                token_hash: account::token_hash(&token),
                user_id: user.id,
                csrf_token: account::random_token(),
                created_at: now,
                expires_at: now.saturating_add(lifetime),
            })
            .await?;
        Ok(SignedIn {
            token,
            session,
            user,
        })
    }

    /// The user behind a session cookie. A state-changing request
    /// (`needs_csrf`) must carry the session's CSRF token, else 403
    /// `csrf_token_invalid`.
    pub async fn authenticate(
        &self,
        token: &str,
        csrf: Option<&str>,
        needs_csrf: bool,
    ) -> Result<SessionUser, ApiError> {
        let now = self.clock.now();
        let hash = account::token_hash(token);
        let Some(session) = self.sessions.get_session(&hash).await? else {
            return Err(session_invalid());
        };
        let idle = Millis::try_from(self.settings.session_idle_timeout_secs)
            .unwrap_or(Millis::MAX / 2_000)
            .saturating_mul(1000);
        if session.expires_at <= now || session.last_seen_at.saturating_add(idle) <= now {
            self.sessions.delete_session(&hash).await?;
            return Err(session_invalid());
        }
        let user = match self.users.get_user(session.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => return Err(session_invalid()),
        };
        if needs_csrf && !csrf.is_some_and(|sent| same_secret(sent, &session.csrf_token)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CsrfTokenInvalid,
                "this request changes something: send the session's CSRF token in X-CSRF-Token",
            ));
        }
        if now - session.last_seen_at >= TOUCH_INTERVAL_MS {
            self.sessions.touch_session(&hash, now).await?;
        }
        Ok(SessionUser { user, session })
    }

    /// Ends this session (signing out twice is fine).
    pub async fn sign_out(&self, token: &str) -> Result<(), ApiError> {
        self.sessions
            .delete_session(&account::token_hash(token))
            .await?;
        Ok(())
    }

    /// Ends every session of the user, on every node.
    pub async fn sign_out_everywhere(&self, user: &User) -> Result<u64, ApiError> {
        let ended = self.sessions.delete_user_sessions(user.id).await?;
        self.record(
            &Actor::User(user.clone()),
            "user.sign_out_everywhere",
            &user.email,
            None,
            None,
        )
        .await;
        Ok(ended)
    }

    /// Needs the current password; ends every session of the user and
    /// starts a new one for the browser that asked.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        client: Option<IpAddr>,
    ) -> Result<SignedIn, ApiError> {
        self.check_current_password(user, current, client).await?;
        let hash = hash_blocking(new.to_string()).await?;
        let now = self.clock.now();
        let changed = self
            .users
            .set_password(user.id, &hash, now)
            .await
            .map_err(user_not_found)?;
        self.record(
            &Actor::User(user.clone()),
            "user.password_change",
            &user.email,
            None,
            None,
        )
        .await;
        self.start_session(changed, now).await
    }

    /// A wrong current password counts as a failed sign-in (same throttle).
    async fn check_current_password(
        &self,
        user: &User,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        if let Some(refusal) = self.throttled(&user.email, client, now) {
            return Err(refusal);
        }
        let credentials = self
            .users
            .user_credentials_by_id(user.id)
            .await?
            .ok_or_else(session_invalid)?;
        if verify_blocking(credentials.password_hash, password.to_string()).await {
            Ok(())
        } else {
            self.count_failure(&user.email, client, now);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::WrongPassword,
                "the current password is wrong",
            ))
        }
    }

    /// Starts enrolling a TOTP second factor (replacing an unconfirmed one).
    pub async fn totp_enrol(&self, user: &User) -> Result<TotpEnrolment, ApiError> {
        if user.totp_enabled {
            return Err(ApiError::conflict(
                ErrorCode::TotpAlreadyEnabled,
                "a second factor is already enabled; disable it first",
            ));
        }
        let secret = account::new_totp_secret();
        let encoded = account::totp_secret_base32(&secret);
        self.users
            .set_totp_pending(
                user.id,
                Some(&self.secrets.seal(&encoded)),
                self.clock.now(),
            )
            .await
            .map_err(user_not_found)?;
        Ok(TotpEnrolment {
            otpauth_uri: account::totp_uri(&secret, "Updraft", &user.email),
            secret: encoded,
        })
    }

    /// Confirms the enrolment with a current code; answers the ten
    /// recovery codes (shown once; only their hashes are kept).
    pub async fn totp_confirm(&self, user: &User, code: &str) -> Result<Vec<String>, ApiError> {
        let now = self.clock.now();
        let credentials = self
            .users
            .user_credentials_by_id(user.id)
            .await?
            .ok_or_else(session_invalid)?;
        if credentials.user.totp_enabled {
            return Err(ApiError::conflict(
                ErrorCode::TotpAlreadyEnabled,
                "a second factor is already enabled",
            ));
        }
        let Some(pending) = credentials.totp_pending_secret else {
            return Err(ApiError::conflict(
                ErrorCode::TotpNotEnrolling,
                "no second factor is being enrolled: start with POST /api/v1/account/totp",
            ));
        };
        let step = self
            .open_totp_secret(&pending)
            .and_then(|secret| account::totp_matching_step(&secret, code, now))
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidTotpCode,
                    "the code does not match: enter the code the authenticator app shows now",
                )
            })?;
        let codes = account::new_recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| account::recovery_code_hash(c))
            .collect();
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if !self
            .users
            .enable_totp(user.id, &pending, step, &hashes, now)
            .await?
        {
            return Err(ApiError::conflict(
                ErrorCode::TotpNotEnrolling,
                "the enrolment changed meanwhile (started again elsewhere); start again",
            ));
        }
        let after = self.users.get_user(user.id).await?;
        self.record(
            &Actor::User(user.clone()),
            "user.totp_enable",
            &user.email,
            Some(user),
            after.as_ref(),
        )
        .await;
        Ok(codes)
    }

    /// Turns the second factor off; needs the current password.
    pub async fn totp_disable(
        &self,
        user: &User,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<User, ApiError> {
        self.check_current_password(user, password, client).await?;
        let after = self
            .users
            .disable_totp(user.id, self.clock.now())
            .await
            .map_err(user_not_found)?;
        self.record(
            &Actor::User(user.clone()),
            "user.totp_disable",
            &user.email,
            Some(user),
            Some(&after),
        )
        .await;
        Ok(after)
    }

    // --- Admin operations (the caller's role is checked by the HTTP layer) ---

    pub async fn list_users(&self) -> Result<Vec<User>, ApiError> {
        Ok(self.users.list_users().await?)
    }

    pub async fn create_user(&self, actor: &Actor, new: CreateUser) -> Result<User, ApiError> {
        let new_user = self.new_user(new).await?;
        let user = self
            .users
            .create_user(new_user, self.clock.now())
            .await
            .map_err(|err| match err {
                StoreError::AlreadyExists(_) => ApiError::conflict(
                    ErrorCode::UserAlreadyExists,
                    "a user with this email already exists",
                ),
                other => other.into(),
            })?;
        self.record(actor, "user.create", &user.email, None, Some(&user))
            .await;
        Ok(user)
    }

    async fn new_user(&self, new: CreateUser) -> Result<NewUser, ApiError> {
        let email = account::normalize_email(&new.email).map_err(input_error)?;
        let apps = account::normalize_apps(new.apps).map_err(input_error)?;
        let password_hash = hash_blocking(new.password).await?;
        Ok(NewUser {
            email,
            password_hash,
            role: new.role,
            apps,
        })
    }

    /// The start-up bootstrap (`UPDRAFT_ADMIN_EMAIL` + `UPDRAFT_ADMIN_PASSWORD`):
    /// creates this admin when there is no user at all; `None` (logged)
    /// when some user exists, which is never changed.
    pub async fn bootstrap_admin(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<User>, ApiError> {
        let new_user = self
            .new_user(CreateUser {
                email: email.to_string(),
                password: password.to_string(),
                role: Role::Admin,
                apps: None,
            })
            .await?;
        let created = match self
            .users
            .create_first_user(new_user, self.clock.now())
            .await
        {
            Ok(created) => created,
            // Another node created this very admin at the same moment.
            Err(StoreError::AlreadyExists(_)) => None,
            Err(other) => return Err(other.into()),
        };
        match &created {
            Some(user) => {
                tracing::info!(email = %user.email, "created the first admin from UPDRAFT_ADMIN_EMAIL");
                self.record(
                    &Actor::Offline,
                    "user.create",
                    &user.email,
                    None,
                    Some(user),
                )
                .await;
            }
            None => tracing::info!(
                "UPDRAFT_ADMIN_EMAIL is set but users exist already: nothing created or changed"
            ),
        }
        Ok(created)
    }

    /// Role, app scope, disabled; ends the user's sessions when any changes.
    /// The last enabled admin cannot be demoted or disabled.
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, ApiError> {
        let patch = UserPatch {
            apps: match patch.apps {
                Some(apps) => Some(account::normalize_apps(apps).map_err(input_error)?),
                None => None,
            },
            ..patch
        };
        let before =
            self.users.get_user(id).await?.ok_or_else(|| {
                ApiError::not_found(ErrorCode::UserNotFound, "no user with this id")
            })?;
        let loses_admin = before.role == Role::Admin
            && !before.disabled
            && (patch.role.is_some_and(|r| r != Role::Admin) || patch.disabled == Some(true));
        if loses_admin {
            let admins = self
                .users
                .list_users()
                .await?
                .into_iter()
                .filter(|u| u.role == Role::Admin && !u.disabled)
                .count();
            if admins <= 1 {
                return Err(ApiError::conflict(
                    ErrorCode::LastAdmin,
                    "this is the last enabled admin: make another user admin first",
                ));
            }
        }
        let after = self
            .users
            .update_user(id, patch, self.clock.now())
            .await
            .map_err(user_not_found)?;
        if after != before {
            self.record(
                actor,
                "user.update",
                &after.email,
                Some(&before),
                Some(&after),
            )
            .await;
        }
        Ok(after)
    }

    /// A new password set by an admin; ends the user's sessions.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        id: i64,
        password: &str,
    ) -> Result<User, ApiError> {
        let hash = hash_blocking(password.to_string()).await?;
        let user = self
            .users
            .set_password(id, &hash, self.clock.now())
            .await
            .map_err(user_not_found)?;
        self.record(actor, "user.password_reset", &user.email, None, None)
            .await;
        Ok(user)
    }

    /// Prunes ended sessions (the retention task calls this).
    pub async fn prune_sessions(&self, max_rows: i64) -> Result<u64, ApiError> {
        let now = self.clock.now();
        let idle = Millis::try_from(self.settings.session_idle_timeout_secs)
            .unwrap_or(Millis::MAX / 2_000)
            .saturating_mul(1000);
        Ok(self
            .sessions
            .delete_expired_sessions(now, now.saturating_sub(idle), max_rows)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::model::ManualClock;
    use updraft_store::{AuditQuery, SqliteStore};

    const T0: Millis = 1_700_000_000_000;
    const PASSWORD: &str = "correct horse battery";

    struct Fixture {
        service: AccountService,
        store: Arc<SqliteStore>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    async fn fixture_with(settings: AccountSettings) -> Fixture {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Arc::new(
            SqliteStore::open_path(&dir.path().join("t.db"))
                .await
                .unwrap(),
        );
        let clock = Arc::new(ManualClock::new(T0));
        let service = AccountService::new(
            AccountDeps {
                users: Arc::clone(&store) as Arc<dyn UserStore>,
                sessions: Arc::clone(&store) as Arc<dyn SessionStore>,
                audit: Arc::clone(&store) as Arc<dyn AuditStore>,
                clock: Arc::clone(&clock) as Arc<dyn Clock>,
                secrets: Arc::new(SecretBox::new(
                    &crate::webhook_secrets::SecretKey::from_bytes([7; 32]),
                )),
                metrics: Arc::new(Metrics::new()),
            },
            settings,
            10_000,
        );
        Fixture {
            service,
            store,
            clock,
            _dir: dir,
        }
    }

    async fn fixture() -> Fixture {
        fixture_with(AccountSettings::default()).await
    }

    impl Fixture {
        async fn user(&self, email: &str, role: Role) -> User {
            self.service
                .create_user(
                    &Actor::Offline,
                    CreateUser {
                        email: email.to_string(),
                        password: PASSWORD.to_string(),
                        role,
                        apps: None,
                    },
                )
                .await
                .unwrap()
        }

        async fn sign_in(
            &self,
            email: &str,
            password: &str,
            code: Option<&str>,
        ) -> Result<SignedIn, ApiError> {
            self.service
                .sign_in(SignInRequest {
                    email: email.to_string(),
                    password: password.to_string(),
                    code: code.map(str::to_string),
                    client: Some(IpAddr::from([192, 0, 2, 1])),
                    previous_token: None,
                })
                .await
        }

        async fn actions(&self) -> Vec<(String, String)> {
            self.store
                .list_audit(&AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.actor, e.action))
                .collect()
        }
    }

    #[tokio::test]
    async fn sign_in_checks_the_password_and_never_says_which_part_was_wrong() {
        let f = fixture().await;
        f.user("ada@example.com", Role::Admin).await;
        let signed = f.sign_in("ADA@example.com ", PASSWORD, None).await.unwrap();
        assert_eq!(signed.user.email, "ada@example.com");
        assert_eq!(signed.token.len(), 64);
        // Only the hash is stored.
        assert!(f.store.get_session(&signed.token).await.unwrap().is_none());
        let stored = f
            .store
            .get_session(&account::token_hash(&signed.token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.expires_at, T0 + 7 * 24 * 3600 * 1000);

        let wrong = f
            .sign_in("ada@example.com", "wrong password!!", None)
            .await
            .unwrap_err();
        let unknown = f
            .sign_in("nobody@example.com", PASSWORD, None)
            .await
            .unwrap_err();
        let malformed = f.sign_in("not an email", PASSWORD, None).await.unwrap_err();
        for err in [&wrong, &unknown, &malformed] {
            assert_eq!(
                (err.status, &err.code),
                (StatusCode::UNAUTHORIZED, &ErrorCode::InvalidCredentials)
            );
            assert_eq!(err.message, INVALID_CREDENTIALS_MESSAGE);
        }
    }

    #[tokio::test]
    async fn a_disabled_user_cannot_sign_in_and_loses_its_sessions() {
        let f = fixture().await;
        let admin = f.user("root@example.com", Role::Admin).await;
        let bob = f.user("bob@example.com", Role::Viewer).await;
        let session = f.sign_in("bob@example.com", PASSWORD, None).await.unwrap();
        let patch = UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        };
        f.service
            .update_user(&Actor::User(admin.clone()), bob.id, patch)
            .await
            .unwrap();
        let err = f
            .service
            .authenticate(&session.token, None, false)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SessionInvalid);
        let err = f
            .sign_in("bob@example.com", PASSWORD, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCredentials);
        assert!(f.actions().await.contains(&(
            "user:root@example.com".to_string(),
            "user.update".to_string()
        )));
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_at_their_absolute_end() {
        let settings = AccountSettings {
            session_idle_timeout_secs: 600,
            session_lifetime_secs: 3600,
            ..AccountSettings::default()
        };
        let f = fixture_with(settings).await;
        f.user("ada@example.com", Role::Admin).await;

        // Idle: 10 minutes without a request ends it.
        let idle = f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        f.clock.advance(599_000);
        f.service
            .authenticate(&idle.token, None, false)
            .await
            .unwrap();
        f.clock.advance(599_000);
        // Still alive: the last request moved last_seen.
        f.service
            .authenticate(&idle.token, None, false)
            .await
            .unwrap();
        f.clock.advance(600_000);
        let err = f
            .service
            .authenticate(&idle.token, None, false)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SessionInvalid);

        // Absolute: an hour, however busy.
        let busy = f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        for _ in 0..7 {
            f.clock.advance(500_000);
            f.service
                .authenticate(&busy.token, None, false)
                .await
                .unwrap();
        }
        f.clock.advance(200_000);
        let err = f
            .service
            .authenticate(&busy.token, None, false)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SessionInvalid);
        // The ended sessions are gone from the store.
        assert_eq!(f.service.prune_sessions(100).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sign_in_rotates_the_session_and_csrf_binds_to_it() {
        let f = fixture().await;
        f.user("ada@example.com", Role::Admin).await;
        let first = f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        let second = f
            .service
            .sign_in(SignInRequest {
                email: "ada@example.com".into(),
                password: PASSWORD.into(),
                previous_token: Some(first.token.clone()),
                ..SignInRequest::default()
            })
            .await
            .unwrap();
        assert_ne!(first.token, second.token);
        assert_ne!(first.session.csrf_token, second.session.csrf_token);
        let err = f
            .service
            .authenticate(&first.token, None, false)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::SessionInvalid);

        // Reads need no CSRF token; writes need this session's.
        f.service
            .authenticate(&second.token, None, false)
            .await
            .unwrap();
        for wrong in [
            None,
            Some(""),
            Some(first.session.csrf_token.as_str()),
            Some("x"),
        ] {
            let err = f
                .service
                .authenticate(&second.token, wrong, true)
                .await
                .unwrap_err();
            assert_eq!(
                (err.status, &err.code),
                (StatusCode::FORBIDDEN, &ErrorCode::CsrfTokenInvalid)
            );
        }
        let ok = f
            .service
            .authenticate(&second.token, Some(&second.session.csrf_token), true)
            .await
            .unwrap();
        assert_eq!(ok.user.email, "ada@example.com");

        f.service.sign_out(&second.token).await.unwrap();
        f.service.sign_out(&second.token).await.unwrap();
        assert!(f
            .service
            .authenticate(&second.token, None, false)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn sign_out_everywhere_ends_every_session_of_the_user_only() {
        let f = fixture().await;
        let ada = f.user("ada@example.com", Role::Admin).await;
        f.user("bob@example.com", Role::Viewer).await;
        let a1 = f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        let a2 = f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        let b1 = f.sign_in("bob@example.com", PASSWORD, None).await.unwrap();
        assert_eq!(f.service.sign_out_everywhere(&ada).await.unwrap(), 2);
        assert!(f
            .service
            .authenticate(&a1.token, None, false)
            .await
            .is_err());
        assert!(f
            .service
            .authenticate(&a2.token, None, false)
            .await
            .is_err());
        f.service
            .authenticate(&b1.token, None, false)
            .await
            .unwrap();
        assert!(f.actions().await.contains(&(
            "user:ada@example.com".to_string(),
            "user.sign_out_everywhere".to_string()
        )));
    }

    #[tokio::test]
    async fn failed_sign_ins_are_throttled_per_account_and_per_client() {
        let settings = AccountSettings {
            sign_in_account_rate: Quota {
                burst: 3,
                per_minute: 1,
            },
            sign_in_client_rate: Quota {
                burst: 5,
                per_minute: 1,
            },
            ..AccountSettings::default()
        };
        let f = fixture_with(settings).await;
        f.user("ada@example.com", Role::Admin).await;
        f.user("bob@example.com", Role::Admin).await;
        for _ in 0..3 {
            let err = f
                .sign_in("ada@example.com", "wrong password!!", None)
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidCredentials);
        }
        // The account is throttled, even with the right password.
        let err = f
            .sign_in("ada@example.com", PASSWORD, None)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status, &err.code),
            (
                StatusCode::TOO_MANY_REQUESTS,
                &ErrorCode::TooManySignInAttempts
            )
        );
        let retry = err.details["retry_after_seconds"].as_u64().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // Another account from another address is not.
        f.service
            .sign_in(SignInRequest {
                email: "bob@example.com".into(),
                password: PASSWORD.into(),
                client: Some(IpAddr::from([198, 51, 100, 7])),
                ..SignInRequest::default()
            })
            .await
            .unwrap();
        // The window: a minute later one more attempt is allowed.
        f.clock.advance(60_000);
        f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();

        // Per client: failures on other accounts from one address add up.
        for i in 0..3 {
            let _ = f
                .sign_in(&format!("ghost{i}@example.com"), "wrong password!!", None)
                .await;
        }
        let err = f
            .sign_in("bob@example.com", PASSWORD, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::TooManySignInAttempts);
    }

    #[tokio::test]
    async fn totp_with_a_fixed_clock_and_single_use_codes() {
        // Many refusals on purpose: the throttle is not what this is about.
        let f = fixture_with(AccountSettings {
            sign_in_account_rate: Quota {
                burst: 100,
                per_minute: 100,
            },
            ..AccountSettings::default()
        })
        .await;
        let ada = f.user("ada@example.com", Role::Admin).await;
        let enrolment = f.service.totp_enrol(&ada).await.unwrap();
        assert!(enrolment.otpauth_uri.contains(&enrolment.secret));
        let secret = account::totp_secret_from_base32(&enrolment.secret).unwrap();
        // Not enabled until confirmed: signing in needs no code yet.
        f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();

        let step = account::totp_step(f.clock.now());
        let wrong = f.service.totp_confirm(&ada, "000000").await;
        if account::totp_code(&secret, step).unwrap() != "000000" {
            assert_eq!(wrong.unwrap_err().code, ErrorCode::InvalidTotpCode);
        }
        let codes = f
            .service
            .totp_confirm(&ada, &account::totp_code(&secret, step).unwrap())
            .await
            .unwrap();
        assert_eq!(codes.len(), 10);
        let ada = f.store.get_user(ada.id).await.unwrap().unwrap();
        assert!(ada.totp_enabled);
        // Sealed at rest: the database does not hold the secret itself.
        let stored = f
            .store
            .user_credentials_by_id(ada.id)
            .await
            .unwrap()
            .unwrap()
            .totp_secret
            .unwrap();
        assert!(stored.starts_with("enc:v1:"), "{stored}");
        assert!(!stored.contains(&enrolment.secret));

        // Now the code is needed; the confirming code is used already.
        let err = f
            .sign_in("ada@example.com", PASSWORD, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCredentials);
        let used = account::totp_code(&secret, step).unwrap();
        assert!(f
            .sign_in("ada@example.com", PASSWORD, Some(&used))
            .await
            .is_err());
        // The next step's code (one step of skew) works once.
        let next = account::totp_code(&secret, step + 1).unwrap();
        f.sign_in("ada@example.com", PASSWORD, Some(&next))
            .await
            .unwrap();
        assert!(f
            .sign_in("ada@example.com", PASSWORD, Some(&next))
            .await
            .is_err());
        // Two steps ahead is out of the window.
        f.clock.advance(30_000);
        let far = account::totp_code(&secret, step + 3).unwrap();
        assert!(f
            .sign_in("ada@example.com", PASSWORD, Some(&far))
            .await
            .is_err());
        // A wrong password with a right code is refused alike.
        let now_code = account::totp_code(&secret, step + 2).unwrap();
        let err = f
            .sign_in("ada@example.com", "wrong password!!", Some(&now_code))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCredentials);

        // Recovery codes: each once, in any case.
        let f2 = &f;
        f2.sign_in("ada@example.com", PASSWORD, Some(&codes[0].to_uppercase()))
            .await
            .unwrap();
        assert!(f2
            .sign_in("ada@example.com", PASSWORD, Some(&codes[0]))
            .await
            .is_err());
        f2.sign_in("ada@example.com", PASSWORD, Some(&codes[1]))
            .await
            .unwrap();
        assert_eq!(f.store.count_recovery_codes(ada.id).await.unwrap(), 8);

        // Disabling needs the password.
        let err = f
            .service
            .totp_disable(&ada, "wrong password!!", None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongPassword);
        let off = f.service.totp_disable(&ada, PASSWORD, None).await.unwrap();
        assert!(!off.totp_enabled);
        f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        let actions = f.actions().await;
        assert!(actions.contains(&(
            "user:ada@example.com".to_string(),
            "user.totp_enable".to_string()
        )));
        assert!(actions.contains(&(
            "user:ada@example.com".to_string(),
            "user.totp_disable".to_string()
        )));
    }

    #[tokio::test]
    async fn a_password_change_needs_the_current_one_and_ends_other_sessions() {
        let f = fixture().await;
        let ada = f.user("ada@example.com", Role::Admin).await;
        let other = f.sign_in("ada@example.com", PASSWORD, None).await.unwrap();
        let err = f
            .service
            .change_password(&ada, "not the password", "a brand new password", None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongPassword);
        let err = f
            .service
            .change_password(&ada, PASSWORD, "short", None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::PasswordTooShort);
        f.service
            .authenticate(&other.token, None, false)
            .await
            .unwrap();

        let fresh = f
            .service
            .change_password(&ada, PASSWORD, "a brand new password", None)
            .await
            .unwrap();
        assert!(f
            .service
            .authenticate(&other.token, None, false)
            .await
            .is_err());
        f.service
            .authenticate(&fresh.token, None, false)
            .await
            .unwrap();
        assert!(f.sign_in("ada@example.com", PASSWORD, None).await.is_err());
        f.sign_in("ada@example.com", "a brand new password", None)
            .await
            .unwrap();
        assert!(f.actions().await.contains(&(
            "user:ada@example.com".to_string(),
            "user.password_change".to_string()
        )));
    }

    #[tokio::test]
    async fn admins_manage_users_but_not_the_last_admin_away() {
        let f = fixture().await;
        let root = f.user("root@example.com", Role::Admin).await;
        let actor = Actor::User(root.clone());
        let err = f
            .service
            .update_user(
                &actor,
                root.id,
                UserPatch {
                    role: Some(Role::Viewer),
                    ..UserPatch::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::LastAdmin);
        let err = f
            .service
            .update_user(
                &actor,
                root.id,
                UserPatch {
                    disabled: Some(true),
                    ..UserPatch::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::LastAdmin);

        let err = f
            .service
            .create_user(
                &actor,
                CreateUser {
                    email: "ROOT@example.com".into(),
                    password: PASSWORD.into(),
                    role: Role::Viewer,
                    apps: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UserAlreadyExists);
        let pub_user = f
            .service
            .create_user(
                &actor,
                CreateUser {
                    email: "pub@example.com".into(),
                    password: PASSWORD.into(),
                    role: Role::Publisher,
                    apps: Some(vec!["com.example.a".into()]),
                },
            )
            .await
            .unwrap();
        assert!(pub_user.can_see("com.example.a") && !pub_user.can_see("com.example.b"));
        let err = f
            .service
            .update_user(
                &actor,
                pub_user.id,
                UserPatch {
                    apps: Some(Some(vec![])),
                    ..UserPatch::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidAppList);
        let missing = f
            .service
            .update_user(&actor, 999, UserPatch::default())
            .await
            .unwrap_err();
        assert_eq!(missing.code, ErrorCode::UserNotFound);

        let session = f.sign_in("pub@example.com", PASSWORD, None).await.unwrap();
        f.service
            .reset_password(&actor, pub_user.id, "reset by the admin")
            .await
            .unwrap();
        assert!(f
            .service
            .authenticate(&session.token, None, false)
            .await
            .is_err());
        f.sign_in("pub@example.com", "reset by the admin", None)
            .await
            .unwrap();
        let actions = f.actions().await;
        assert!(actions.contains(&(
            "user:root@example.com".to_string(),
            "user.create".to_string()
        )));
        assert!(actions.contains(&(
            "user:root@example.com".to_string(),
            "user.password_reset".to_string()
        )));
    }

    #[tokio::test]
    async fn the_bootstrap_admin_is_created_once_and_never_overwritten() {
        let f = fixture().await;
        let made = f
            .service
            .bootstrap_admin("Root@Example.com", PASSWORD)
            .await
            .unwrap();
        assert_eq!(
            made.map(|u| (u.email, u.role)),
            Some(("root@example.com".to_string(), Role::Admin))
        );
        let again = f
            .service
            .bootstrap_admin("root@example.com", "another password!")
            .await
            .unwrap();
        assert_eq!(again, None);
        // The first password still works: nothing was overwritten.
        f.sign_in("root@example.com", PASSWORD, None).await.unwrap();
        let err = f
            .service
            .bootstrap_admin("root@example.com", "short")
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::PasswordTooShort);
    }

    #[tokio::test]
    async fn unknown_emails_are_checked_against_the_dummy_hash() {
        // The dummy hash is a real argon2id hash, so an unknown email costs
        // one full verification like a known one (no early answer).
        let hash = account::dummy_password_hash();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let f = fixture().await;
        let err = f
            .sign_in("nobody@example.com", PASSWORD, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidCredentials);
    }
}
