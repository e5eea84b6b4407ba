//! Token-bucket rate limiting per user (or per IP before login) on endpoints the spec marks
//! as rate-limited.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use crate::{config::RateLimits, error::Error};

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

    /// [`RateLimiter::check`] for a user.
    pub fn take(&self, user: &ruma::UserId) -> Result<(), Error> {
        self.check(user.as_str())
    }
}
