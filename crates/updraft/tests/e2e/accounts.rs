//! Console accounts through the real binary: `updraft user add` offline,
//! sign-in over HTTP, the session cookie's flags, CSRF on writes, roles,
//! throttling, sign-out everywhere and the start-up admin.

use crate::harness::{bin, Server, APP};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const PASSWORD: &str = "correct horse battery";

/// `updraft user …` with the password on stdin; (exit code, stdout, stderr).
fn user_cli(data_dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .arg("user")
        .args(args)
        .env("UPDRAFT_DATA_DIR", data_dir)
        .env_remove("UPDRAFT_SERVER")
        .env_remove("UPDRAFT_APIKEY")
        .env_remove("UPDRAFT_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run updraft user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn add_user(data_dir: &Path, email: &str, role: &str) {
    let (code, out, err) = user_cli(
        data_dir,
        &["add", email, "--role", role, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, 0, "user add: {out} {err}");
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
    set_cookie: String,
}

async fn sign_in_raw(
    s: &Server,
    email: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = s
        .http
        .post(format!("{}/api/v1/session", s.url))
        .json(&json!({"email": email, "password": password}));
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.send().await.expect("sign in")
}

async fn sign_in(s: &Server, email: &str) -> Browser {
    sign_in_with(s, email, &[]).await
}

async fn sign_in_with(s: &Server, email: &str, extra: &[(&str, &str)]) -> Browser {
    let resp = sign_in_raw(s, email, PASSWORD, extra).await;
    assert_eq!(resp.status(), 201);
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let cookie = set_cookie.split(';').next().unwrap().trim().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], email.to_lowercase());
    Browser {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        set_cookie,
    }
}

