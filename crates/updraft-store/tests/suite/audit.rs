//! The audit log: entries as recorded, filters and keyset pagination.

use super::{APP, OTHER_APP};
use updraft_core::model::AuditEntry;
use updraft_store::{AuditQuery, NewAuditEntry, Store};

fn entry(app_id: Option<&str>, actor: &str, action: &str, at: i64) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: actor.to_string(),
        api_key_id: actor.strip_prefix("key:").map(|_| 3),
        app_id: app_id.map(str::to_string),
        action: action.to_string(),
        target: format!("target-{at}"),
        before: None,
        after: Some(serde_json::json!({ "at": at, "tags": ["a", "b"], "nested": { "ok": true } })),
    }
}

fn ids(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.id).collect()
}

pub async fn suite_audit_log<S: Store>(s: &S) {
    let mut recorded = Vec::new();
    for new in [
        entry(Some(APP), "key:ci", "app.create", 100),
        entry(Some(APP), "key:ci", "channel.create", 200),
        entry(Some(APP), "control-loop", "channel.release", 300),
        entry(Some(OTHER_APP), "key:ops", "channel.update", 400),
        entry(None, "key:ops", "apikey.create", 500),
        entry(Some(APP), "key:ci", "channels.custom", 600),
        entry(Some(APP), "cli:offline", "channel", 700),
    ] {
        let stored = s.record_audit(new.clone()).await.unwrap();
        assert!(stored.id > 0);
        assert_eq!(
            (
                stored.at,
                &stored.actor,
                stored.api_key_id,
                &stored.app_id,
                &stored.action,
                &stored.target,
                &stored.before,
                &stored.after
            ),
            (
                new.at,
                &new.actor,
                new.api_key_id,
                &new.app_id,
                &new.action,
                &new.target,
                &new.before,
                &new.after
            )
        );
        recorded.push(stored);
    }
    let with_before = s
        .record_audit(NewAuditEntry {
            before: Some(serde_json::json!({"name": "old"})),
            after: None,
            ..entry(Some(OTHER_APP), "key:ops", "app.delete", 800)
        })
        .await
        .unwrap();
    assert_eq!(with_before.before, Some(serde_json::json!({"name": "old"})));
    assert_eq!(with_before.after, None);
    recorded.push(with_before);
    assert!(recorded.windows(2).all(|w| w[0].id < w[1].id));
    let newest_first: Vec<AuditEntry> = recorded.iter().rev().cloned().collect();

    let list = |query: AuditQuery| async move { s.list_audit(&query).await.unwrap() };
    assert_eq!(list(AuditQuery::default()).await, newest_first);

    let by_id = |i: usize| recorded[i].id;
    assert_eq!(
        ids(&list(AuditQuery {
            app_id: Some(APP.to_string()),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(6), by_id(5), by_id(2), by_id(1), by_id(0)]
    );
    // Exact action.
    assert_eq!(
        ids(&list(AuditQuery {
            action: Some("channel".to_string()),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(6)]
    );
    assert_eq!(
        ids(&list(AuditQuery {
            action: Some("channel.update".to_string()),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(3)]
    );
    // A prefix ends in '.': `channels.custom` and `channel` are not in it.
    assert_eq!(
        ids(&list(AuditQuery {
            action: Some("channel.".to_string()),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(3), by_id(2), by_id(1)]
    );
    assert_eq!(
        ids(&list(AuditQuery {
            app_id: Some(APP.to_string()),
            action: Some("channel.".to_string()),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(2), by_id(1)]
    );
    assert_eq!(
        ids(&list(AuditQuery {
            actor: Some("key:ops".to_string()),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(7), by_id(4), by_id(3)]
    );
    // since <= at < until.
    assert_eq!(
        ids(&list(AuditQuery {
            since: Some(300),
            until: Some(600),
            ..AuditQuery::default()
        })
        .await),
        vec![by_id(4), by_id(3), by_id(2)]
    );
    assert!(list(AuditQuery {
        app_id: Some("com.missing.app".to_string()),
        ..AuditQuery::default()
    })
    .await
    .is_empty());

    // Keyset pages of 3 walk everything once, newest first.
    let mut pages = Vec::new();
    let mut before_id = None;
    loop {
        let page = list(AuditQuery {
            before_id,
            limit: 3,
            ..AuditQuery::default()
        })
        .await;
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        assert!(page.len() <= 3);
        pages.push(ids(&page));
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), ids(&newest_first));
    // Filters and pagination together.
    let first = list(AuditQuery {
        app_id: Some(APP.to_string()),
        limit: 2,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(ids(&first), vec![by_id(6), by_id(5)]);
    let second = list(AuditQuery {
        app_id: Some(APP.to_string()),
        before_id: Some(by_id(5)),
        limit: 2,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(ids(&second), vec![by_id(2), by_id(1)]);
}
