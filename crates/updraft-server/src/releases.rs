//! Each app's release configuration, held in memory so that an update check
//! never waits on the database. Readers take a lock-free snapshot; a change
//! reloads the one app from storage and swaps it in.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use tokio::sync::Mutex;
use updraft_core::model::ReleaseConfig;
use updraft_store::{ReleaseStore, StoreResult};

type ReleaseMap = HashMap<String, Arc<ReleaseConfig>>;

/// What an unknown app resolves to: no app, nothing else.
static UNKNOWN_APP: LazyLock<Arc<ReleaseConfig>> =
    LazyLock::new(|| Arc::new(ReleaseConfig::default()));

pub struct ReleaseCache {
    store: Arc<dyn ReleaseStore>,
    current: ArcSwap<ReleaseMap>,
    /// Serialises writers so two refreshes cannot swap in an older map.
    refresh_lock: Mutex<()>,
}

impl ReleaseCache {
    pub fn new(store: Arc<dyn ReleaseStore>) -> Self {
        ReleaseCache {
            store,
            current: ArcSwap::from_pointee(HashMap::new()),
            refresh_lock: Mutex::new(()),
        }
    }

    /// The app's configuration as of now (an unknown app has `app: None`).
    pub fn get(&self, app_id: &str) -> Arc<ReleaseConfig> {
        self.current
            .load()
            .get(app_id)
            .cloned()
            .unwrap_or_else(|| UNKNOWN_APP.clone())
    }

    /// Loads every app; used at start-up and as a periodic safety net.
    pub async fn reload_all(&self) -> StoreResult<usize> {
        let _guard = self.refresh_lock.lock().await;
        let mut map = HashMap::new();
        for app_id in self.store.list_app_ids().await? {
            let release = self.store.load_release(&app_id).await?;
            if release.app.is_some() {
                map.insert(app_id, Arc::new(release));
            }
        }
        let count = map.len();
        self.current.store(Arc::new(map));
        Ok(count)
    }

    /// Reloads one app after a change to it (or drops it when it was deleted).
    pub async fn refresh(&self, app_id: &str) -> StoreResult<()> {
        let _guard = self.refresh_lock.lock().await;
        let release = self.store.load_release(app_id).await?;
        let mut map: ReleaseMap = (**self.current.load()).clone();
        if release.app.is_some() {
            map.insert(app_id.to_string(), Arc::new(release));
        } else {
            map.remove(app_id);
        }
        self.current.store(Arc::new(map));
        Ok(())
    }
}