/// A management call with the browser's cookie and the given CSRF header.
async fn as_browser(
    s: &Server,
    browser: &Browser,
    csrf: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = s
        .http
        .request(method, format!("{}{}", s.url, path))
        .header("cookie", &browser.cookie);
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    Server::read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_user_added_offline_signs_in_and_writes_need_the_csrf_token() {
    let s = Server::start().await;
    add_user(&s.data_dir, "Ada@Example.com", "admin");
    let browser = sign_in(&s, "ada@example.com").await;
    // The cookie: HttpOnly, SameSite, the whole site; not Secure over plain HTTP.
    let flags = browser.set_cookie.to_lowercase();
    for flag in ["httponly", "samesite=strict", "path=/", "max-age=604800"] {
        assert!(
            flags.contains(flag),
            "{flag} missing: {}",
            browser.set_cookie
        );
    }
    assert!(!flags.contains("secure"), "{}", browser.set_cookie);
    assert!(browser.cookie.starts_with("updraft_session="));

    // Who am I, with the same CSRF token.
    let (st, me) = as_browser(&s, &browser, None, Method::GET, "/api/v1/session", None).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(
        (me["user"]["role"].as_str(), me["csrf_token"].as_str()),
        (Some("admin"), Some(browser.csrf.as_str()))
    );
    // Reads need no CSRF token.
    let (st, _) = as_browser(&s, &browser, None, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(st, 200);

    // A write with the cookie but without / with a wrong token: 403, nothing made.
    let app = json!({"app_id": APP, "name": "Example"});
    for csrf in [None, Some("wrong"), Some("")] {
        let (st, body) =
            as_browser(&s, &browser, csrf, Method::POST, "/api/v1/apps", Some(&app)).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (403, Some("csrf_token_invalid")),
            "{csrf:?}: {body}"
        );
    }
    let (st, _) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}"), None)
        .await;
    assert_eq!(st, 404, "a refused write changed something");

    // With the token: made, and audited as the user.
    let (st, body) = as_browser(
        &s,
        &browser,
        Some(&browser.csrf),
        Method::POST,
        "/api/v1/apps",
        Some(&app),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, audit) = s
        .api(Method::GET, "/api/v1/audit?action=app.create", None)
        .await;
    assert_eq!(st, 200, "{audit}");
    assert_eq!(
        audit["entries"][0]["actor"], "user:ada@example.com",
        "{audit}"
    );

    // A Bearer key never needs a CSRF token, even next to a cookie-less call.
    let (st, _) = s
        .api(
            Method::PATCH,
            &format!("/api/v1/apps/{APP}"),
            Some(&json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(st, 200);

    // Sign out: the cookie is cleared and no longer accepted.
    let (st, _) = as_browser(
        &s,
        &browser,
        Some(&browser.csrf),
        Method::DELETE,
        "/api/v1/session",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, body) = as_browser(&s, &browser, None, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("session_invalid")),
        "{body}"
    );
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_client_came_over_https() {
    let s = Server::start().await;
    add_user(&s.data_dir, "ada@example.com", "admin");
    // Loopback is a trusted proxy by default: its X-Forwarded-Proto is believed.
    let browser = sign_in_with(&s, "ada@example.com", &[("x-forwarded-proto", "https")]).await;
    assert!(
        browser.set_cookie.contains("; Secure"),
        "{}",
        browser.set_cookie
    );
}

#[tokio::test]
async fn a_viewer_is_refused_a_write_and_roles_apply_as_for_keys() {
    let s = Server::start().await;
    add_user(&s.data_dir, "viewer@example.com", "viewer");
    let browser = sign_in(&s, "viewer@example.com").await;
    let (st, body) = as_browser(
        &s,
        &browser,
        Some(&browser.csrf),
        Method::POST,
        "/api/v1/apps",
        Some(&json!({"app_id": APP, "name": "Example"})),
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (st, _) = as_browser(&s, &browser, None, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(st, 200);
    // Only admins manage users.
    let (st, _) = as_browser(&s, &browser, None, Method::GET, "/api/v1/users", None).await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_throttled() {
    let s = Server::start().await;
    add_user(&s.data_dir, "ada@example.com", "admin");
    for _ in 0..5 {
        let resp = sign_in_raw(&s, "ada@example.com", "not the password", &[]).await;
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().get("set-cookie").is_none());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_credentials");
    }
    // The account is throttled now, even with the right password.
    let resp = sign_in_raw(&s, "ada@example.com", PASSWORD, &[]).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_sign_in_attempts");
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session() {
    let s = Server::start().await;
    add_user(&s.data_dir, "ada@example.com", "admin");
    let first = sign_in(&s, "ada@example.com").await;
    let second = sign_in(&s, "ada@example.com").await;
    assert_ne!(first.cookie, second.cookie);
    let (st, _) = as_browser(
        &s,
        &second,
        Some(&second.csrf),
        Method::DELETE,
        "/api/v1/sessions",
        None,
    )
    .await;
    assert_eq!(st, 204);
    for browser in [&first, &second] {
        let (st, _) = as_browser(&s, browser, None, Method::GET, "/api/v1/session", None).await;
        assert_eq!(st, 401);
    }
    let (_, audit) = s.api(Method::GET, "/api/v1/audit?action=user.", None).await;
    assert_eq!(
        audit["entries"][0]["action"], "user.sign_out_everywhere",
        "{audit}"
    );
    assert_eq!(audit["entries"][0]["actor"], "user:ada@example.com");
}

#[tokio::test]
async fn the_start_up_admin_is_created_once_and_never_overwritten() {
    let env = [
        ("UPDRAFT_ADMIN_EMAIL", "Root@Example.com"),
        ("UPDRAFT_ADMIN_PASSWORD", PASSWORD),
    ];
    let mut s = Server::start_with(&env).await;
    sign_in(&s, "root@example.com").await;
    // Restarted with another password: the existing admin stays as it was.
    let data_dir = s.data_dir.clone();
    s.sigkill();
    let other = [
        ("UPDRAFT_ADMIN_EMAIL", "root@example.com"),
        ("UPDRAFT_ADMIN_PASSWORD", "a different long password"),
    ];
    let mut again = Server::spawn(&data_dir, &other);
    again.key = std::mem::take(&mut s.key);
    sign_in(&again, "root@example.com").await;
    let resp = sign_in_raw(&again, "root@example.com", "a different long password", &[]).await;
    assert_eq!(resp.status(), 401);
    let (code, out, err) = user_cli(&data_dir, &["list", "--json"], "");
    assert_eq!(code, 0, "{out} {err}");
    let users: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users["users"][0]["role"], "admin");
}

#[tokio::test]
async fn user_commands_refuse_short_passwords_and_change_roles() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (code, _, err) = user_cli(
        &data_dir,
        &[
            "add",
            "ada@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("at least 12 characters"), "{err}");
    // No terminal and no --password-stdin: a clear refusal, not a hang.
    let (code, _, err) = user_cli(
        &data_dir,
        &["add", "ada@example.com", "--role", "admin"],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("--password-stdin"), "{err}");

    add_user(&data_dir, "ada@example.com", "publisher");
    let (code, out, err) = user_cli(
        &data_dir,
        &["set-role", "ada@example.com", "viewer", "--json"],
        "",
    );
    assert_eq!(code, 0, "{out} {err}");
    let user: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(user["role"], "viewer");
    let (code, out, _) = user_cli(&data_dir, &["list"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("ada@example.com") && out.contains("viewer"),
        "{out}"
    );
}

#[tokio::test]
async fn a_second_factor_is_enrolled_over_http_and_then_required() {
    use updraft_core::account::{totp_code, totp_secret_from_base32, totp_step};
    let s = Server::start().await;
    add_user(&s.data_dir, "ada@example.com", "admin");
    let browser = sign_in(&s, "ada@example.com").await;
    let (st, enrolment) = as_browser(
        &s,
        &browser,
        Some(&browser.csrf),
        Method::POST,
        "/api/v1/account/totp",
        None,
    )
    .await;
    assert_eq!(st, 200, "{enrolment}");
    let secret = totp_secret_from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let step = totp_step(now);
    let code = totp_code(&secret, step).unwrap();
    let (st, confirmed) = as_browser(
        &s,
        &browser,
        Some(&browser.csrf),
        Method::POST,
        "/api/v1/account/totp/confirm",
        Some(&json!({"code": code})),
    )
    .await;
    assert_eq!(st, 200, "{confirmed}");
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);

    // The password alone no longer signs in; the used code neither.
    let resp = sign_in_raw(&s, "ada@example.com", PASSWORD, &[]).await;
    assert_eq!(resp.status(), 401);
    let with_code = |code: &str| {
        s.http
            .post(format!("{}/api/v1/session", s.url))
            .json(&json!({"email": "ada@example.com", "password": PASSWORD, "code": code}))
            .send()
    };
    assert_eq!(with_code(&code).await.unwrap().status(), 401);
    // The next step's code (one step of skew) works once; a recovery code once.
    let next = totp_code(&secret, step + 1).unwrap();
    assert_eq!(with_code(&next).await.unwrap().status(), 201);
    assert_eq!(with_code(&recovery[0]).await.unwrap().status(), 201);
    assert_eq!(with_code(&recovery[0]).await.unwrap().status(), 401);
    let (_, audit) = s
        .api(Method::GET, "/api/v1/audit?action=user.totp_enable", None)
        .await;
    assert_eq!(
        audit["entries"][0]["actor"], "user:ada@example.com",
        "{audit}"
    );
}

#[tokio::test]
async fn a_user_limited_to_apps_acts_on_those_apps_only() {
    let s = Server::start().await;
    for (app, name) in [
        (APP, "Example"),
        ("com.example.two", "Two"),
        ("com.example.other", "Other"),
    ] {
        let (st, body) = s
            .api(
                Method::POST,
                "/api/v1/apps",
                Some(&json!({"app_id": app, "name": name})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    let (code, out, err) = user_cli(
        &s.data_dir,
        &[
            "add",
            "pub@example.com",
            "--role",
            "publisher",
            "--app",
            APP,
            "--app",
            "com.example.two",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, 0, "{out} {err}");
    let browser = sign_in(&s, "pub@example.com").await;
    // The list shows its apps only.
    let (st, apps) = as_browser(&s, &browser, None, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(st, 200, "{apps}");
    let mut ids: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["com.example.app", "com.example.two"]);
    let channel = json!({"name": "beta"});
    for (app, expected) in [
        (APP, 201),
        ("com.example.two", 201),
        ("com.example.other", 403),
    ] {
        let (st, body) = as_browser(
            &s,
            &browser,
            Some(&browser.csrf),
            Method::POST,
            &format!("/api/v1/apps/{app}/channels"),
            Some(&channel),
        )
        .await;
        assert_eq!(st, expected, "{app}: {body}");
    }
}
