//! Cached plugin responses, keyed as the response's `cacheKeyType` says.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::api::PluginCacheKeyType;
use crate::keyring::docker_config::RegistryAuths;

/// Longest cache lifetime honoured; beyond it `Instant` arithmetic could overflow.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Typed so that an image literally named like another key kind cannot collide with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Image(String),
    Registry(String),
    Global,
}

#[derive(Debug, Clone)]
struct CachedAuths {
    auths: RegistryAuths,
    expires_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct ResponseCache {
    entries: HashMap<CacheKey, CachedAuths>,
}

/// The registry part of an image for `Registry` cache keys: everything before the first `/`
/// (host and port).
pub(crate) fn registry_of(image: &str) -> &str {
    image.split('/').next().unwrap_or_default()
}

impl ResponseCache {
    /// A response cached for `image`: by image, else by its registry, else global. Entries
    /// stay valid up to and including their expiry instant.
    pub(crate) fn get(&mut self, image: &str, now: Instant) -> Option<RegistryAuths> {
        self.entries.retain(|_, cached| now <= cached.expires_at);
        [
            CacheKey::Image(image.to_owned()),
            CacheKey::Registry(registry_of(image).to_owned()),
            CacheKey::Global,
        ]
        .iter()
        .find_map(|key| self.entries.get(key))
        .map(|cached| cached.auths.clone())
    }

    /// Caches `auths` for `lifetime` from `now`; a zero lifetime caches nothing.
    pub(crate) fn insert(
        &mut self,
        key_type: PluginCacheKeyType,
        image: &str,
        auths: RegistryAuths,
        now: Instant,
        lifetime: Duration,
    ) {
        if lifetime.is_zero() {
            return;
        }
        let key = match key_type {
            PluginCacheKeyType::Image => CacheKey::Image(image.to_owned()),
            PluginCacheKeyType::Registry => CacheKey::Registry(registry_of(image).to_owned()),
            PluginCacheKeyType::Global => CacheKey::Global,
        };
        let expires_at = now + lifetime.min(MAX_CACHE_LIFETIME);
        self.entries.insert(key, CachedAuths { auths, expires_at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::credential::Credential;

    fn auths(user: &str) -> RegistryAuths {
        [("r.io".to_owned(), Credential::basic(user, "p"))]
            .into_iter()
            .collect()
    }

    fn user(found: Option<RegistryAuths>) -> Option<String> {
        found.map(|auths| auths.get("r.io").unwrap().username.clone())
    }

    #[test]
    fn honours_key_type_and_lifetime() {
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        let mut cache = ResponseCache::default();
        cache.insert(
            PluginCacheKeyType::Image,
            "r.io/a",
            auths("image"),
            start,
            minute,
        );
        cache.insert(
            PluginCacheKeyType::Registry,
            "r.io/b",
            auths("registry"),
            start,
            2 * minute,
        );
        assert_eq!(user(cache.get("r.io/a", start)), Some("image".into()));
        assert_eq!(
            user(cache.get("r.io/other", start)),
            Some("registry".into())
        );
        assert_eq!(user(cache.get("s.io/a", start)), None);
        // The image entry expires first, then the registry one answers for it too.
        assert_eq!(
            user(cache.get("r.io/a", start + minute)),
            Some("image".into())
        );
        assert_eq!(
            user(cache.get("r.io/a", start + minute + Duration::from_nanos(1))),
            Some("registry".into())
        );
        assert_eq!(user(cache.get("r.io/a", start + 3 * minute)), None);

        cache.insert(
            PluginCacheKeyType::Global,
            "r.io/a",
            auths("global"),
            start,
            minute,
        );
        assert_eq!(
            user(cache.get("anything.io/x", start)),
            Some("global".into())
        );
        // Registry keys keep the port.
        cache.insert(
            PluginCacheKeyType::Registry,
            "r.io:5000/a",
            auths("port"),
            start,
            minute,
        );
        assert_eq!(user(cache.get("r.io:5000/b", start)), Some("port".into()));

        let mut empty = ResponseCache::default();
        empty.insert(
            PluginCacheKeyType::Global,
            "r.io/a",
            auths("never"),
            start,
            Duration::ZERO,
        );
        assert_eq!(user(empty.get("r.io/a", start)), None);
    }
}
