//! Token-bucket rate limiting: per user (or per address before login) on the endpoints the
//! spec marks as rate-limited, and per action ([`Action`]: logins, failed logins, registrations,
//! room creations, invites, joins, messages, uploads) with defaults like Synapse's. Appservices
//! that ask for it (`rate_limited: false`) and server admins are exempt from the per-action
//! limits.

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Instant};

use crate::{config::RateLimits, error::Error};

/// What a per-action limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Login attempts from one address.
    LoginAddress,
    /// Login attempts for one account.
    LoginAccount,
    /// Failed logins of one account (wrong password).
    LoginFailure,
    /// Registrations from one address.
    Registration,
    /// Rooms a user creates.
    RoomCreation,
    /// Invites a user sends.
    Invite,
    /// Rooms a user joins (or knocks on).
    Join,
    /// Events a user sends into rooms.
    Message,
    /// Files a user uploads.
    MediaUpload,
}

/// One limiter per action, configured by `rate_limits.actions`.
pub struct ActionLimiters {
    enabled: bool,
    limiters: HashMap<Action, RateLimiter>,
}

impl ActionLimiters {
    pub fn new(cfg: &RateLimits) -> Self {
        let a = &cfg.actions;
        let limiters = [
            (Action::LoginAddress, a.login_address),
            (Action::LoginAccount, a.login_account),
            (Action::LoginFailure, a.login_failure),
            (Action::Registration, a.registration),
            (Action::RoomCreation, a.room_creation),
            (Action::Invite, a.invite),
            (Action::Join, a.join),
            (Action::Message, a.message),
            (Action::MediaUpload, a.media_upload),
        ]
        .into_iter()
        .map(|(action, l)| {
            let limiter = RateLimiter::new(RateLimits {
                enabled: cfg.enabled,
                per_second: l.per_second,
                burst: l.burst,
                ..RateLimits::default()
            });
            (action, limiter)
        })
        .collect();
        Self {
            enabled: cfg.enabled,
            limiters,
        }
    }

    /// Takes one `action` for `key` (a user ID, an address), or answers 429 `M_LIMIT_EXCEEDED`
    /// with `retry_after_ms`.
    pub fn check(&self, action: Action, key: &str) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        match self.limiters.get(&action) {
            Some(l) => l.check(key),
            None => Ok(()),
        }
    }

    /// Whether `action` for `key` has a token left, without taking it (a failed login is
    /// counted only once it has failed, but refused up front when none is left).
    pub fn would_allow(&self, action: Action, key: &str) -> bool {
        !self.enabled || self.limiters.get(&action).is_none_or(|l| l.peek(key))
    }
}

/// The client's address as rate limits see it: the peer, unless it is a trusted proxy
/// (`rate_limits.trusted_proxies`) that says in `X-Forwarded-For` whom it forwards for (the
/// last address there that is not itself a trusted proxy).
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&ip.to_canonical()));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    chain
        .split(',')
        .rev()
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .find(|ip| !is_trusted(ip))
        .or(Some(peer))
}

pub struct RateLimiter {
    cfg: RateLimits,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimits) -> Self {
        Self {
            cfg,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter of `per_minute` actions per key (bursts of as many), on when `enabled`.
    pub fn per_minute(per_minute: u32, enabled: bool) -> Self {
        Self::new(RateLimits {
            enabled,
            per_second: f64::from(per_minute) / 60.0,
            burst: per_minute,
            ..RateLimits::default()
        })
    }

    /// Takes one token for `key`, or answers `M_LIMIT_EXCEEDED` with when to retry.
    pub fn check(&self, key: &str) -> Result<(), Error> {
        if !self.cfg.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information; drop them to bound memory.
            let burst = self.cfg.burst as f64;
            let rate = self.cfg.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets
            .entry(key.to_owned())
            .or_insert((self.cfg.burst as f64, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.cfg.per_second)
            .min(self.cfg.burst as f64);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - *tokens) / self.cfg.per_second * 1000.0).ceil() as u64;
            Err(Error::limit_exceeded(wait.max(1)))
        }
    }

    /// Whether `key` has a token left (nothing taken).
    pub fn peek(&self, key: &str) -> bool {
        if !self.cfg.enabled {
            return true;
        }
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get(key).is_none_or(|(tokens, at)| {
            tokens + at.elapsed().as_secs_f64() * self.cfg.per_second >= 1.0
        })
    }

    /// [`RateLimiter::check`] for a user.
    pub fn take(&self, user: &ruma::UserId) -> Result<(), Error> {
        self.check(user.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActionLimit;

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_address(Some(remote), Some("1.2.3.4"), &trusted),
            Some(remote)
        );
        assert_eq!(
            client_address(Some(local), Some("1.2.3.4, 203.0.113.9"), &trusted),
            Some(remote)
        );
        assert_eq!(client_address(Some(local), None, &trusted), Some(local));
        assert_eq!(
            client_address(Some(local), Some("junk"), &trusted),
            Some(local)
        );
    }

    #[test]
    fn actions_have_their_own_buckets() {
        let mut cfg = RateLimits::default();
        cfg.actions.message = ActionLimit {
            per_second: 0.001,
            burst: 2,
        };
        let l = ActionLimiters::new(&cfg);
        assert!(l.check(Action::Message, "@a:x").is_ok());
        assert!(l.check(Action::Message, "@a:x").is_ok());
        assert!(l.check(Action::Message, "@a:x").is_err());
        assert!(l.check(Action::Message, "@b:x").is_ok());
        assert!(l.check(Action::Join, "@a:x").is_ok());
        assert!(!l.would_allow(Action::Message, "@a:x"));
    }
}
