//! Console users, recovery codes and sessions.

use updraft_core::model::Role;
use updraft_store::{Entity, NewSession, NewUser, Store, StoreError, UserPatch};

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: email.to_string(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string(),
        role,
        apps: None,
    }
}

fn new_session(token_hash: &str, user_id: i64, at: i64) -> NewSession {
    NewSession {
        token_hash: token_hash.to_string(),
        user_id,
        csrf_token: format!("csrf-{token_hash}"),
        created_at: at,
        expires_at: at + 1_000_000,
    }
}

pub async fn suite_users<S: Store>(s: &S) {
    let ada = s
        .create_user(new_user("ada@example.com", Role::Admin), 1_000)
        .await
        .unwrap();
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.role, Role::Admin);
    assert_eq!(ada.apps, None);
    assert!(!ada.disabled && !ada.totp_enabled);
    assert_eq!(
        (ada.created_at, ada.updated_at, ada.password_changed_at),
        (1_000, 1_000, 1_000)
    );

    // Unique whatever the case.
    let again = s
        .create_user(new_user("ADA@example.com", Role::Viewer), 2_000)
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(Entity::User))),
        "{again:?}"
    );

    let bob = s
        .create_user(
            NewUser {
                apps: Some(vec!["com.example.a".into(), "com.example.b".into()]),
                ..new_user("bob@example.com", Role::Publisher)
            },
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(
        bob.apps.as_deref(),
        Some(&["com.example.a".to_string(), "com.example.b".to_string()][..])
    );
    let listed = s.list_users().await.unwrap();
    assert_eq!(listed, vec![ada.clone(), bob.clone()]);
    assert_eq!(s.get_user(bob.id).await.unwrap(), Some(bob.clone()));
    assert_eq!(s.get_user(999).await.unwrap(), None);

    let creds = s
        .user_credentials("Ada@Example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user, ada);
    assert!(creds.password_hash.starts_with("$argon2id$"));
    assert_eq!(creds.totp_secret, None);
    assert_eq!(
        s.user_credentials("nobody@example.com").await.unwrap(),
        None
    );
    assert_eq!(
        s.user_credentials_by_id(ada.id)
            .await
            .unwrap()
            .unwrap()
            .user,
        ada
    );

    // Patches: role, scope, disabled; an empty patch changes nothing.
    let same = s
        .update_user(bob.id, UserPatch::default(), 3_000)
        .await
        .unwrap();
    assert_eq!(same, bob);
    let bob2 = s
        .update_user(
            bob.id,
            UserPatch {
                role: Some(Role::Viewer),
                apps: Some(None),
                disabled: Some(true),
            },
            3_000,
        )
        .await
        .unwrap();
    assert_eq!(
        (bob2.role, bob2.apps.clone(), bob2.disabled),
        (Role::Viewer, None, true)
    );
    assert_eq!(bob2.updated_at, 3_000);
    assert_eq!(s.get_user(bob.id).await.unwrap(), Some(bob2));
    let missing = s.update_user(999, UserPatch::default(), 3_000).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(Entity::User))),
        "{missing:?}"
    );

    let changed = s
        .set_password(ada.id, "$argon2id$new", 4_000)
        .await
        .unwrap();
    assert_eq!(changed.password_changed_at, 4_000);
    assert_eq!(
        s.user_credentials_by_id(ada.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    assert!(matches!(
        s.set_password(999, "x", 4_000).await,
        Err(StoreError::NotFound(Entity::User))
    ));
}

pub async fn suite_first_user<S: Store>(s: &S) {
    let first = s
        .create_first_user(new_user("root@example.com", Role::Admin), 1_000)
        .await
        .unwrap();
    assert_eq!(first.map(|u| u.email), Some("root@example.com".to_string()));
    // Never a second one, whoever asks, and the first stays as it was.
    let second = s
        .create_first_user(new_user("other@example.com", Role::Admin), 2_000)
        .await
        .unwrap();
    assert_eq!(second, None);
    let again = s
        .create_first_user(new_user("root@example.com", Role::Viewer), 2_000)
        .await
        .unwrap();
    assert_eq!(again, None);
    let users = s.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, Role::Admin);
}

