//! A single cached value with a fixed lifetime, driven by caller-supplied time so tests need
//! no sleeping (the kubelet's `CachingDockerConfigProvider`).

use std::time::{Duration, Instant};

/// How long the kubelet reuses the node docker config before reading the files again.
pub const NODE_CONFIG_CACHE_LIFETIME: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub struct TimedCache<T> {
    lifetime: Duration,
    /// The value and the instant from which it is stale.
    entry: Option<(Instant, T)>,
}

impl<T: Clone> TimedCache<T> {
    /// How long a value stays fresh.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            entry: None,
        }
    }

    /// The cached value if it is still fresh at `now`.
    pub fn get(&self, now: Instant) -> Option<T> {
        match &self.entry {
            Some((stale_from, value)) if now < *stale_from => Some(value.clone()),
            _ => None,
        }
    }

    /// Caches `value` as of `now`.
    pub fn insert(&mut self, now: Instant, value: T) {
        // An instant too far in the future to represent means "never stale".
        let stale_from = now.checked_add(self.lifetime);
        match stale_from {
            Some(stale_from) => self.entry = Some((stale_from, value)),
            None => self.entry = Some((far_future(now), value)),
        }
    }

    /// The fresh cached value, or a new one from `load` (which is then cached). Failures are
    /// cached too, like the kubelet caches an empty config when no file is found.
    pub fn get_or_refresh(&mut self, now: Instant, load: impl FnOnce() -> T) -> T {
        if let Some(value) = self.get(now) {
            return value;
        }
        let value = load();
        self.insert(now, value.clone());
        value
    }

    pub fn invalidate(&mut self) {
        self.entry = None;
    }
}

/// The latest instant representable after `now` by doubling down from a century.
fn far_future(now: Instant) -> Instant {
    let mut span = Duration::from_secs(100 * 365 * 24 * 3600);
    while !span.is_zero() {
        if let Some(later) = now.checked_add(span) {
            return later;
        }
        span /= 2;
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_after_the_lifetime() {
        let start = Instant::now();
        let mut cache = TimedCache::new(NODE_CONFIG_CACHE_LIFETIME);
        let mut loads = 0;
        let mut load = |value: u32| {
            loads += 1;
            value
        };
        assert_eq!(cache.get_or_refresh(start, || load(1)), 1);
        assert_eq!(
            cache.get_or_refresh(start + Duration::from_secs(299), || load(2)),
            1
        );
        assert_eq!(
            cache.get_or_refresh(start + Duration::from_secs(300), || load(3)),
            3
        );
        assert_eq!(
            cache.get_or_refresh(start + Duration::from_secs(599), || load(4)),
            3
        );
        assert_eq!(loads, 2);
        cache.invalidate();
        assert_eq!(cache.get(start), None);
    }
}
