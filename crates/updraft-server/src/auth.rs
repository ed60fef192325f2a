//! Who calls the management API: an API key (stored hashed) found by its
//! secret, its role and optional app scope, and the throttle on failed
//! authentications per client address.
//!
//! [`AuthService`] decides from what the HTTP layer extracted (the token and
//! the peer address; see the `Caller` extractor in `api`), reading the time
//! from the injected clock only: key expiry and the failure throttle follow
//! the same clock as everything else.

use crate::error::{ApiError, ErrorCode};
use crate::limiter::{KeyedLimiter, Quota};
use crate::metrics::{rate_scope, Metrics};
use axum::http::StatusCode;
use std::net::IpAddr;
use std::sync::Arc;
use updraft_core::model::{ApiKey, Clock, Role};
use updraft_store::ApiKeyStore;

/// The one answer to an unknown, revoked or expired key.
pub const INVALID_KEY_MESSAGE: &str = "invalid API key: unknown, revoked or expired";

/// Characters of a failed key written to the log: the prefix `updraft
/// apikey list` shows.
const KEY_PREFIX_LOGGED: usize = 8;

/// Who is behind an authenticated management request: an API key, or a
/// console user signed in with a session cookie. A user's role and app
/// scope apply exactly as a key's do.
#[derive(Clone, Debug)]
pub enum Principal {
    Key(ApiKey),
    User(updraft_core::account::User),
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
}

impl Caller {
    pub fn key(key: ApiKey) -> Caller {
        Caller {
            principal: Principal::Key(key),
        }
    }

    pub fn user(user: updraft_core::account::User) -> Caller {
        Caller {
            principal: Principal::User(user),
        }
    }

    pub fn role(&self) -> Role {
        match &self.principal {
            Principal::Key(key) => key.role,
            Principal::User(user) => user.role,
        }
    }

    /// The apps the caller is limited to; `None` = every app.
    pub fn apps(&self) -> Option<Vec<String>> {
        match &self.principal {
            Principal::Key(key) => key.app_id.clone().map(|app| vec![app]),
            Principal::User(user) => user.apps.clone(),
        }
    }

    /// The one app a caller limited to exactly one app acts on (what lists
    /// default to); `None` for every other caller.
    pub fn sole_app(&self) -> Option<String> {
        match self.apps() {
            Some(apps) if apps.len() == 1 => apps.into_iter().next(),
            _ => None,
        }
    }

    /// How the caller appears in the audit log: `key:<name>` or `user:<email>`.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Key(key) => format!("key:{}", key.name),
            Principal::User(user) => user.actor(),
        }
    }

    /// The API key's id, for the audit log.
    pub fn api_key_id(&self) -> Option<i64> {
        match &self.principal {
            Principal::Key(key) => Some(key.id),
            Principal::User(_) => None,
        }
    }

    fn noun(&self) -> &'static str {
        match &self.principal {
            Principal::Key(_) => "API key",
            Principal::User(_) => "user",
        }
    }

    /// Refuses unless the caller has at least `role`.
    pub fn require_role(&self, role: Role) -> Result<(), ApiError> {
        if self.role() < role {
            return Err(ApiError::forbidden(format!(
                "this {}'s role ({}) cannot do this; it needs {}",
                self.noun(),
                self.role().as_str(),
                role.as_str()
            )));
        }
        Ok(())
    }

    /// Refuses unless the caller has at least `role` and, for an app-scoped
    /// caller, the request is about one of its apps (`app_id: None` = not
    /// about one app).
    pub fn require(&self, role: Role, app_id: Option<&str>) -> Result<(), ApiError> {
        self.require_role(role)?;
        match (self.apps(), app_id) {
            (Some(scope), Some(app)) if !scope.iter().any(|s| s == app) => {
                Err(ApiError::forbidden(format!(
                    "this {} is limited to app {}",
                    self.noun(),
                    scope.join(", ")
                )))
            }
            (Some(scope), None) => Err(ApiError::forbidden(format!(
                "this {} is limited to app {} and cannot act on the whole server",
                self.noun(),
                scope.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// Uploading needs the publisher role; app-scoped callers may upload too
    /// (blobs belong to no app until a bundle of theirs references them).
    pub fn require_uploader(&self) -> Result<(), ApiError> {
        if self.role() < Role::Publisher {
            return Err(ApiError::forbidden(format!(
                "this {}'s role ({}) cannot upload; it needs publisher",
                self.noun(),
                self.role().as_str()
            )));
        }
        Ok(())
    }

    /// Whether the caller may see this app at all.
    pub fn can_see(&self, app_id: &str) -> bool {
        self.apps()
            .is_none_or(|scope| scope.iter().any(|s| s == app_id))
    }
}

/// API-key authentication with its failure throttle.
pub struct AuthService {
    keys: Arc<dyn ApiKeyStore>,
    clock: Arc<dyn Clock>,
    /// Keyed by client address; takes a token per failed authentication.
    failures: KeyedLimiter,
    metrics: Arc<Metrics>,
}

impl AuthService {
    /// `failure_quota` failed authentications per client address (the
    /// `auth_failure_rate` limit), remembering at most `max_clients` addresses.
    pub fn new(
        keys: Arc<dyn ApiKeyStore>,
        clock: Arc<dyn Clock>,
        failure_quota: Quota,
        max_clients: usize,
        metrics: Arc<Metrics>,
    ) -> AuthService {
        AuthService {
            keys,
            clock,
            failures: KeyedLimiter::new(failure_quota, max_clients),
            metrics,
        }
    }

    /// The caller behind `token` (the secret sent, if any) from `client` (the
    /// peer address; `None` in in-process tests without a listener).
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let now = self.clock.now();
        // An address that failed too often is refused before its key is
        // even looked at, so guessing keys gets nowhere.
        if let Some(retry) = self.failures.blocked(client, now) {
            self.metrics.record_rate_limited(rate_scope::AUTH_FAILURES);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAuthFailures,
                "too many failed authentications from this address; retry later",
            )
            .with("retry_after_seconds", retry.0));
        }
        let token = token.filter(|t| !t.is_empty());
        let found = match token {
            Some(token) => self.keys.find_api_key(token).await?,
            None => None,
        };
        match (token, found) {
            (Some(_), Some(key)) if key.is_usable(now) => Ok(Caller::key(key)),
            (token, found) => {
                let reason = match (&token, &found) {
                    (None, _) => "missing",
                    (Some(_), None) => "unknown",
                    (Some(_), Some(_)) => "revoked_or_expired",
                };
                // Only the public prefix of what was sent: never a whole secret.
                let prefix: String = token
                    .unwrap_or("")
                    .chars()
                    .take(KEY_PREFIX_LOGGED)
                    .collect();
                tracing::warn!(client = %client_label(client), key_prefix = %prefix, reason, "management authentication failed");
                self.metrics.record_auth_failure();
                let _ = self.failures.check(client, now);
                Err(match token {
                    None => {
                        ApiError::unauthorized("missing API key: send Authorization: Bearer <key>")
                    }
                    // One sentence whatever the reason, so a guess learns nothing.
                    Some(_) => ApiError::unauthorized(INVALID_KEY_MESSAGE),
                })
            }
        }
    }
}

fn client_label(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}
