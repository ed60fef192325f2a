//! What several Updraft nodes sharing one database agree on: which app's
//! release configuration changed (so every node reloads it), and which node
//! runs the background work (rollout control, retention, gc, webhooks).
//!
//! The embedded store has exactly one node: it is always the leader and
//! learns of changes in-process. On PostgreSQL, changes arrive through
//! `LISTEN updraft_release` (the schema's triggers `pg_notify` the app id of
//! every changed app, channel, bundle or override row, at commit), and the
//! leader is whoever holds a session advisory lock: it is released the moment
//! that node's connection ends, which is how a dead node hands over.

use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::Connection;
use std::time::Duration;

/// The notification channel the PostgreSQL triggers publish on.
pub const RELEASE_CHANNEL: &str = "updraft_release";

/// The advisory-lock key of the background-work leader (any fixed i64;
/// this one is "updraft" in ASCII, so it is recognisable in `pg_locks`).
const LEADER_LOCK_KEY: i64 = 0x75_70_64_72_61_66_74;

/// A change another node (or this one) made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseChange {
    /// This app's release configuration changed.
    App(String),
    /// Changes may have been missed (the connection dropped): reload every app.
    Everything,
}

/// A subscription to release changes.
#[async_trait]
pub trait ReleaseChanges: Send {
    /// The next change; `Err` when the subscription is broken for good
    /// (the caller subscribes again after a pause).
    async fn next(&mut self) -> StoreResult<ReleaseChange>;
}

/// Held by the leader; dropping it gives leadership up.
#[async_trait]
pub trait Leadership: Send {
    /// Whether this node still holds the lock (its connection is alive).
    async fn still_held(&mut self) -> bool;
}

#[async_trait]
pub trait Cluster: Send + Sync {
    /// Whether other nodes may exist (the server then listens for their changes).
    fn is_shared(&self) -> bool;
    async fn subscribe(&self) -> StoreResult<Box<dyn ReleaseChanges>>;
    /// Leadership if no other node holds it right now.
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Leadership>>>;
}

/// The embedded database: one node, always the leader, no remote changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleNode;

struct NoChanges;

#[async_trait]
impl ReleaseChanges for NoChanges {
    async fn next(&mut self) -> StoreResult<ReleaseChange> {
        std::future::pending().await
    }
}

struct AlwaysLeader;

#[async_trait]
impl Leadership for AlwaysLeader {
    async fn still_held(&mut self) -> bool {
        true
    }
}

#[async_trait]
impl Cluster for SingleNode {
    fn is_shared(&self) -> bool {
        false
    }

    async fn subscribe(&self) -> StoreResult<Box<dyn ReleaseChanges>> {
        Ok(Box::new(NoChanges))
    }

    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Leadership>>> {
        Ok(Some(Box::new(AlwaysLeader)))
    }
}

/// Nodes sharing one PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgCluster {
    pool: PgPool,
}

impl PgCluster {
    /// Uses `pool` (the primary: notifications and locks live there) for its
    /// listener and lock connections.
    pub fn new(pool: PgPool) -> PgCluster {
        PgCluster { pool }
    }
}

struct PgReleaseChanges {
    listener: PgListener,
}

#[async_trait]
impl ReleaseChanges for PgReleaseChanges {
    async fn next(&mut self) -> StoreResult<ReleaseChange> {
        // `try_recv` says `None` when the connection dropped (notifications
        // sent meanwhile are lost); it reconnects and re-listens on the next call.
        match self.listener.try_recv().await? {
            Some(notification) => Ok(ReleaseChange::App(notification.payload().to_string())),
            None => Ok(ReleaseChange::Everything),
        }
    }
}

/// A dedicated connection holding the session advisory lock.
struct PgLeadership {
    connection: sqlx::PgConnection,
}

/// A lock holder that cannot answer within this is treated as gone.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

#[async_trait]
impl Leadership for PgLeadership {
    async fn still_held(&mut self) -> bool {
        // The lock lives as long as the session; a session that answers still holds it.
        matches!(
            tokio::time::timeout(HEARTBEAT_TIMEOUT, self.connection.ping()).await,
            Ok(Ok(()))
        )
    }
}

#[async_trait]
impl Cluster for PgCluster {
    fn is_shared(&self) -> bool {
        true
    }

    async fn subscribe(&self) -> StoreResult<Box<dyn ReleaseChanges>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(RELEASE_CHANNEL).await?;
        Ok(Box::new(PgReleaseChanges { listener }))
    }

    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Leadership>>> {
        // Detached from the pool: the lock must live exactly as long as this
        // connection, never be handed to another query through the pool.
        let mut connection = self.pool.acquire().await?.detach();
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK_KEY)
            .fetch_one(&mut connection)
            .await?;
        if acquired {
            Ok(Some(Box::new(PgLeadership { connection })))
        } else {
            connection.close().await.map_err(StoreError::from)?;
            Ok(None)
        }
    }
}
