//! Console sign-in, the session, the user's own account and, for admins,
//! the users (the work is [`crate::accounts::AccountService`]'s).
//!
//! The session token travels only in the `updraft_session` cookie
//! (HttpOnly, SameSite=Strict, Path=/, Secure when the client came over
//! HTTPS); the CSRF token is answered in the body and must come back in
//! `X-CSRF-Token` with every state-changing request that uses the cookie.

use super::views::ErrorView;
use super::{Caller, JsonBody};
use crate::accounts::{Actor, CreateUser, SessionUser, SignInRequest, SignedIn};
use crate::api::Path;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use updraft_api::{
    ChangePassword, ConfirmTotp, CreateUserBody, DisableTotp, RecoveryCodes, SessionView, SignIn,
    TotpEnrolmentView, UpdateUserBody, UserList, UserView,
};
use updraft_core::analytics::rfc3339;
use updraft_core::model::Role;
use updraft_store::UserPatch;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "updraft_session";
/// The header a state-changing request with the cookie carries.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether a method changes something (and so needs the CSRF token).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// Whether the client reached us over HTTPS (directly or through a trusted proxy).
fn came_over_https(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<crate::proxy::Client>()
        .is_some_and(|client| client.https)
}

/// The `Set-Cookie` of a session (`max_age` seconds; 0 deletes it).
pub fn session_set_cookie(token: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// What the HTTP layer knows of the request beyond its body.
pub struct RequestContext {
    pub https: bool,
    pub client: Option<std::net::IpAddr>,
    pub cookie: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestContext {
            https: came_over_https(parts),
            client: crate::proxy::client_ip(&parts.extensions),
            cookie: session_cookie(&parts.headers).map(str::to_string),
        })
    }
}

/// A request made with a valid session cookie (and, when it changes
/// something, the session's CSRF token).
pub struct SessionCaller {
    pub session: SessionUser,
    pub token: String,
    pub https: bool,
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = session_cookie(&parts.headers).map(str::to_string) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SessionInvalid,
                "not signed in: sign in with POST /api/v1/session",
            ));
        };
        let session = state
            .accounts
            .authenticate(
                &token,
                csrf_header(&parts.headers),
                is_state_changing(&parts.method),
            )
            .await?;
        Ok(SessionCaller {
            session,
            token,
            https: came_over_https(parts),
        })
    }
}

fn session_view(signed: &SignedIn) -> SessionView {
    SessionView {
        user: UserView::from(signed.user.clone()),
        csrf_token: signed.session.csrf_token.clone(),
        expires_at: rfc3339(signed.session.expires_at),
    }
}

/// The answer that sets a new session cookie.
fn with_cookie(state: &AppState, signed: &SignedIn, https: bool, status: StatusCode) -> Response {
    let cookie = session_set_cookie(
        &signed.token,
        state.accounts.settings().session_lifetime_secs,
        https,
    );
    let mut response = (status, Json(session_view(signed))).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn clear_cookie(https: bool) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&session_set_cookie("", 0, https)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", operation_id = "sign_in", request_body = SignIn,
    responses((status = 201, body = SessionView, description = "signed in; the session cookie is set"),
              (status = 401, body = ErrorView, description = "invalid_credentials"),
              (status = 429, body = ErrorView, description = "too_many_sign_in_attempts, with Retry-After")))]
pub async fn sign_in(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    let signed = state
        .accounts
        .sign_in(SignInRequest {
            email: body.email,
            password: body.password,
            code: body.code,
            client: context.client,
            previous_token: context.cookie,
        })
        .await?;
    Ok(with_cookie(
        &state,
        &signed,
        context.https,
        StatusCode::CREATED,
    ))
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session", operation_id = "show_session",
    responses((status = 200, body = SessionView), (status = 401, body = ErrorView)))]
pub async fn show(caller: SessionCaller) -> Json<SessionView> {
    Json(SessionView {
        user: UserView::from(caller.session.user),
        csrf_token: caller.session.session.csrf_token,
        expires_at: rfc3339(caller.session.session.expires_at),
    })
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session", operation_id = "sign_out",
    responses((status = 204, description = "signed out; the cookie is cleared"), (status = 401, body = ErrorView), (status = 403, body = ErrorView)))]
