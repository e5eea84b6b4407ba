//! Keeping the bot polite and cheap in group rooms: per-room and per-person question limits,
//! and a per-room cache of answers to repeated questions.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Sliding one-minute windows of questions per key (a room or a person).
pub struct RateLimiter {
    per_minute: u32,
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// What the limiter decided about one question.
#[derive(Debug, PartialEq, Eq)]
pub enum Allowance {
    Allowed,
    /// Over the limit; `first` is true for the first refusal in this window, which is the only
    /// one worth telling the asker about.
    Refused {
        first: bool,
    },
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may ask now without counting it.
    fn over(&self, key: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let q = seen.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            q.pop_front();
        }
        q.len() >= self.per_minute as usize
    }

    fn count(&self, key: &str, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.entry(key.to_owned()).or_default().push_back(now);
    }
}

/// The room's and the asker's limits together: a question counts against both only when both
/// allow it.
pub struct Limits {
    pub rooms: RateLimiter,
    pub users: RateLimiter,
    /// Keys already told in their current window (cleared when they are allowed again).
    told: Mutex<HashMap<String, Instant>>,
}

impl Limits {
    pub fn new(room_per_minute: u32, user_per_minute: u32) -> Self {
        Self {
            rooms: RateLimiter::new(room_per_minute),
            users: RateLimiter::new(user_per_minute),
            told: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, room: &str, user: &str) -> Allowance {
        self.check_at(room, user, Instant::now())
    }

    fn check_at(&self, room: &str, user: &str, now: Instant) -> Allowance {
        let key = format!("{room}\u{0}{user}");
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        if self.rooms.over(room, now) || self.users.over(user, now) {
            let first = match told.get(&key) {
                Some(t) if now.duration_since(*t) < Duration::from_secs(60) => false,
                _ => {
                    told.insert(key, now);
                    true
                }
            };
            return Allowance::Refused { first };
        }
        told.remove(&key);
        self.rooms.count(room, now);
        self.users.count(user, now);
        Allowance::Allowed
    }
}

/// The form under which questions count as "the same": lower case, words only.
pub fn normalise(question: &str) -> String {
    question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Answers per (room, normalised question), each kept for the TTL.
pub struct AnswerCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Instant, V)>>,
}

impl<V: Clone> AnswerCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, room: &str, question: &str) -> Option<V> {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (room.to_owned(), normalise(question));
        match e.get(&key) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                e.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, room: &str, question: &str, v: V) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        e.retain(|_, (at, _)| at.elapsed() < ttl);
        e.insert((room.to_owned(), normalise(question)), (Instant::now(), v));
    }

    /// Forgets a room's answers (its settings changed).
    pub fn forget_room(&self, room: &str) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|(r, _), _| r != room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_room_and_person_and_tell_once() {
        let l = Limits::new(3, 2);
        let t = Instant::now();
        assert_eq!(l.check_at("!r", "@a", t), Allowance::Allowed);
        assert_eq!(l.check_at("!r", "@a", t), Allowance::Allowed);
        assert_eq!(
            l.check_at("!r", "@a", t),
            Allowance::Refused { first: true }
        );
        assert_eq!(
            l.check_at("!r", "@a", t),
            Allowance::Refused { first: false }
        );
        // Someone else in the same room: the room has one question left.
        assert_eq!(l.check_at("!r", "@b", t), Allowance::Allowed);
        assert_eq!(
            l.check_at("!r", "@b", t),
            Allowance::Refused { first: true }
        );
        // A minute later everyone may ask again.
        let later = t + Duration::from_secs(61);
        assert_eq!(l.check_at("!r", "@a", later), Allowance::Allowed);
    }

    #[test]
    fn the_cache_matches_normalised_questions_within_its_ttl() {
        assert_eq!(normalise("  Who speaks SPANISH?? "), "who speaks spanish");
        let c = AnswerCache::new(Duration::from_secs(60));
        c.put("!r", "Who speaks Spanish?", "Ana".to_owned());
        assert_eq!(c.get("!r", "who speaks spanish").as_deref(), Some("Ana"));
        assert_eq!(c.get("!other", "who speaks spanish"), None);
        c.forget_room("!r");
        assert_eq!(c.get("!r", "who speaks spanish"), None);
        let expired = AnswerCache::new(Duration::ZERO);
        expired.put("!r", "q", 1);
        assert_eq!(expired.get("!r", "q"), None);
    }
}
