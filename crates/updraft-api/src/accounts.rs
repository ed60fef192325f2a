//! Console accounts and sessions: the wire types of `/api/v1/session`,
//! `/api/v1/account/…` and `/api/v1/users`.

use crate::management::rfc3339;
use serde::{Deserialize, Serialize};
use updraft_core::account::User;
use utoipa::ToSchema;

/// A console user (never a password hash, TOTP secret or recovery code).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    /// `admin`, `publisher` or `viewer` (the API keys' roles).
    pub role: String,
    /// Limited to these apps; `null` = every app.
    pub apps: Option<Vec<String>>,
    pub disabled: bool,
    pub totp_enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    pub password_changed_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            role: u.role.as_str().to_string(),
            apps: u.apps,
            disabled: u.disabled,
            totp_enabled: u.totp_enabled,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
            password_changed_at: rfc3339(u.password_changed_at),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// `POST /api/v1/session`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
    /// The authenticator app's 6-digit code, or a recovery code, when the
    /// account has a second factor.
    #[serde(default)]
    pub code: Option<String>,
}

/// The signed-in user and the CSRF token to send in `X-CSRF-Token` with
/// every state-changing request.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct SessionView {
    pub user: UserView,
    pub csrf_token: String,
    pub expires_at: String,
}

/// `POST /api/v1/account/password`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /api/v1/account/totp`: what the authenticator app needs.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct TotpEnrolmentView {
    /// Base32 secret, for typing in.
    pub secret: String,
    /// `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// `POST /api/v1/account/totp/confirm`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotp {
    pub code: String,
}

/// The ten single-use recovery codes, shown once.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `DELETE /api/v1/account/totp`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    pub password: String,
}

/// `POST /api/v1/users`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub email: String,
    /// At least 12 characters, at most 1,024 bytes.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    #[schema(value_type = crate::management::RoleName)]
    pub role: String,
    /// `null` or absent = every app; else at least one app id.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub apps: Option<Vec<String>>,
}

/// `PATCH /api/v1/users/{id}`: absent fields stay.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    #[serde(default)]
    #[schema(value_type = Option<crate::management::RoleName>)]
    pub role: Option<String>,
    /// `[..]` = these apps (at least one); `null` = every app; absent = unchanged.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Vec<String>>, min_items = 1)]
    pub apps: Option<Option<Vec<String>>>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password set by the admin.
    #[serde(default)]
    pub password: Option<String>,
}

/// `null` and absent told apart.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}