pub async fn sign_out(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Response, ApiError> {
    state.accounts.sign_out(&caller.token).await?;
    Ok(clear_cookie(caller.https))
}

#[utoipa::path(delete, path = "/api/v1/sessions", tag = "session", operation_id = "sign_out_everywhere",
    responses((status = 204, description = "every session of the user ended"), (status = 401, body = ErrorView), (status = 403, body = ErrorView)))]
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Response, ApiError> {
    state
        .accounts
        .sign_out_everywhere(&caller.session.user)
        .await?;
    Ok(clear_cookie(caller.https))
}

#[utoipa::path(post, path = "/api/v1/account/password", tag = "session", operation_id = "change_password", request_body = ChangePassword,
    responses((status = 200, body = SessionView, description = "changed; every other session ended, this one renewed"),
              (status = 400, body = ErrorView), (status = 403, body = ErrorView)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: SessionCaller,
    context: RequestContext,
    JsonBody(body): JsonBody<ChangePassword>,
) -> Result<Response, ApiError> {
    let signed = state
        .accounts
        .change_password(
            &caller.session.user,
            &body.current_password,
            &body.new_password,
            context.client,
        )
        .await?;
    Ok(with_cookie(&state, &signed, caller.https, StatusCode::OK))
}

#[utoipa::path(post, path = "/api/v1/account/totp", tag = "session", operation_id = "enrol_totp",
    responses((status = 200, body = TotpEnrolmentView), (status = 409, body = ErrorView)))]
pub async fn totp_enrol(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Json<TotpEnrolmentView>, ApiError> {
    let enrolment = state.accounts.totp_enrol(&caller.session.user).await?;
    Ok(Json(TotpEnrolmentView {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

#[utoipa::path(delete, path = "/api/v1/account/totp", tag = "session", operation_id = "disable_totp", request_body = DisableTotp,
    responses((status = 200, body = UserView), (status = 403, body = ErrorView)))]
pub async fn totp_disable(
    State(state): State<AppState>,
    caller: SessionCaller,
    context: RequestContext,
    JsonBody(body): JsonBody<DisableTotp>,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .accounts
        .totp_disable(&caller.session.user, &body.password, context.client)
        .await?;
    Ok(Json(UserView::from(user)))
}

#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "session", operation_id = "confirm_totp", request_body = ConfirmTotp,
    responses((status = 200, body = RecoveryCodes, description = "enabled; the recovery codes are shown once"),
              (status = 400, body = ErrorView), (status = 409, body = ErrorView)))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    caller: SessionCaller,
    JsonBody(body): JsonBody<ConfirmTotp>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let recovery_codes = state
        .accounts
        .totp_confirm(&caller.session.user, &body.code)
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

fn actor_of(caller: &Caller) -> Actor {
    match &caller.principal {
        Principal::User(user) => Actor::User(user.clone()),
        Principal::Key(key) => Actor::Key {
            name: key.name.clone(),
            id: key.id,
        },
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text.trim()).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidRole,
            format!("role must be admin, publisher or viewer, got {text:?}"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    responses((status = 200, body = UserList), (status = 403, body = ErrorView)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    caller.require(Role::Admin, None)?;
    Ok(Json(UserList {
        users: state
            .accounts
            .list_users()
            .await?
            .into_iter()
            .map(UserView::from)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_users", request_body = CreateUserBody,
    responses((status = 201, body = UserView), (status = 400, body = ErrorView), (status = 403, body = ErrorView), (status = 409, body = ErrorView)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(Role::Admin, None)?;
    let role = parse_role(&body.role)?;
    let user = state
        .accounts
        .create_user(
            &actor_of(&caller),
            CreateUser {
                email: body.email,
                password: body.password,
                role,
                apps: body.apps,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(user))))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "update_users", request_body = UpdateUserBody,
    params(("id" = i64, Path, description = "the user's id")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorView), (status = 403, body = ErrorView),
              (status = 404, body = ErrorView), (status = 409, body = ErrorView, description = "last_admin")))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(Role::Admin, None)?;
    let actor = actor_of(&caller);
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let mut user = state
        .accounts
        .update_user(
            &actor,
            id,
            UserPatch {
                role,
                apps: body.apps,
                disabled: body.disabled,
            },
        )
        .await?;
    if let Some(password) = body.password {
        user = state.accounts.reset_password(&actor, id, &password).await?;
    }
    Ok(Json(UserView::from(user)))
}
