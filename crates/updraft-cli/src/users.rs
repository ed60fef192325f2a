//! `updraft user …`: console users, made and changed directly in the data
//! directory's database (or PostgreSQL), like `updraft apikey create`, so
//! the first admin exists before anybody can sign in. Changes are audited
//! as `cli:offline`; a password, role or disable change ends the user's
//! sessions.

use crate::args::RoleArg;
use crate::error::{CliError, LocalCode};
use crate::offline::{offline_audit_entry, record_audit};
use crate::output::Outcome;
use crate::table::Table;
use crate::time::{now_millis, rfc3339, short_time};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::{BufRead, IsTerminal};
use updraft_api::{ErrorCode, UserList, UserView};
use updraft_core::account::{self, AccountInputError, User};
use updraft_core::model::{Millis, Role};
use updraft_store::{AuditStore, NewAuditEntry, NewUser, StoreError, UserPatch, UserStore};

/// The actor of changes made here.

#[derive(Subcommand, Clone, Debug)]
pub enum UserCommand {
    /// Create a console user (password from a prompt, or --password-stdin)
    Add(UserAddArgs),
    /// List console users
    List,
    /// Change a user's role (ends the user's sessions)
    SetRole {
        /// The user's email
        email: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Disable a user: no sign-in, every session ended
    Disable {
        /// The user's email
        email: String,
    },
    /// Enable a disabled user again
    Enable {
        /// The user's email
        email: String,
    },
    /// Set a new password (ends the user's sessions)
    ResetPassword {
        /// The user's email
        email: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Args, Clone, Debug)]
pub struct UserAddArgs {
    /// The user's email (the sign-in name; case does not matter)
    pub email: String,
    /// What the user may do (the API keys' roles)
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Limit the user to this app (repeat for several; default: every app)
    #[arg(long = "app", value_name = "APP_ID")]
    pub apps: Vec<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// Reads the password (before the database is opened), then runs the command.
pub async fn run_user_command(
    command: UserCommand,
    global: &crate::args::GlobalOpts,
) -> Result<Outcome, CliError> {
    let password = match &command {
        UserCommand::Add(args) => Some(read_password(args.password_stdin)?),
        UserCommand::ResetPassword { password_stdin, .. } => Some(read_password(*password_stdin)?),
        _ => None,
    };
    let offline = crate::offline::open_offline_store(global).await?;
    let outcome = user_command(offline.store.as_ref(), command, password, now_millis()).await?;
    Ok(offline
        .notices
        .into_iter()
        .fold(outcome, |outcome, notice| outcome.with_warning(notice)))
}

/// The first line of stdin, or a prompt (twice, not echoed) on a terminal.
fn read_password(from_stdin: bool) -> Result<String, CliError> {
    let failed = |e: std::io::Error| {
        CliError::new(
            LocalCode::InvalidArgument,
            format!("cannot read the password: {e}"),
        )
    };
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(failed)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::invalid_argument(
            "no terminal to ask for the password on: pass it on standard input with --password-stdin",
        ));
    }
    let first = rpassword::prompt_password("Password: ").map_err(failed)?;
    account::check_password(&first).map_err(input_error)?;
    let second = rpassword::prompt_password("Password again: ").map_err(failed)?;
    if first != second {
        return Err(CliError::invalid_argument("the two passwords differ"));
    }
    Ok(first)
}

fn input_error(err: AccountInputError) -> CliError {
    let code = match &err {
        AccountInputError::InvalidEmail(_) => ErrorCode::InvalidEmail,
        AccountInputError::PasswordTooShort => ErrorCode::PasswordTooShort,
        AccountInputError::PasswordTooLong => ErrorCode::PasswordTooLong,
        AccountInputError::EmptyAppList => ErrorCode::InvalidAppList,
        AccountInputError::Hashing(_) => {
            return CliError::new(LocalCode::StorageError, err.to_string())
        }
    };
    CliError::new(code, err.to_string())
}

