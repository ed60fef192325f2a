//! Per-key rate limits in memory, per node, with bounded memory.
//!
//! Each key (a device of an app, an app, a client address) has one GCRA
//! cell — the "theoretical arrival time" of its next request, one `i64` —
//! which is exactly a token bucket of `burst` tokens refilled at `rate`. Keys
//! are hashed to `u64` with a per-process random seed (so nobody can aim
//! collisions) and spread over shards, each behind its own lock. A shard
//! keeps two generations of cells: when the current one is full, it becomes
//! the previous one and the older previous one is dropped. Memory therefore
//! never exceeds `max_keys` cells (about 40 bytes each with the map's
//! overhead), every operation is O(1), and a key that was forgotten starts
//! again with a full bucket — forgetting only ever lets a request through.
//! Keys not seen for a whole generation are the ones dropped, so under a
//! flood of invented keys the busy real ones stay.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use updraft_core::model::Millis;

const SHARDS: usize = 64;
/// Times in microseconds, so 10,000 requests a second still have a whole interval.
const MICROS_PER_MILLI: i64 = 1000;

/// `burst` requests at once, then `per_minute` a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quota {
    pub burst: u32,
    pub per_minute: u32,
}

impl Quota {
    /// Off when either number is 0.
    pub fn is_off(&self) -> bool {
        self.burst == 0 || self.per_minute == 0
    }

    /// Microseconds between two requests at the sustained rate (at least 1).
    fn interval_us(&self) -> i64 {
        (60_000_000 / i64::from(self.per_minute.max(1))).max(1)
    }

    /// How far ahead of now the next arrival time may run.
    fn tolerance_us(&self) -> i64 {
        self.interval_us() * (i64::from(self.burst.max(1)) - 1)
    }
}

/// The GCRA step, as a pure function: with the stored arrival time `tat`
/// (`None` for a new key), may a request at `now_us` pass? `Ok(new tat)`, or
/// `Err(microseconds until it would pass)`.
fn gcra(quota: Quota, tat: Option<i64>, now_us: i64) -> Result<i64, i64> {
    let tat = tat.unwrap_or(now_us).max(now_us);
    let allowed_at = tat - quota.tolerance_us();
    if now_us < allowed_at {
        Err(allowed_at - now_us)
    } else {
        Ok(tat + quota.interval_us())
    }
}

#[derive(Default)]
struct Shard {
    current: HashMap<u64, i64>,
    previous: HashMap<u64, i64>,
}

impl Shard {
    fn get(&self, key: u64) -> Option<i64> {
        self.current
            .get(&key)
            .or_else(|| self.previous.get(&key))
            .copied()
    }

    fn set(&mut self, key: u64, tat: i64, generation: usize) {
        if !self.current.contains_key(&key) && self.current.len() >= generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.previous.remove(&key);
        self.current.insert(key, tat);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// A denied request: retry after this many seconds (at least 1, rounded up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RetryAfter {
    fn from_micros(us: i64) -> RetryAfter {
        RetryAfter(((us.max(0) as u64).div_ceil(1_000_000)).max(1))
    }
}

/// Rate limits for one kind of key (see the module docs).
pub struct KeyedLimiter {
    quota: Quota,
    hasher: std::collections::hash_map::RandomState,
    /// Cells per shard generation: `max_keys / SHARDS / 2`, at least 1.
    generation: usize,
    shards: Vec<Mutex<Shard>>,
}

impl KeyedLimiter {
    /// At most `max_keys` keys are remembered at once.
    pub fn new(quota: Quota, max_keys: usize) -> KeyedLimiter {
        KeyedLimiter {
            quota,
            hasher: std::collections::hash_map::RandomState::new(),
            generation: (max_keys / SHARDS / 2).max(1),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn locate(&self, key: impl Hash) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one(key);
        (hash, &self.shards[(hash % SHARDS as u64) as usize])
    }

    fn with_shard<T>(&self, key: impl Hash, f: impl FnOnce(u64, &mut Shard) -> T) -> T {
        let (hash, shard) = self.locate(key);
        // A panic while holding the lock cannot leave a cell half-written:
        // keep using the shard.
        let mut guard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(hash, &mut guard)
    }

    /// Takes one request from `key`'s bucket, or says how long to wait.
    pub fn check(&self, key: impl Hash, now: Millis) -> Result<(), RetryAfter> {
        if self.quota.is_off() {
            return Ok(());
        }
        let now_us = now.saturating_mul(MICROS_PER_MILLI);
        self.with_shard(key, |hash, shard| {
            let stored = shard.get(hash);
            match gcra(self.quota, stored, now_us) {
                Ok(tat) => {
                    shard.set(hash, tat, self.generation);
                    Ok(())
                }
                Err(wait) => {
                    // Seen again: keep it in the current generation.
                    if let Some(tat) = stored {
                        shard.set(hash, tat, self.generation);
                    }
                    Err(RetryAfter::from_micros(wait))
                }
            }
        })
    }

    /// Whether a request from `key` would be denied now, without taking one.
    pub fn blocked(&self, key: impl Hash, now: Millis) -> Option<RetryAfter> {
        if self.quota.is_off() {
            return None;
        }
        let now_us = now.saturating_mul(MICROS_PER_MILLI);
        self.with_shard(key, |hash, shard| {
            gcra(self.quota, shard.get(hash), now_us)
                .err()
                .map(RetryAfter::from_micros)
        })
    }

    /// Keys remembered now (for the metrics and tests).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// The most keys this limiter remembers at once.
    pub fn capacity(&self) -> usize {
        self.generation * 2 * SHARDS
    }
}

/// The device-route limiters of one node (failed authentications are
/// throttled by [`crate::auth::AuthService`]).
pub struct Limiters {
    /// Keyed by (app id, device id).
    pub device: KeyedLimiter,
    /// Keyed by app id.
    pub app: KeyedLimiter,
}

impl Limiters {
    pub fn new(limits: &AbuseLimits) -> Limiters {
        let max_keys = limits.rate_limit_max_keys;
        Limiters {
            device: KeyedLimiter::new(limits.device_rate, max_keys),
            app: KeyedLimiter::new(limits.app_rate, max_keys),
        }
    }
}

/// What one client, device or app may cost the server. A quota whose
/// `burst` or `per_minute` is 0 is off.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbuseLimits {
    /// Device-route requests per app and device, per node.
    pub device_rate: Quota,
    /// Device-route requests per app (all its devices), per node.
    pub app_rate: Quota,
    /// Devices (and apps, and client addresses) each limiter remembers at once.
    #[serde(deserialize_with = "crate::settings::at_least::<1, _, _>")]
    pub rate_limit_max_keys: usize,
    /// Failed management authentications per client address.
    pub auth_failure_rate: Quota,
    /// Distinct values of each rollup key a device can invent (bundle names)
    /// per app and day; beyond it, unknown values count as `other`.
    pub rollup_max_distinct_per_day: u32,
    /// Bytes of live bundles an app may store; `None` = no quota.
    #[serde(deserialize_with = "crate::settings::zero_is_none")]
    pub app_storage_quota_bytes: Option<u64>,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            // A device checks at app open and sends a few small batches: 120
            // at once, then 2 a second, is far above anything a real one does.
            device_rate: Quota {
                burst: 120,
                per_minute: 120,
            },
            // 20,000 a second sustained per node and 100,000 at once: what
            // a node serves in all, so it only keeps one app's flood from
            // starving the others.
            app_rate: Quota {
                burst: 100_000,
                per_minute: 1_200_000,
            },
            rate_limit_max_keys: 1_000_000,
            // The hosted service's 20 failures per 15 minutes per address.
            auth_failure_rate: Quota {
                burst: 20,
                per_minute: 2,
            },
            rollup_max_distinct_per_day: 1000,
            app_storage_quota_bytes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        burst: 3,
        per_minute: 60,
    };

