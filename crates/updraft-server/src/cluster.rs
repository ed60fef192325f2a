//! Running as one of several nodes: hearing other nodes' release changes, and
//! running the background work (rollout control, retention, gc, webhooks) on
//! exactly one node at a time. On the embedded store this node is the only
//! one: it leads from the start and hears nothing.

use crate::metrics::{db_operation, Metrics};
use crate::releases::ReleaseCache;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use updraft_store::cluster::{Cluster, Leadership, ReleaseChange, HEARTBEAT_TIMEOUT};

/// How often a follower tries to take over and the leader checks its lock:
/// a dead leader is replaced within about this long (plus the database
/// noticing the dropped connection, immediate when the process dies).
pub const LEADER_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long a node that took the lock waits before starting the work: the
/// previous holder notices it lost the lock within a check interval plus
/// its heartbeat timeout, and stops (plus a margin: 4 s in all).
pub const TAKEOVER_DELAY: Duration = LEADER_CHECK_INTERVAL
    .saturating_add(HEARTBEAT_TIMEOUT)
    .saturating_add(Duration::from_millis(500));
/// Pause before subscribing again after the listener failed.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
/// A task that ignores its stop signal is aborted after this.
const TASK_STOP_GRACE: Duration = Duration::from_secs(15);

/// Takes and keeps leadership, saying `true` on `leading` while this node
/// leads. Ends (giving leadership up) when `shutdown` turns true.
pub fn spawn_election(
    cluster: Arc<dyn Cluster>,
    metrics: Arc<Metrics>,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let metrics_for_errors = Arc::clone(&metrics);
    let announce = move |lead: bool| {
        metrics.set_cluster_leader(lead);
        leading.send_replace(lead);
    };
    tokio::spawn(async move {
        let mut held: Option<Box<dyn Leadership>> = None;
        loop {
            match held.as_mut() {
                None => match cluster.try_lead().await {
                    Ok(Some(mut leadership)) => {
                        // A leader whose lock was taken from it (its
                        // connection killed or cut off) stops at its next
                        // check, at most a check interval plus a heartbeat
                        // timeout later: wait that long before starting,
                        // so the background work never runs twice at once.
                        if cluster.is_shared() {
                            tokio::select! {
                                _ = tokio::time::sleep(TAKEOVER_DELAY) => {}
                                _ = shutdown.changed() => {}
                            }
                        }
                        if !*shutdown.borrow() && leadership.still_held().await {
                            held = Some(leadership);
                            tracing::info!("this node now runs the background work");
                            announce(true);
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        metrics_for_errors.record_database_error(db_operation::CLUSTER);
                        tracing::warn!(error = %err, "cannot try the leader lock");
                    }
                },
                Some(leadership) => {
                    if !leadership.still_held().await {
                        held = None;
                        tracing::warn!("lost the leader lock; background work stops here");
                        announce(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LEADER_CHECK_INTERVAL) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        announce(false);
        // Dropping `held` closes its connection: the lock is free for the
        // next node at once.
        drop(held);
    })
}

/// Runs a background task only while this node leads: `start` is called with
/// a stop signal when leadership is gained; when it is lost, or at shutdown,
/// the task is told to stop (and aborted if it does not within a grace).
/// `start`'s task must end promptly when its stop signal turns true.
pub fn spawn_while_leading<F>(
    name: &'static str,
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) -> JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> JoinHandle<()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut running: Option<(JoinHandle<()>, watch::Sender<bool>)> = None;
        loop {
            let lead = *leading.borrow_and_update() && !*shutdown.borrow();
            match (&running, lead) {
                (None, true) => {
                    let (stop_tx, stop_rx) = watch::channel(false);
                    tracing::debug!(task = name, "starting background task");
                    running = Some((start(stop_rx), stop_tx));
                }
                (Some(_), false) => {
                    if let Some((task, stop)) = running.take() {
                        stop_task(name, task, stop).await;
                    }
                }
                _ => {}
            }
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                changed = leading.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
        if let Some((task, stop)) = running.take() {
            stop_task(name, task, stop).await;
        }
    })
}

async fn stop_task(name: &'static str, mut task: JoinHandle<()>, stop: watch::Sender<bool>) {
    let _ = stop.send(true);
    match tokio::time::timeout(TASK_STOP_GRACE, &mut task).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) if err.is_cancelled() => {}
        Ok(Err(err)) => tracing::error!(task = name, error = %err, "background task ended badly"),
        Err(_) => {
            tracing::warn!(task = name, "background task did not stop in time; aborted");
            task.abort();
        }
    }
}

/// For tasks with no stop signal of their own: runs `task` until `stop`
/// turns true, then aborts it (their work is transactional, so an abort
/// loses nothing committed).
pub fn abort_on_stop(task: JoinHandle<()>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        task.abort();
    })
}

/// Applies other nodes' release changes to this node's in-memory
/// configuration. A lost subscription reloads everything (changes may have
/// been missed) and subscribes again.
pub fn spawn_release_listener(
    cluster: Arc<dyn Cluster>,
    releases: Arc<ReleaseCache>,
    metrics: Arc<Metrics>,
) -> Option<JoinHandle<()>> {
    if !cluster.is_shared() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            let mut changes = match cluster.subscribe().await {
                Ok(changes) => changes,
                Err(err) => {
                    metrics.record_database_error(db_operation::CLUSTER);
                    tracing::warn!(error = %err, "cannot listen for release changes; retrying");
                    tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                    continue;
                }
            };
            // Whatever changed before the subscription started.
            reload_all(&releases, &metrics).await;
            loop {
                match changes.next().await {
                    Ok(ReleaseChange::App(app_id)) => {
                        metrics.record_release_notification();
                        if let Err(err) = releases.refresh(&app_id).await {
                            metrics.record_database_error(db_operation::RELEASE_RELOAD);
                            tracing::warn!(app_id, error = %err, "cannot reload a changed app");
                        }
                    }
                    Ok(ReleaseChange::Everything) => {
                        tracing::warn!("release listener reconnected; reloading every app");
                        reload_all(&releases, &metrics).await;
                    }
                    Err(err) => {
                        metrics.record_database_error(db_operation::CLUSTER);
                        tracing::warn!(error = %err, "release listener failed; subscribing again");
                        break;
                    }
                }
            }
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    }))
}

async fn reload_all(releases: &ReleaseCache, metrics: &Metrics) {
    if let Err(err) = releases.reload_all().await {
        metrics.record_database_error(db_operation::RELEASE_RELOAD);
        tracing::warn!(error = %err, "cannot reload the release configuration");
    }
}
