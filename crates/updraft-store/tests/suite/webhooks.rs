//! Webhooks and their delivery queue.

use super::{APP, OTHER_APP};
use updraft_core::model::{DeliveryStatus, Webhook};
use updraft_store::{DeliveryAttempt, Entity, NewWebhook, Store, StoreError};

fn new_webhook(app_id: Option<&str>, url: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        app_id: app_id.map(str::to_string),
        url: url.to_string(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(),
        events: events.iter().map(|e| e.to_string()).collect(),
        enabled: true,
        created_at: 1_000,
    }
}

fn failure(delivery_id: i64, at: i64, retry_at: i64, max_attempts: u32) -> DeliveryAttempt {
    DeliveryAttempt {
        delivery_id,
        at,
        succeeded: false,
        status_code: Some(503),
        error: Some("HTTP 503".to_string()),
        retry_at,
        max_attempts,
    }
}

async fn two_apps<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
}

pub async fn suite_webhook_fan_out<S: Store>(s: &S) {
    two_apps(s).await;
    let global = s
        .create_webhook(new_webhook(None, "https://hooks.example.com/all", &[]))
        .await
        .unwrap();
    let app_bundles = s
        .create_webhook(new_webhook(
            Some(APP),
            "https://hooks.example.com/app",
            &["bundle.uploaded"],
        ))
        .await
        .unwrap();
    let other_app = s
        .create_webhook(new_webhook(
            Some(OTHER_APP),
            "https://hooks.example.com/other",
            &[],
        ))
        .await
        .unwrap();
    let mut disabled = new_webhook(Some(APP), "https://hooks.example.com/off", &[]);
    disabled.enabled = false;
    let disabled = s.create_webhook(disabled).await.unwrap();
    assert_eq!(app_bundles.events, vec!["bundle.uploaded".to_string()]);
    assert_eq!(app_bundles.app_id.as_deref(), Some(APP));
    assert!(!disabled.enabled);
    assert_eq!(
        s.get_webhook(app_bundles.id).await.unwrap().as_ref(),
        Some(&app_bundles)
    );
    assert_eq!(s.get_webhook(9_999).await.unwrap(), None);

    // An app sees its own and the global ones; None sees every one.
    let ids = |hooks: Vec<Webhook>| hooks.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_webhooks(Some(APP)).await.unwrap()),
        vec![global.id, app_bundles.id, disabled.id]
    );
    assert_eq!(
        ids(s.list_webhooks(Some(OTHER_APP)).await.unwrap()),
        vec![global.id, other_app.id]
    );
    assert_eq!(s.list_webhooks(None).await.unwrap().len(), 4);

    // bundle.uploaded of APP: global + app filter match; other app's and disabled do not.
    let queued = s
        .enqueue_event(
            APP,
            "bundle.uploaded",
            "{\"type\":\"bundle.uploaded\"}",
            5_000,
        )
        .await
        .unwrap();
    let mut targets: Vec<i64> = queued.iter().map(|d| d.webhook_id).collect();
    targets.sort();
    assert_eq!(targets, vec![global.id, app_bundles.id]);
    for d in &queued {
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at, Some(5_000));
        assert_eq!(d.payload, "{\"type\":\"bundle.uploaded\"}");
        assert!(d.message_id.starts_with("msg_") && d.message_id.len() > 20);
    }
    assert_ne!(queued[0].message_id, queued[1].message_id);

    // channel.changed of APP: the event filter leaves only the global one.
    let queued = s
        .enqueue_event(APP, "channel.changed", "{}", 5_000)
        .await
        .unwrap();
    assert_eq!(
        queued.iter().map(|d| d.webhook_id).collect::<Vec<_>>(),
        vec![global.id]
    );
    // Of the other app: the global one and that app's.
    let queued = s
        .enqueue_event(OTHER_APP, "channel.changed", "{}", 5_000)
        .await
        .unwrap();
    let mut targets: Vec<i64> = queued.iter().map(|d| d.webhook_id).collect();
    targets.sort();
    assert_eq!(targets, vec![global.id, other_app.id]);

    // A test send goes to exactly one webhook, even a filtered one.
    let test = s
        .enqueue_for_webhook(app_bundles.id, "webhook.test", "{}", 6_000)
        .await
        .unwrap();
    assert_eq!(test.webhook_id, app_bundles.id);
    assert_eq!(test.event_type, "webhook.test");
    assert!(matches!(
        s.enqueue_for_webhook(9_999, "webhook.test", "{}", 6_000)
            .await,
        Err(StoreError::NotFound(Entity::Webhook))
    ));

    // Due: only what is pending and due by then, oldest due first.
    assert_eq!(s.due_deliveries(4_999, 100).await.unwrap().len(), 0);
    let due = s.due_deliveries(5_000, 100).await.unwrap();
    assert_eq!(due.len(), 5);
    assert!(due
        .iter()
        .all(|d| d.delivery.next_attempt_at == Some(5_000)));
    let app_due = due
        .iter()
        .find(|d| d.delivery.webhook_id == app_bundles.id)
        .unwrap();
    assert_eq!(app_due.url, "https://hooks.example.com/app");
    assert_eq!(app_due.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(s.due_deliveries(6_000, 100).await.unwrap().len(), 6);
    assert_eq!(s.due_deliveries(6_000, 2).await.unwrap().len(), 2);

    // Deleting an app removes its webhooks (and their deliveries); global stay.
    s.delete_app(OTHER_APP, 100).await.unwrap();
    assert_eq!(
        ids(s.list_webhooks(None).await.unwrap()),
        vec![global.id, app_bundles.id, disabled.id]
    );
    assert!(s
        .due_deliveries(6_000, 100)
        .await
        .unwrap()
        .iter()
        .all(|d| d.delivery.webhook_id != other_app.id));
    // A webhook of an unknown app is refused.
    assert!(matches!(
        s.create_webhook(new_webhook(
            Some("com.example.none"),
            "https://x.example.com",
            &[]
        ))
        .await,
        Err(StoreError::NotFound(Entity::App))
    ));
}