/// The command against any user store (tests use a temporary one);
/// `password` is what `add` and `reset-password` set.
pub async fn user_command<S: UserStore + AuditStore + ?Sized>(
    store: &S,
    command: UserCommand,
    password: Option<String>,
    now: Millis,
) -> Result<Outcome, CliError> {
    match command {
        UserCommand::Add(args) => {
            let email = account::normalize_email(&args.email).map_err(input_error)?;
            let apps = if args.apps.is_empty() {
                None
            } else {
                account::normalize_apps(Some(args.apps)).map_err(input_error)?
            };
            let password = password.unwrap_or_default();
            let password_hash = account::hash_password(&password).map_err(input_error)?;
            let user = store
                .create_user(
                    NewUser {
                        email: email.clone(),
                        password_hash,
                        role: Role::from(args.role),
                        apps,
                    },
                    now,
                )
                .await
                .map_err(|error| match error {
                    StoreError::AlreadyExists(_) => CliError::new(
                        ErrorCode::UserAlreadyExists,
                        format!("a user {email} already exists"),
                    ),
                    other => CliError::from(other),
                })?;
            let scope = user
                .apps
                .as_ref()
                .map(|apps| format!(", apps {}", apps.join(", ")))
                .unwrap_or_default();
            let outcome = Outcome::new(
                user_json(&user),
                format!(
                    "Created user {} (role {}{scope}).",
                    user.email,
                    user.role.as_str()
                ),
            );
            let entry = entry(now, "user.create", &user, None, Some(user_json(&user)));
            Ok(record_audit(store, entry, outcome).await)
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            Ok(Outcome::new(
                to_json(&UserList {
                    users: users.iter().cloned().map(UserView::from).collect(),
                }),
                users_table(&users),
            ))
        }
        UserCommand::SetRole { email, role } => {
            let patch = UserPatch {
                role: Some(Role::from(role)),
                ..UserPatch::default()
            };
            update(store, &email, patch, now, |u| {
                format!("{} is now {}.", u.email, u.role.as_str())
            })
            .await
        }
        UserCommand::Disable { email } => {
            let patch = UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            };
            update(store, &email, patch, now, |u| {
                format!("Disabled {}; their sessions are ended.", u.email)
            })
            .await
        }
        UserCommand::Enable { email } => {
            let patch = UserPatch {
                disabled: Some(false),
                ..UserPatch::default()
            };
            update(store, &email, patch, now, |u| {
                format!("Enabled {}.", u.email)
            })
            .await
        }
        UserCommand::ResetPassword { email, .. } => {
            let user = find(store, &email).await?;
            let hash =
                account::hash_password(&password.unwrap_or_default()).map_err(input_error)?;
            let user = store.set_password(user.id, &hash, now).await?;
            let outcome = Outcome::new(
                user_json(&user),
                format!(
                    "Set a new password for {}; their sessions are ended.",
                    user.email
                ),
            );
            let entry = entry(now, "user.password_reset", &user, None, None);
            Ok(record_audit(store, entry, outcome).await)
        }
    }
}

async fn find<S: UserStore + ?Sized>(store: &S, email: &str) -> Result<User, CliError> {
    let normalized = account::normalize_email(email).map_err(input_error)?;
    store
        .user_credentials(&normalized)
        .await?
        .map(|c| c.user)
        .ok_or_else(|| CliError::new(ErrorCode::UserNotFound, format!("no user {normalized}")))
}

async fn update<S: UserStore + AuditStore + ?Sized>(
    store: &S,
    email: &str,
    patch: UserPatch,
    now: Millis,
    say: impl Fn(&User) -> String,
) -> Result<Outcome, CliError> {
    let before = find(store, email).await?;
    let after = store.update_user(before.id, patch, now).await?;
    let outcome = Outcome::new(user_json(&after), say(&after));
    if after == before {
        return Ok(outcome);
    }
    let entry = entry(
        now,
        "user.update",
        &after,
        Some(user_json(&before)),
        Some(user_json(&after)),
    );
    Ok(record_audit(store, entry, outcome).await)
}

fn entry(
    now: Millis,
    action: &str,
    user: &User,
    before: Option<Value>,
    after: Option<Value>,
) -> NewAuditEntry {
    offline_audit_entry(now, None, action, &user.email, before, after)
}

fn user_json(user: &User) -> Value {
    to_json(&UserView::from(user.clone()))
}

