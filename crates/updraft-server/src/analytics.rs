//! Release analytics as the management API reads them: reports built from
//! the rollups the stats writer keeps current, and the raw events for
//! export, a page at a time.

use crate::error::ApiError;
use std::sync::Arc;
use updraft_core::analytics::{build_report, ReportFilter, StatsReport};
use updraft_store::{AnalyticsStore, EventExportQuery, StoreError, StoredEvent};

/// Reads of the analytics store for reports and exports.
pub struct AnalyticsService {
    store: Arc<dyn AnalyticsStore>,
}

impl AnalyticsService {
    pub fn new(store: Arc<dyn AnalyticsStore>) -> AnalyticsService {
        AnalyticsService { store }
    }

    /// The report of `app_id` for the days `from_day..=to_day`
    /// (`YYYY-MM-DD`), from the rollups (never a scan of the raw events).
    pub async fn report(
        &self,
        app_id: &str,
        from_day: &str,
        to_day: &str,
        filter: &ReportFilter,
    ) -> Result<StatsReport, ApiError> {
        let rollups = self.store.stats_rollups(app_id, from_day, to_day).await?;
        Ok(build_report(app_id, from_day, to_day, filter, &rollups))
    }

    /// The events `query` selects, oldest id first, as pages of at most
    /// `query.limit` (keyset pagination from `query.after_id`); a failure
    /// ends the stream after it is yielded.
    pub fn export_pages(
        self: &Arc<Self>,
        query: EventExportQuery,
    ) -> impl futures_util::Stream<Item = Result<Vec<StoredEvent>, StoreError>> {
        let service = Arc::clone(self);
        futures_util::stream::unfold(Some(query), move |query| {
            let service = Arc::clone(&service);
            async move {
                let mut query = query?;
                match service.store.export_events(&query).await {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let full_page = page.len() as i64 >= query.limit;
                        query.after_id = page.last().map_or(query.after_id, |e| e.id);
                        Some((Ok(page), full_page.then_some(query)))
                    }
                    Err(err) => Some((Err(err), None)),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use updraft_core::model::StatsEvent;
    use updraft_store::{SqliteStore, StatsIngest};

    fn event(app_id: &str, device_id: &str, at: i64) -> StatsEvent {
        StatsEvent {
            app_id: app_id.into(),
            device_id: device_id.into(),
            action: "get".into(),
            version_name: "1.0.0".into(),
            old_version_name: None,
            platform: "ios".into(),
            plugin_version: None,
            version_build: None,
            is_prod: true,
            is_emulator: false,
            metadata: None,
            timestamp: at,
            received_at: at,
        }
    }

    /// Pages follow one another by id, the last one short (or the stream
    /// ends after a full one with nothing more), and select only the app
    /// and device asked for.
    #[tokio::test]
    async fn export_pages_walk_every_selected_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let events: Vec<StatsEvent> = (0..25)
            .map(|i| event("com.example.app", if i % 5 == 0 { "b" } else { "a" }, i))
            .chain((0..3).map(|i| event("com.example.other", "a", 100 + i)))
            .collect();
        store
            .ingest_stats(StatsIngest {
                events: &events,
                ..StatsIngest::default()
            })
            .await
            .unwrap();
        let service = Arc::new(AnalyticsService::new(store));
        let pages = |device: Option<&str>, limit| {
            let query = EventExportQuery {
                app_id: "com.example.app".into(),
                device_id: device.map(str::to_string),
                limit,
                ..EventExportQuery::default()
            };
            let service = Arc::clone(&service);
            async move {
                service
                    .export_pages(query)
                    .map(|page| page.unwrap())
                    .collect::<Vec<_>>()
                    .await
            }
        };

        let all = pages(None, 10).await;
        assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let times: Vec<i64> = all.iter().flatten().map(|e| e.event.timestamp).collect();
        assert_eq!(times, (0..25).collect::<Vec<_>>());
        let ids: Vec<i64> = all.iter().flatten().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

        let exact = pages(Some("b"), 5).await;
        assert_eq!(exact.iter().map(Vec::len).collect::<Vec<_>>(), [5]);
        assert!(exact[0].iter().all(|e| e.event.device_id == "b"));
    }
}