pub async fn suite_totp_and_recovery_codes<S: Store>(s: &S) {
    let ada = s
        .create_user(new_user("ada@example.com", Role::Admin), 1_000)
        .await
        .unwrap();
    s.set_totp_pending(ada.id, Some("PENDING"), 2_000)
        .await
        .unwrap();
    let creds = s.user_credentials_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(creds.totp_pending_secret.as_deref(), Some("PENDING"));
    assert!(!creds.user.totp_enabled, "pending is not enabled");

    // Confirming another secret than the pending one does nothing.
    let hashes: Vec<String> = (0..10).map(|i| format!("hash{i}")).collect();
    assert!(!s
        .enable_totp(ada.id, "OTHER", 5, &hashes, 3_000)
        .await
        .unwrap());
    assert!(s
        .enable_totp(ada.id, "PENDING", 5, &hashes, 3_000)
        .await
        .unwrap());
    let creds = s.user_credentials_by_id(ada.id).await.unwrap().unwrap();
    assert!(creds.user.totp_enabled);
    assert_eq!(creds.totp_secret.as_deref(), Some("PENDING"));
    assert_eq!(creds.totp_pending_secret, None);
    assert_eq!(s.count_recovery_codes(ada.id).await.unwrap(), 10);

    // The confirming step is used; only later steps pass, each once.
    assert!(!s.claim_totp_step(ada.id, 5).await.unwrap());
    assert!(!s.claim_totp_step(ada.id, 4).await.unwrap());
    assert!(s.claim_totp_step(ada.id, 6).await.unwrap());
    assert!(!s.claim_totp_step(ada.id, 6).await.unwrap());

    // Recovery codes work once.
    assert!(s.use_recovery_code(ada.id, "hash3").await.unwrap());
    assert!(!s.use_recovery_code(ada.id, "hash3").await.unwrap());
    assert!(!s.use_recovery_code(ada.id, "unknown").await.unwrap());
    assert_eq!(s.count_recovery_codes(ada.id).await.unwrap(), 9);

    let off = s.disable_totp(ada.id, 4_000).await.unwrap();
    assert!(!off.totp_enabled);
    assert_eq!(s.count_recovery_codes(ada.id).await.unwrap(), 0);
    let creds = s.user_credentials_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!((creds.totp_secret, creds.totp_pending_secret), (None, None));
    // A fresh enrolment starts from no used step.
    s.set_totp_pending(ada.id, Some("NEW"), 5_000)
        .await
        .unwrap();
    assert!(s.enable_totp(ada.id, "NEW", 1, &[], 5_000).await.unwrap());
    assert!(s.claim_totp_step(ada.id, 2).await.unwrap());
}

pub async fn suite_sessions<S: Store>(s: &S) {
    let ada = s
        .create_user(new_user("ada@example.com", Role::Admin), 1_000)
        .await
        .unwrap();
    let bob = s
        .create_user(new_user("bob@example.com", Role::Viewer), 1_000)
        .await
        .unwrap();
    let one = s
        .create_session(new_session("t1", ada.id, 1_000))
        .await
        .unwrap();
    assert_eq!(one.last_seen_at, 1_000);
    assert_eq!(one.expires_at, 1_001_000);
    assert_eq!(one.csrf_token, "csrf-t1");
    s.create_session(new_session("t2", ada.id, 1_500))
        .await
        .unwrap();
    s.create_session(new_session("t3", bob.id, 1_500))
        .await
        .unwrap();
    let orphan = s.create_session(new_session("t4", 999, 1_500)).await;
    assert!(
        matches!(orphan, Err(StoreError::NotFound(Entity::User))),
        "{orphan:?}"
    );

    assert_eq!(s.get_session("t1").await.unwrap(), Some(one.clone()));
    assert_eq!(s.get_session("nope").await.unwrap(), None);

    // Touching moves last_seen forward only.
    s.touch_session("t1", 5_000).await.unwrap();
    s.touch_session("t1", 4_000).await.unwrap();
    assert_eq!(
        s.get_session("t1").await.unwrap().unwrap().last_seen_at,
        5_000
    );

    assert!(s.delete_session("t2").await.unwrap());
    assert!(!s.delete_session("t2").await.unwrap());

    // Everywhere: every session of the user, none of anybody else's.
    s.create_session(new_session("t5", ada.id, 6_000))
        .await
        .unwrap();
    assert_eq!(s.delete_user_sessions(ada.id).await.unwrap(), 2);
    assert_eq!(s.get_session("t1").await.unwrap(), None);
    assert!(s.get_session("t3").await.unwrap().is_some());

    // A password change, role change or disable ends the user's sessions.
    s.create_session(new_session("t6", ada.id, 7_000))
        .await
        .unwrap();
    s.set_password(ada.id, "$argon2id$x", 7_500).await.unwrap();
    assert_eq!(s.get_session("t6").await.unwrap(), None);
    s.create_session(new_session("t7", ada.id, 8_000))
        .await
        .unwrap();
    s.update_user(
        ada.id,
        UserPatch {
            role: Some(Role::Publisher),
            ..UserPatch::default()
        },
        8_500,
    )
    .await
    .unwrap();
    assert_eq!(s.get_session("t7").await.unwrap(), None);
    s.update_user(
        bob.id,
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
        8_500,
    )
    .await
    .unwrap();
    assert_eq!(s.get_session("t3").await.unwrap(), None);
}

pub async fn suite_expired_sessions_are_pruned<S: Store>(s: &S) {
    let ada = s
        .create_user(new_user("ada@example.com", Role::Admin), 1_000)
        .await
        .unwrap();
    // Absolute end reached; idle; fresh.
    s.create_session(NewSession {
        expires_at: 2_000,
        ..new_session("ended", ada.id, 1_000)
    })
    .await
    .unwrap();
    s.create_session(new_session("idle", ada.id, 1_000))
        .await
        .unwrap();
    s.create_session(new_session("fresh", ada.id, 1_000))
        .await
        .unwrap();
    s.touch_session("fresh", 9_000).await.unwrap();
    assert_eq!(s.delete_expired_sessions(3_000, 5_000, 1).await.unwrap(), 1);
    assert_eq!(
        s.delete_expired_sessions(3_000, 5_000, 100).await.unwrap(),
        1
    );
    assert_eq!(
        s.delete_expired_sessions(3_000, 5_000, 100).await.unwrap(),
        0
    );
    assert!(s.get_session("fresh").await.unwrap().is_some());
    assert_eq!(s.get_session("idle").await.unwrap(), None);
    assert_eq!(s.get_session("ended").await.unwrap(), None);
}