pub async fn suite_webhook_retries<S: Store>(s: &S) {
    two_apps(s).await;
    let hook = s
        .create_webhook(new_webhook(Some(APP), "https://hooks.example.com/a", &[]))
        .await
        .unwrap();
    let queued = s
        .enqueue_event(APP, "bundle.uploaded", "{}", 10_000)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    let id = queued[0].id;

    // First failure: attempts 1, retried at the given time, still pending.
    let after = s
        .record_delivery_attempt(failure(id, 10_000, 10_100, 3))
        .await
        .unwrap();
    assert_eq!(after.status, DeliveryStatus::Pending);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.next_attempt_at, Some(10_100));
    assert_eq!(after.last_status_code, Some(503));
    assert_eq!(after.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(after.message_id, queued[0].message_id);
    assert!(s.due_deliveries(10_099, 10).await.unwrap().is_empty());
    assert_eq!(s.due_deliveries(10_100, 10).await.unwrap().len(), 1);

    // Second failure, a timeout without a status.
    let mut timeout = failure(id, 10_100, 10_500, 3);
    timeout.status_code = None;
    timeout.error = Some("timed out".to_string());
    let after = s.record_delivery_attempt(timeout).await.unwrap();
    assert_eq!(after.attempts, 2);
    assert_eq!(after.next_attempt_at, Some(10_500));
    assert_eq!(after.last_status_code, None);

    // Third success.
    let after = s
        .record_delivery_attempt(DeliveryAttempt {
            delivery_id: id,
            at: 10_500,
            succeeded: true,
            status_code: Some(204),
            error: None,
            retry_at: 0,
            max_attempts: 3,
        })
        .await
        .unwrap();
    assert_eq!(after.status, DeliveryStatus::Succeeded);
    assert_eq!(after.attempts, 3);
    assert_eq!(after.delivered_at, Some(10_500));
    assert_eq!(after.next_attempt_at, None);
    assert_eq!(after.last_status_code, Some(204));
    assert_eq!(after.last_error, None);
    assert!(s.due_deliveries(99_999, 10).await.unwrap().is_empty());
    // A finished delivery takes no more attempts.
    assert!(matches!(
        s.record_delivery_attempt(failure(id, 11_000, 12_000, 3))
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Max attempts: the last failure marks it failed, never due again.
    let second = s
        .enqueue_event(APP, "channel.changed", "{}", 20_000)
        .await
        .unwrap()
        .remove(0);
    let first = s
        .record_delivery_attempt(failure(second.id, 20_000, 20_100, 2))
        .await
        .unwrap();
    assert_eq!(first.status, DeliveryStatus::Pending);
    let last = s
        .record_delivery_attempt(failure(second.id, 20_100, 20_900, 2))
        .await
        .unwrap();
    assert_eq!(last.status, DeliveryStatus::Failed);
    assert_eq!(last.attempts, 2);
    assert_eq!(last.next_attempt_at, None);
    assert_eq!(last.delivered_at, None);
    assert!(s.due_deliveries(99_999, 10).await.unwrap().is_empty());

    // The log: newest first, with the limit.
    let log = s.list_deliveries(hook.id, 50).await.unwrap();
    assert_eq!(
        log.iter().map(|d| (d.id, d.status)).collect::<Vec<_>>(),
        vec![
            (second.id, DeliveryStatus::Failed),
            (id, DeliveryStatus::Succeeded)
        ]
    );
    assert_eq!(s.list_deliveries(hook.id, 1).await.unwrap().len(), 1);
}

pub async fn suite_webhook_delete_cascades<S: Store>(s: &S) {
    two_apps(s).await;
    let kept = s
        .create_webhook(new_webhook(
            Some(APP),
            "https://hooks.example.com/kept",
            &[],
        ))
        .await
        .unwrap();
    let gone = s
        .create_webhook(new_webhook(
            Some(APP),
            "https://hooks.example.com/gone",
            &[],
        ))
        .await
        .unwrap();
    s.enqueue_event(APP, "bundle.uploaded", "{}", 1_000)
        .await
        .unwrap();
    assert_eq!(s.list_deliveries(gone.id, 10).await.unwrap().len(), 1);
    s.delete_webhook(gone.id).await.unwrap();
    assert_eq!(s.get_webhook(gone.id).await.unwrap(), None);
    assert!(s.list_deliveries(gone.id, 10).await.unwrap().is_empty());
    let due = s.due_deliveries(1_000, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| d.delivery.webhook_id)
            .collect::<Vec<_>>(),
        vec![kept.id]
    );
    assert!(matches!(
        s.delete_webhook(gone.id).await,
        Err(StoreError::NotFound(Entity::Webhook))
    ));
}

pub async fn suite_webhook_finished_deliveries_are_pruned<S: Store>(s: &S) {
    two_apps(s).await;
    let hook = s
        .create_webhook(new_webhook(Some(APP), "https://hooks.example.com/a", &[]))
        .await
        .unwrap();
    let enqueue = |at: i64| async move {
        s.enqueue_event(APP, "bundle.uploaded", "{}", at)
            .await
            .unwrap()
            .remove(0)
    };
    let succeeded = enqueue(1_000).await;
    s.record_delivery_attempt(DeliveryAttempt {
        delivery_id: succeeded.id,
        at: 1_100,
        succeeded: true,
        status_code: Some(200),
        error: None,
        retry_at: 0,
        max_attempts: 3,
    })
    .await
    .unwrap();
    let failed = enqueue(2_000).await;
    s.record_delivery_attempt(failure(failed.id, 2_000, 2_100, 1))
        .await
        .unwrap();
    let still_pending = enqueue(3_000).await;
    let recent = enqueue(9_000).await;
    s.record_delivery_attempt(failure(recent.id, 9_000, 9_100, 1))
        .await
        .unwrap();

    // Finished before 5_000: one per call with a limit of 1, then none.
    assert_eq!(
        s.delete_finished_deliveries_before(5_000, 1).await.unwrap(),
        1
    );
    assert_eq!(
        s.delete_finished_deliveries_before(5_000, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.delete_finished_deliveries_before(5_000, 100)
            .await
            .unwrap(),
        0
    );
    // A pending delivery stays however old; newer finished ones stay.
    let left: Vec<i64> = s
        .list_deliveries(hook.id, 50)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, vec![recent.id, still_pending.id]);
}

pub async fn suite_webhook_secret_is_replaced_only_while_unchanged<S: Store>(s: &S) {
    two_apps(s).await;
    let hook = s
        .create_webhook(new_webhook(Some(APP), "https://hooks.example.com/a", &[]))
        .await
        .unwrap();
    let plain = hook.secret.clone();
    assert!(s
        .replace_webhook_secret(hook.id, &plain, "enc:v1:first")
        .await
        .unwrap());
    // A second writer that read the old value changes nothing.
    assert!(!s
        .replace_webhook_secret(hook.id, &plain, "enc:v1:second")
        .await
        .unwrap());
    assert!(!s
        .replace_webhook_secret(hook.id + 1000, "x", "y")
        .await
        .unwrap());
    let stored = s.get_webhook(hook.id).await.unwrap().unwrap();
    assert_eq!(stored.secret, "enc:v1:first");
    let due = s
        .enqueue_for_webhook(hook.id, "webhook.test", "{}", 2_000)
        .await
        .unwrap();
    let pending = s.due_deliveries(2_000, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].delivery.id, due.id);
    assert_eq!(pending[0].secret, "enc:v1:first");
}
