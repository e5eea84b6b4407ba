//! `/relations` (all three path forms) and `/threads`.

use std::sync::Arc;

use axum::extract::State;
use ruma::{
    api::{
        client::{
            relations::{
                get_relating_events, get_relating_events_with_rel_type,
                get_relating_events_with_rel_type_and_event_type,
            },
            threads::get_threads,
        },
        Direction,
    },
    serde::Raw,
    EventId, RoomId, UInt,
};

use crate::{
    api::{
        client::events::visible_event,
        extract::{ApiResult, Ruma, RumaResponse},
    },
    error::Error,
    events::client::raw,
    users::Session,
    Haven,
};

/// How deep `recurse` follows relations of relations.
const MAX_DEPTH: usize = 3;

/// What a relations request asks for, whichever path form it came by.
struct Query<'a> {
    room: &'a RoomId,
    event: &'a EventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    dir: Direction,
    limit: Option<UInt>,
    recurse: bool,
}

struct Page<T> {
    chunk: Vec<Raw<T>>,
    next_batch: Option<String>,
    recursion_depth: Option<UInt>,
}

fn pos_token(t: Option<&str>) -> Result<Option<u64>, Error> {
    t.map(|t| {
        t.parse::<u64>()
            .map_err(|_| Error::invalid_param("Unknown pagination token"))
    })
    .transpose()
}

fn relations<T>(h: &Haven, s: &Session, q: Query<'_>) -> Result<Page<T>, Error> {
    let (_, _, vis) = visible_event(h, q.room, &s.user_id, q.event)?;
    let from = pos_token(q.from)?;
    let to = pos_token(q.to)?;
    let limit = q.limit.map_or(50, |l| u64::from(l).clamp(1, 100) as usize);
    // The matching relations, down to MAX_DEPTH levels with `recurse`.
    let mut found = Vec::new();
    let mut level = vec![q.event.to_owned()];
    let mut depth = 0;
    while !level.is_empty() && depth < if q.recurse { MAX_DEPTH } else { 1 } {
        depth += 1;
        let mut next = Vec::new();
        for parent in &level {
            for c in h.rooms.children(q.room, parent)? {
                if !vis.contains(c.pos) {
                    continue;
                }
                let Ok(id) = EventId::parse(&c.event_id) else {
                    continue;
                };
                next.push(id.clone());
                if q.rel_type.as_ref().is_some_and(|r| *r != c.rel_type) {
                    continue;
                }
                let Some(pdu) = h.rooms.get_pdu(&id)? else {
                    continue;
                };
                if q.event_type
                    .as_ref()
                    .is_some_and(|t| *t != pdu.kind.to_string())
                {
                    continue;
                }
                found.push((c.pos, pdu));
            }
        }
        level = next;
    }
    found.sort_by_key(|(pos, _)| *pos);
    if q.dir == Direction::Backward {
        found.reverse();
    }
    let after = |pos: u64| match q.dir {
        Direction::Backward => from.is_none_or(|f| pos < f) && to.is_none_or(|t| pos >= t),
        Direction::Forward => from.is_none_or(|f| pos > f) && to.is_none_or(|t| pos <= t),
    };
    let page: Vec<_> = found.into_iter().filter(|(p, _)| after(*p)).collect();
    let more = page.len() > limit;
    let mut chunk = Vec::new();
    let mut last = None;
    for (pos, pdu) in page.into_iter().take(limit) {
        chunk.push(raw(&h
            .rooms
            .format_event(&pdu, Some((&s.user_id, &s.device_id)))?)?);
        last = Some(pos);
    }
    Ok(Page {
        chunk,
        next_batch: if more {
            last.map(|p| p.to_string())
        } else {
            None
        },
        recursion_depth: q.recurse.then(|| UInt::from(depth as u32)),
    })
}

/// The three `/relations` path forms differ only in the relation and event types they fix.
macro_rules! relations_endpoint {
    ($name:ident, $module:ident, $rel:expr, $kind:expr) => {
        pub async fn $name(
            State(h): State<Arc<Haven>>,
            r: Ruma<$module::v1::Request>,
        ) -> ApiResult<$module::v1::Response> {
            let s = r.session()?;
            let b = &r.body;
            let (rel_type, event_type): (Option<String>, Option<String>) = ($rel(b), $kind(b));
            let page = relations(
                &h,
                s,
                Query {
                    room: &b.room_id,
                    event: &b.event_id,
                    rel_type,
                    event_type,
                    from: b.from.as_deref(),
                    to: b.to.as_deref(),
                    dir: b.dir,
                    limit: b.limit,
                    recurse: b.recurse,
                },
            )?;
            let mut resp = $module::v1::Response::new(page.chunk);
            resp.next_batch = page.next_batch;
            resp.recursion_depth = page.recursion_depth;
            Ok(RumaResponse(resp))
        }
    };
}

relations_endpoint!(relating, get_relating_events, |_| None, |_| None);
relations_endpoint!(
    relating_with_type,
    get_relating_events_with_rel_type,
    |b: &get_relating_events_with_rel_type::v1::Request| Some(b.rel_type.to_string()),
    |_| None
);
relations_endpoint!(
    relating_with_type_and_event_type,
    get_relating_events_with_rel_type_and_event_type,
    |b: &get_relating_events_with_rel_type_and_event_type::v1::Request| Some(
        b.rel_type.to_string()
    ),
    |b: &get_relating_events_with_rel_type_and_event_type::v1::Request| Some(
        b.event_type.to_string()
    )
);

/// `GET /rooms/{roomId}/threads`: thread roots, most recently active first.
pub async fn threads(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_threads::v1::Request>,
) -> ApiResult<get_threads::v1::Response> {
    let s = r.session()?;
    let b = &r.body;
    let vis = h
        .rooms
        .visible_range(&b.room_id, &s.user_id)?
        .ok_or_else(|| Error::forbidden("You are not allowed to view this room"))?;
    let participant =
        (b.include == get_threads::v1::IncludeThreads::Participated).then_some(s.user_id.as_ref());
    let from = pos_token(b.from.as_deref())?;
    let limit = b.limit.map_or(20, |l| u64::from(l).clamp(1, 100) as usize);
    let all: Vec<_> = h
        .rooms
        .threads(&b.room_id, participant, &vis)?
        .into_iter()
        .filter(|(at, _)| from.is_none_or(|f| *at < f))
        .collect();
    let more = all.len() > limit;
    let mut chunk = Vec::new();
    let mut last = None;
    for (at, pdu) in all.into_iter().take(limit) {
        chunk.push(raw(&h
            .rooms
            .format_event(&pdu, Some((&s.user_id, &s.device_id)))?)?);
        last = Some(at);
    }
    let mut resp = get_threads::v1::Response::new(chunk);
    resp.next_batch = if more {
        last.map(|p| p.to_string())
    } else {
        None
    };
    Ok(RumaResponse(resp))
}
