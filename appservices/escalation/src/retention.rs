//! Retention: conversations that ended more than their affiliate's `retention_days` ago, or
//! whose texter asked for deletion (the SMS bridge's DELETE) once they ended, are purged from
//! the homeserver (the whole room, through the admin API Haven and Synapse both serve at
//! `DELETE /_synapse/admin/v1/rooms/{roomId}`) and from the handler's records. A sweep without
//! `purge` only reports what it would remove.

use std::collections::BTreeMap;

use appservice_runtime::BoxError;

use crate::{conversation::Conversation, handler::Handler, now_ms};

/// Conversations due for purging at `now_ms`, with why.
pub fn due(h: &Handler, convs: &BTreeMap<u64, Conversation>, now_ms: u64) -> Vec<(u64, String)> {
    convs
        .values()
        .filter(|c| c.state.is_final())
        .filter_map(|c| {
            let ended = c.closed_ms.unwrap_or(c.created_ms);
            if c.deletion_requested {
                return Some((c.id, "the texter asked for deletion".to_owned()));
            }
            let days = h.config.retention_days(&c.affiliate)?;
            let age_days = now_ms.saturating_sub(ended) / 86_400_000;
            (now_ms.saturating_sub(ended) >= days * 86_400_000).then(|| {
                (
                    c.id,
                    format!("ended {age_days} days ago (retention {days} days)"),
                )
            })
        })
        .collect()
}

/// Reports (and with `purge`, purges) what retention removes; answers the report.
pub async fn sweep(
    h: &Handler,
    convs: &mut BTreeMap<u64, Conversation>,
    purge: bool,
) -> Result<String, BoxError> {
    let due = due(h, convs, now_ms());
    if due.is_empty() {
        return Ok("Retention: nothing to purge.".into());
    }
    let mut lines = vec![format!(
        "Retention{}: {} conversation(s){}",
        if purge { "" } else { " (dry run)" },
        due.len(),
        if purge {
            " purged:"
        } else {
            " would be purged:"
        }
    )];
    for (id, why) in due {
        let Some(c) = convs.get(&id).cloned() else {
            continue;
        };
        if purge {
            match h.client.purge_room(&c.room).await {
                Ok(()) => {
                    h.store.remove("conversations", &format!("{id:012}"))?;
                    convs.remove(&id);
                    lines.push(format!("#{id} ({}) — {why}", c.program));
                }
                Err(e) => lines.push(format!("#{id} ({}) — NOT purged: {e}", c.program)),
            }
        } else {
            lines.push(format!("#{id} ({}) — {why}", c.program));
        }
    }
    h.store.flush().await?;
    if purge {
        // Removed records stay in the store's old pages until rewritten: rewrite now, so
        // the texter's survey answers and the rest are gone from disk.
        h.store.compact()?;
    }
    Ok(lines.join("\n"))
}