fn to_json(view: &impl serde::Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

pub fn users_table(users: &[User]) -> String {
    if users.is_empty() {
        return "No users. Create one with `updraft user add EMAIL --role admin`.".to_string();
    }
    let mut table = Table::new(&["ID", "EMAIL", "ROLE", "APPS", "STATUS", "2FA", "CREATED"]);
    for user in users {
        table.push_row(vec![
            user.id.to_string(),
            user.email.clone(),
            user.role.as_str().to_string(),
            user.apps
                .as_ref()
                .map_or_else(|| "all".to_string(), |apps| apps.join(",")),
            if user.disabled { "disabled" } else { "active" }.to_string(),
            if user.totp_enabled { "totp" } else { "-" }.to_string(),
            short_time(&rfc3339(user.created_at)),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::RoleArg;
    use updraft_store::{AuditQuery, NewSession, SessionStore, SqliteStore};

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SqliteStore::open_path(&dir.path().join("t.db"))
            .await
            .unwrap();
        (store, dir)
    }

    fn add(email: &str, role: RoleArg, apps: &[&str]) -> UserCommand {
        UserCommand::Add(UserAddArgs {
            email: email.to_string(),
            role,
            apps: apps.iter().map(|a| a.to_string()).collect(),
            password_stdin: true,
        })
    }

    const PASSWORD: &str = "correct horse battery";

    #[tokio::test]
    async fn add_hashes_the_password_and_audits() {
        let (s, _dir) = store().await;
        let out = user_command(
            &s,
            add(" Ada@Example.com", RoleArg::Admin, &[]),
            Some(PASSWORD.into()),
            1_000,
        )
        .await
        .unwrap();
        assert_eq!(out.json["email"], "ada@example.com");
        assert_eq!(out.json["role"], "admin");
        assert!(out.json.get("password_hash").is_none());
        let creds = s
            .user_credentials("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(account::verify_password(&creds.password_hash, PASSWORD));
        let audit = s
            .list_audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].actor.as_str(), audit[0].action.as_str()),
            ("cli:offline", "user.create")
        );
        assert_eq!(audit[0].target, "ada@example.com");

        let again = user_command(
            &s,
            add("ADA@example.com", RoleArg::Viewer, &[]),
            Some(PASSWORD.into()),
            2_000,
        )
        .await
        .unwrap_err();
        assert!(again.is(&ErrorCode::UserAlreadyExists), "{again:?}");
    }

    #[tokio::test]
    async fn bad_input_is_refused_and_changes_nothing() {
        let (s, _dir) = store().await;
        let short = user_command(
            &s,
            add("ada@example.com", RoleArg::Admin, &[]),
            Some("short".into()),
            1,
        )
        .await
        .unwrap_err();
        assert!(short.is(&ErrorCode::PasswordTooShort), "{short:?}");
        assert!(short.message.contains("12"), "{}", short.message);
        let email = user_command(
            &s,
            add("not-an-email", RoleArg::Admin, &[]),
            Some(PASSWORD.into()),
            1,
        )
        .await
        .unwrap_err();
        assert!(email.is(&ErrorCode::InvalidEmail), "{email:?}");
        assert!(s.list_users().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn role_disable_and_reset_end_sessions() {
        let (s, _dir) = store().await;
        user_command(
            &s,
            add("bob@example.com", RoleArg::Publisher, &["com.b", "com.a"]),
            Some(PASSWORD.into()),
            1,
        )
        .await
        .unwrap();
        let bob = s.list_users().await.unwrap().remove(0);
        assert_eq!(
            bob.apps,
            Some(vec!["com.a".to_string(), "com.b".to_string()])
        );
        let session = |t: &str| NewSession {
            token_hash: t.to_string(),
            user_id: bob.id,
            csrf_token: "c".into(),
            created_at: 1,
            expires_at: 1_000_000,
        };
        s.create_session(session("s1")).await.unwrap();
        let out = user_command(
            &s,
            UserCommand::SetRole {
                email: "BOB@example.com".into(),
                role: RoleArg::Viewer,
            },
            None,
            2,
        )
        .await
        .unwrap();
        assert_eq!(out.json["role"], "viewer");
        assert_eq!(s.get_session("s1").await.unwrap(), None);

        s.create_session(session("s2")).await.unwrap();
        user_command(
            &s,
            UserCommand::Disable {
                email: "bob@example.com".into(),
            },
            None,
            3,
        )
        .await
        .unwrap();
        assert!(s.list_users().await.unwrap()[0].disabled);
        assert_eq!(s.get_session("s2").await.unwrap(), None);
        user_command(
            &s,
            UserCommand::Enable {
                email: "bob@example.com".into(),
            },
            None,
            4,
        )
        .await
        .unwrap();

        s.create_session(session("s3")).await.unwrap();
        let new_password = "another long password";
        user_command(
            &s,
            UserCommand::ResetPassword {
                email: "bob@example.com".into(),
                password_stdin: true,
            },
            Some(new_password.into()),
            5,
        )
        .await
        .unwrap();
        assert_eq!(s.get_session("s3").await.unwrap(), None);
        let creds = s
            .user_credentials("bob@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(account::verify_password(&creds.password_hash, new_password));
        assert_eq!(creds.user.password_changed_at, 5);

        let actions: Vec<String> = s
            .list_audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            [
                "user.password_reset",
                "user.update",
                "user.update",
                "user.update",
                "user.create"
            ]
        );

        let missing = user_command(
            &s,
            UserCommand::Disable {
                email: "nobody@example.com".into(),
            },
            None,
            6,
        )
        .await
        .unwrap_err();
        assert!(missing.is(&ErrorCode::UserNotFound), "{missing:?}");
    }

    #[tokio::test]
    async fn list_shows_no_secrets() {
        let (s, _dir) = store().await;
        user_command(
            &s,
            add("ada@example.com", RoleArg::Admin, &[]),
            Some(PASSWORD.into()),
            1,
        )
        .await
        .unwrap();
        let out = user_command(&s, UserCommand::List, None, 2).await.unwrap();
        let text = serde_json::to_string(&out.json).unwrap();
        assert!(!text.contains("argon2"), "{text}");
        assert_eq!(out.json["users"][0]["email"], "ada@example.com");
        assert!(
            out.text.contains("ada@example.com") && out.text.contains("admin"),
            "{}",
            out.text
        );
    }
}
