//! `POST /search`: room events by full text (see [`crate::search`]).

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    api::client::search::search_events::v3::{
        self as se, EventContextResult, OrderBy, ResultCategories, ResultRoomEvents, SearchResult,
    },
    OwnedRoomId, UInt,
};
use serde_json::json;

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    error::Error,
    events::client::raw,
    rooms::timeline::Dir,
    search,
    sync::make_token,
    Haven,
};

pub async fn search(State(h): State<Arc<Haven>>, r: Ruma<se::Request>) -> ApiResult<se::Response> {
    let s = r.session()?;
    let Some(c) = &r.body.search_categories.room_events else {
        return Ok(RumaResponse(se::Response::new(ResultCategories::new())));
    };
    // Make sure what was just sent is searchable.
    crate::storage::blocking(|| search::catch_up(&h))?;
    let mut rooms = Vec::new();
    for room in h.rooms.joined_rooms(&s.user_id)? {
        if c.filter
            .rooms
            .as_ref()
            .is_some_and(|rs| !rs.contains(&room))
            || c.filter.not_rooms.contains(&room)
        {
            continue;
        }
        if let Some(vis) = h.rooms.visible_range(&room, &s.user_id)? {
            rooms.push((room, vis));
        }
    }
    let start: usize = match &r.body.next_batch {
        Some(t) => t
            .parse()
            .map_err(|_| Error::invalid_param("Unknown pagination token"))?,
        None => 0,
    };
    let limit = c
        .filter
        .limit
        .map_or(10, |l| u64::from(l).clamp(1, 100) as usize);
    // Every match has every word, so "rank" and "recent" agree: newest first.
    let _ = c.order_by == Some(OrderBy::Recent);
    let page = search::query(&h, &c.search_term, &rooms, start, limit)?;
    let vis_of: BTreeMap<&OwnedRoomId, _> = rooms.iter().map(|(r, v)| (r, v)).collect();
    let before_n = u64::from(c.event_context.before_limit) as usize;
    let after_n = u64::from(c.event_context.after_limit) as usize;
    let want_context = before_n > 0 || after_n > 0;
    let mut results = Vec::new();
    let mut by_room: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let now = h.stream.current();
    for hit in &page.hits {
        let Some(id) = h.db.t.stream_events.get(&hit.pos)? else {
            continue;
        };
        let Ok(id) = ruma::EventId::parse(&id) else {
            continue;
        };
        let Some(pdu) = h.rooms.get_pdu(&id)? else {
            continue;
        };
        if !crate::sync::filter::event_matches(&c.filter, &pdu) {
            continue;
        }
        let mut res = SearchResult::new();
        res.rank = Some(hit.rank);
        res.result = Some(raw(&h
            .rooms
            .format_event(&pdu, Some((&s.user_id, &s.device_id)))?)?);
        if want_context {
            let vis = vis_of.get(&hit.room).copied();
            let mut ctx = EventContextResult::new();
            let lo = vis.map_or(0, |v| v.from.saturating_sub(1));
            let hi = vis.map_or(now, |v| v.to.min(now));
            for (_, p) in
                h.rooms
                    .timeline_range(&hit.room, lo, hit.pos - 1, before_n, Dir::Backward)?
            {
                ctx.events_before
                    .push(raw(&h.rooms.format_event(&p, None)?)?);
            }
            for (_, p) in h
                .rooms
                .timeline_range(&hit.room, hit.pos, hi, after_n, Dir::Forward)?
            {
                ctx.events_after
                    .push(raw(&h.rooms.format_event(&p, None)?)?);
            }
            ctx.start = Some(make_token(hit.pos.saturating_sub(1)));
            ctx.end = Some(make_token(hit.pos));
            res.context = ctx;
        }
        by_room
            .entry(hit.room.to_string())
            .or_default()
            .push(pdu.event_id.to_string());
        results.push(res);
    }
    let mut out = ResultRoomEvents::new();
    out.count = Some(UInt::try_from(page.count).unwrap_or_default());
    out.highlights = page.terms.clone();
    out.next_batch = page.more.then(|| (start + limit).to_string());
    out.results = results;
    let grouped_by_room = c
        .groupings
        .group_by
        .iter()
        .any(|g| g.key.as_ref().is_some_and(|k| k.as_str() == "room_id"));
    if grouped_by_room {
        let groups: serde_json::Map<String, serde_json::Value> = by_room
            .into_iter()
            .enumerate()
            .map(|(i, (room, ids))| (room, json!({ "results": ids, "order": i })))
            .collect();
        out.groups =
            serde_json::from_value(json!({ "room_id": groups })).map_err(Error::internal)?;
    }
    let mut cats = ResultCategories::new();
    cats.room_events = out;
    Ok(RumaResponse(se::Response::new(cats)))
}