    #[test]
    fn burst_then_the_sustained_rate() {
        let limiter = KeyedLimiter::new(Q, 1000);
        let t = 1_000_000;
        for _ in 0..3 {
            limiter.check("a", t).unwrap();
        }
        assert_eq!(limiter.check("a", t), Err(RetryAfter(1)));
        // Another key is not affected.
        limiter.check("b", t).unwrap();
        // One token a second comes back.
        assert_eq!(limiter.check("a", t + 999), Err(RetryAfter(1)));
        limiter.check("a", t + 1000).unwrap();
        assert!(limiter.check("a", t + 1000).is_err());
        // After the whole burst's time, the burst is back.
        for _ in 0..3 {
            limiter.check("a", t + 10_000).unwrap();
        }
    }

    #[test]
    fn retry_after_is_the_time_to_the_next_token() {
        let quota = Quota {
            burst: 1,
            per_minute: 2,
        };
        let limiter = KeyedLimiter::new(quota, 100);
        limiter.check("a", 0).unwrap();
        assert_eq!(limiter.check("a", 0), Err(RetryAfter(30)));
        assert_eq!(limiter.check("a", 10_500), Err(RetryAfter(20)));
        assert_eq!(limiter.blocked("a", 10_500), Some(RetryAfter(20)));
        assert_eq!(limiter.blocked("a", 30_000), None);
    }

    #[test]
    fn blocked_does_not_take_a_token() {
        let limiter = KeyedLimiter::new(Q, 100);
        for _ in 0..10 {
            assert_eq!(limiter.blocked("a", 0), None);
        }
        for _ in 0..3 {
            limiter.check("a", 0).unwrap();
        }
        assert!(limiter.blocked("a", 0).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_keys() {
        let limiter = KeyedLimiter::new(Q, 6400);
        for i in 0..200_000u32 {
            limiter.check(i, 0).unwrap();
            // A busy real key keeps being seen and is never forgotten.
            if i % 50 == 0 {
                let _ = limiter.check("busy", i64::from(i));
            }
        }
        assert!(
            limiter.tracked() <= limiter.capacity(),
            "{}",
            limiter.tracked()
        );
        assert!(limiter.capacity() <= 6400);
        // Still remembered (and so still limited) right after its last request.
        assert!(limiter.blocked("busy", 199_960).is_some());
    }

    #[test]
    fn a_zero_quota_is_off() {
        let limiter = KeyedLimiter::new(
            Quota {
                burst: 0,
                per_minute: 60,
            },
            10,
        );
        for _ in 0..1000 {
            limiter.check("a", 0).unwrap();
        }
        assert_eq!(limiter.tracked(), 0);
    }
}
