//! Registry authentication: `WWW-Authenticate` challenges, and bearer tokens cached per
//! credential (a token one credential earned is never offered on behalf of another).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::digest::Digest;
use crate::keyring::Credential;

/// Tokens without `expires_in` live 60 s (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Renew a little early so a token does not expire between check and use.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`; unknown
/// schemes are skipped. Quoted values may contain commas.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut challenges = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (params, remaining) = parse_params(after);
        rest = remaining;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => challenges.push(Challenge::Basic),
            "bearer" => {
                if let Some(realm) = params.get("realm") {
                    challenges.push(Challenge::Bearer {
                        realm: realm.clone(),
                        service: params.get("service").cloned(),
                        scope: params.get("scope").cloned(),
                    });
                }
            }
            _ => {}
        }
    }
    challenges
}

/// Reads `key=value` / `key="quoted, value"` pairs until a token that starts a new challenge.
fn parse_params(mut text: &str) -> (HashMap<String, String>, &str) {
    let mut params = HashMap::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        let Some(eq) = text.find('=') else {
            return (params, text);
        };
        let key = &text[..eq];
        if key.contains(' ') || key.is_empty() {
            // The next challenge's scheme.
            return (params, text);
        }
        let after = &text[eq + 1..];
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key.to_ascii_lowercase(), value);
        text = remaining;
    }
}

/// A stable identity for a credential, so caches can be keyed by it without keeping the
/// secret itself as a key.
pub fn credential_id(credential: Option<&Credential>) -> String {
    match credential {
        None => "anonymous".into(),
        Some(c) if c.is_anonymous() => "anonymous".into(),
        Some(c) => {
            let material = format!(
                "{}\0{}\0{}\0{}",
                c.username, c.password, c.identity_token, c.registry_token
            );
            Digest::sha256_of(material.as_bytes()).hex()[..32].to_string()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: String,
    scope: String,
    credential: String,
}

/// Bearer tokens by realm, service, scope and credential.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl TokenCache {
    pub fn get(
        &self,
        realm: &str,
        service: &str,
        scope: &str,
        credential: &str,
        now: Instant,
    ) -> Option<String> {
        let key = TokenKey {
            realm: realm.into(),
            service: service.into(),
            scope: scope.into(),
            credential: credential.into(),
        };
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(&key)
            .filter(|(_, expires)| now < *expires)
            .map(|(token, _)| token.clone())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        realm: &str,
        service: &str,
        scope: &str,
        credential: &str,
        token: String,
        expires_in: Option<Duration>,
        now: Instant,
    ) {
        let lifetime = expires_in
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .saturating_sub(EXPIRY_MARGIN);
        let key = TokenKey {
            realm: realm.into(),
            service: service.into(),
            scope: scope.into(),
            credential: credential.into(),
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, (_, expires)| now < *expires);
        tokens.insert(key, (token, now + lifetime));
    }

    /// Forgets a token the registry rejected (expired early, revoked).
    pub fn forget(&self, realm: &str, service: &str, scope: &str, credential: &str) {
        let key = TokenKey {
            realm: realm.into(),
            service: service.into(),
            scope: scope.into(),
            credential: credential.into(),
        };
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_quoted_commas() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        assert_eq!(
            parse_challenges(header),
            vec![Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }]
        );
    }

    #[test]
    fn parses_basic_and_several_challenges() {
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        let both = parse_challenges(r#"Basic realm="x", Bearer realm="https://t/token",service=s"#);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], Challenge::Basic);
        assert!(matches!(&both[1], Challenge::Bearer { service: Some(s), .. } if s == "s"));
        assert!(parse_challenges("Negotiate abc").is_empty());
        assert!(
            parse_challenges("Bearer service=x").is_empty(),
            "a bearer challenge needs a realm"
        );
    }

    #[test]
    fn tokens_are_cached_per_credential_and_expire() {
        let cache = TokenCache::default();
        let now = Instant::now();
        let alice = credential_id(Some(&Credential::basic("alice", "a")));
        let bob = credential_id(Some(&Credential::basic("bob", "b")));
        assert_ne!(alice, bob);
        cache.put(
            "r",
            "s",
            "repository:x:pull",
            &alice,
            "T".into(),
            Some(Duration::from_secs(300)),
            now,
        );
        assert_eq!(
            cache
                .get("r", "s", "repository:x:pull", &alice, now)
                .as_deref(),
            Some("T")
        );
        assert_eq!(cache.get("r", "s", "repository:x:pull", &bob, now), None);
        assert_eq!(cache.get("r", "s", "repository:y:pull", &alice, now), None);
        assert_eq!(
            cache.get(
                "r",
                "s",
                "repository:x:pull",
                &alice,
                now + Duration::from_secs(296)
            ),
            None
        );
        cache.forget("r", "s", "repository:x:pull", &alice);
        assert_eq!(cache.get("r", "s", "repository:x:pull", &alice, now), None);
    }

    #[test]
    fn credential_ids_do_not_reveal_the_secret() {
        let id = credential_id(Some(&Credential::basic("alice", "hunter2")));
        assert!(!id.contains("hunter2") && !id.contains("alice"));
        assert_eq!(credential_id(None), "anonymous");
    }
}
