//! Full-text search over room messages. An indexer follows the event stream in the background
//! (from a stored watermark, so it survives restarts and indexes existing rooms on first start)
//! and writes one posting per (word, room, position) in batches; queries intersect the postings
//! of the query's words and keep what the searcher may see.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use ruma::{EventId, OwnedRoomId};

use crate::{
    error::Result,
    rooms::visibility::Visible,
    storage::{keys::Key, prefix, Batch},
    Haven,
};

const WATERMARK: &str = "search_indexed_pos_v2";
const BATCH: usize = 500;
/// Words longer than this are not indexed (nobody types them).
const MAX_WORD: usize = 64;

/// The words of `text`: lower case, letters and digits, deduplicated.
pub fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() <= MAX_WORD)
        .map(str::to_lowercase)
        .collect()
}

/// The searchable text of an event, if any: message bodies, room names and topics.
fn text_of(kind: &str, content: &serde_json::Value) -> Option<String> {
    let field = match kind {
        "m.room.message" => "body",
        "m.room.name" => "name",
        "m.room.topic" => "topic",
        _ => return None,
    };
    content[field].as_str().map(str::to_owned)
}

/// Indexes events published after the watermark, then waits for more; for ever.
pub fn start(h: Arc<Haven>) {
    tokio::spawn(async move {
        let mut rx = h.stream.subscribe();
        loop {
            if let Err(e) = crate::storage::blocking(|| catch_up(&h)) {
                tracing::error!(error = %e, "search indexing failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// One indexer at a time: the background task and a search catching up must not index the
/// same events twice (postings would not mind, the per-word counts would).
static INDEXING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Indexes everything published so far; answers the new watermark.
pub fn catch_up(h: &Haven) -> Result<u64> {
    let _one = INDEXING.lock().unwrap_or_else(|e| e.into_inner());
    let upto = h.stream.current();
    let mut done = h.db.meta_u64(WATERMARK)?;
    while done < upto {
        let from = done.saturating_add(1).encode();
        let to = upto.saturating_add(1).encode();
        let mut batch = Batch::default();
        let mut df: HashMap<String, u64> = HashMap::new();
        let mut last = done;
        let mut n = 0;
        for item in h.db.t.stream_events.range(&from, &to, false).take(BATCH) {
            let (pos, id) = item?;
            last = pos;
            n += 1;
            let Ok(id) = EventId::parse(&id) else {
                continue;
            };
            let Some(pdu) = h.rooms.get_pdu(&id)? else {
                continue;
            };
            let Some(text) = text_of(&pdu.kind.to_string(), &pdu.content_value()) else {
                continue;
            };
            for w in words(&text) {
                h.db.t.search_postings.batch_put(
                    &mut batch,
                    &(w.clone(), u64::MAX - pos, pdu.room_id.to_string()),
                    &(),
                )?;
                *df.entry(w).or_insert(0) += 1;
            }
        }
        if n == 0 {
            last = upto;
        }
        for (w, add) in df {
            let had = h.db.t.search_df.get(&w)?.unwrap_or(0);
            h.db.t.search_df.put(&w, &(had + add))?;
        }
        h.db.t.search_postings.apply(batch)?;
        h.db.put_meta_u64(WATERMARK, last)?;
        done = last;
    }
    Ok(done)
}

/// Removes the postings of `room` whose event is gone (a purged room or purged history), and
/// their words' counts, so nothing of a purged event stays in the index. Walks the whole
/// index: purges are rare.
pub fn forget_gone(h: &Haven, room: &ruma::RoomId) -> Result<u64> {
    let _one = INDEXING.lock().unwrap_or_else(|e| e.into_inner());
    let room = room.to_string();
    let mut gone: Vec<(String, u64, String)> = Vec::new();
    for item in h.db.t.search_postings.scan_prefix(&[]) {
        let ((word, rev_pos, r), ()) = item?;
        if r != room {
            continue;
        }
        let pos = u64::MAX - rev_pos;
        let still_there = match h.db.t.stream_events.get(&pos)? {
            Some(id) => h.db.t.pdus.contains(&id)?,
            None => false,
        };
        if !still_there {
            gone.push((word, rev_pos, r));
        }
    }
    let mut df: HashMap<String, u64> = HashMap::new();
    for key in &gone {
        h.db.t.search_postings.remove(key)?;
        *df.entry(key.0.clone()).or_insert(0) += 1;
    }
    for (w, less) in df {
        match h.db.t.search_df.get(&w)?.unwrap_or(0).saturating_sub(less) {
            0 => h.db.t.search_df.remove(&w)?,
            n => h.db.t.search_df.put(&w, &n)?,
        }
    }
    Ok(gone.len() as u64)
}

/// One match: the room and the event's position.
pub struct Hit {
    pub room: OwnedRoomId,
    pub pos: u64,
    pub rank: f64,
}

/// A page of matches, newest first.
pub struct Page {
    pub hits: Vec<Hit>,
    /// Exact when the whole index was walked, else an upper bound (the rarest word's count).
    pub count: u64,
    pub more: bool,
    pub terms: Vec<String>,
}

/// Events in `rooms` (each with what the searcher may see) containing every word of `query`,
/// newest first, skipping `skip` and returning at most `limit`. The rarest word's postings are
/// walked newest first and the walk stops once the page is full, so a common word costs no
/// more than a rare one. Rank: how rare the words are (rarer words weigh more).
pub fn query(
    h: &Haven,
    query: &str,
    rooms: &[(OwnedRoomId, Visible)],
    skip: usize,
    limit: usize,
) -> Result<Page> {
    let terms: Vec<String> = words(query).into_iter().collect();
    let mut page = Page {
        hits: Vec::new(),
        count: 0,
        more: false,
        terms: terms.clone(),
    };
    if terms.is_empty() || rooms.is_empty() {
        return Ok(page);
    }
    let allowed: HashMap<&str, &Visible> = rooms.iter().map(|(r, v)| (r.as_str(), v)).collect();
    let mut by_df: Vec<(String, u64)> = Vec::new();
    for t in &terms {
        by_df.push((t.clone(), h.db.t.search_df.get(t)?.unwrap_or(0)));
    }
    by_df.sort_by_key(|(_, n)| *n);
    let rarest = by_df[0].clone();
    let rank: f64 = by_df
        .iter()
        .map(|(_, n)| (1.0 + 1.0 / (*n as f64 + 1.0)).ln() * 10.0)
        .sum();
    let mut found = 0usize;
    let mut exhausted = true;
    for item in
        h.db.t
            .search_postings
            .scan_prefix(&prefix(rarest.0.as_str()))
    {
        let ((_, inv, room), ()) = item?;
        let pos = u64::MAX - inv;
        let Some(vis) = allowed.get(room.as_str()) else {
            continue;
        };
        if !vis.contains(pos) {
            continue;
        }
        let mut all = true;
        for (t, _) in &by_df[1..] {
            if !h
                .db
                .t
                .search_postings
                .contains(&(t.clone(), inv, room.clone()))?
            {
                all = false;
                break;
            }
        }
        if !all {
            continue;
        }
        found += 1;
        if found <= skip {
            continue;
        }
        if page.hits.len() == limit {
            page.more = true;
            exhausted = false;
            break;
        }
        if let Ok(room) = OwnedRoomId::try_from(room) {
            page.hits.push(Hit { room, pos, rank });
        }
    }
    page.count = if exhausted { found as u64 } else { rarest.1 };
    Ok(page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_lower_case_alphanumeric_and_unique() {
        let w: Vec<String> = super::words("Hello, hello WORLD! café 42 — x_y")
            .into_iter()
            .collect();
        assert_eq!(w, ["42", "café", "hello", "world", "x", "y"]);
    }
}
