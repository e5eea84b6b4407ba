//! Paging through a room's history (`/messages`, `/context`): the live timeline in stream
//! order, then, going back past this server's first event in the room, the history fetched
//! from other servers (backfill, see [`crate::rooms::backfill`]), fetching more as needed.

use ruma::{api::client::filter::RoomEventFilter, RoomId};

use crate::{
    error::{Error, Result},
    events::PduRef,
    rooms::{timeline::Dir, visibility::Visible},
    Haven,
};

/// A point between two events of a room's history, as pagination tokens name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Just after the event at this stream position (`s<pos>`).
    Live(u64),
    /// Just before (older than) the n-th backfilled event (`b<n>`); `Back(0)` is where the
    /// live timeline begins.
    Back(u64),
}

impl Point {
    pub fn parse(token: &str) -> Result<Self> {
        match token.strip_prefix('b') {
            Some(n) => n
                .parse()
                .map(Point::Back)
                .map_err(|_| Error::invalid_param("Invalid pagination token")),
            None => super::parse_token(token).map(Point::Live),
        }
    }

    pub fn token(&self) -> String {
        match self {
            Point::Live(p) => super::make_token(*p),
            Point::Back(n) => format!("b{n}"),
        }
    }
}

/// One page of events in the direction asked, and where the next one starts (`None`: there
/// is nothing more).
pub struct Page {
    pub events: Vec<PduRef>,
    pub end: Option<Point>,
}

/// Rounds of fetching from other servers one request may wait for.
const MAX_FETCHES: usize = 3;

/// Up to `limit` events matching `filter` from `from` in direction `dir`, no further than
/// `to`, within what `vis` lets the user see. History before this server joined counts as
/// position 0 of the live timeline: visible when the user may see the room from its start.
#[allow(clippy::too_many_arguments)]
pub async fn page(
    h: &Haven,
    room: &RoomId,
    vis: &Visible,
    from: Point,
    to: Option<Point>,
    dir: Dir,
    limit: usize,
    filter: &RoomEventFilter,
) -> Result<Page> {
    let sees_backfill = vis.from == 0;
    let mut events = Vec::new();
    let mut cursor = from;
    let mut fetches = 0;
    let keep = |events: &mut Vec<PduRef>, pdu: PduRef| {
        if super::filter::event_matches(filter, &pdu) {
            events.push(pdu);
        }
    };
    while events.len() < limit {
        match (dir, cursor) {
            (Dir::Backward, Point::Live(p)) => {
                let floor = match to {
                    Some(Point::Live(q)) => q,
                    _ => 0,
                };
                let after = floor.max(vis.from.saturating_sub(1));
                let upto = p.min(vis.to);
                let batch =
                    h.rooms
                        .timeline_range(room, after, upto, (limit - events.len()) * 2, dir)?;
                if batch.is_empty() || upto <= after {
                    if after == 0 && sees_backfill && !matches!(to, Some(Point::Live(_))) {
                        cursor = Point::Back(0);
                        continue;
                    }
                    return Ok(reached_an_end(events, cursor));
                }
                for (pos, pdu) in batch {
                    cursor = Point::Live(pos - 1);
                    if vis.contains(pos) {
                        keep(&mut events, pdu);
                    }
                    if events.len() == limit {
                        break;
                    }
                }
            }
            (Dir::Backward, Point::Back(n)) => {
                if !sees_backfill {
                    return Ok(reached_an_end(events, cursor));
                }
                let ceiling = match to {
                    Some(Point::Back(m)) => m,
                    _ => u64::MAX,
                };
                let batch = h
                    .rooms
                    .backfilled_range(room, n, (limit - events.len()) * 2, true)?;
                if batch.is_empty() {
                    if n >= ceiling || h.rooms.backfill_edge(room)?.complete() {
                        return Ok(reached_an_end(events, cursor));
                    }
                    if fetches == MAX_FETCHES {
                        break;
                    }
                    fetches += 1;
                    let added =
                        crate::federation::backfill::fetch_older(h, room, limit - events.len())
                            .await?;
                    if added == 0 {
                        // No server could send more now; a later request may get it.
                        break;
                    }
                    continue;
                }
                for (i, pdu) in batch {
                    if i > ceiling {
                        return Ok(reached_an_end(events, cursor));
                    }
                    cursor = Point::Back(i);
                    keep(&mut events, pdu);
                    if events.len() == limit {
                        break;
                    }
                }
            }
            (Dir::Forward, Point::Back(n)) => {
                if !sees_backfill {
                    cursor = Point::Live(vis.from.saturating_sub(1));
                    continue;
                }
                let floor = match to {
                    Some(Point::Back(m)) => m,
                    _ => 0,
                };
                let batch = h
                    .rooms
                    .backfilled_range(room, n, (limit - events.len()) * 2, false)?;
                let mut reached_floor = batch.is_empty();
                for (i, pdu) in batch {
                    if i <= floor {
                        reached_floor = true;
                        break;
                    }
                    cursor = Point::Back(i - 1);
                    keep(&mut events, pdu);
                    if events.len() == limit {
                        break;
                    }
                }
                if reached_floor && events.len() < limit {
                    if matches!(to, Some(Point::Back(_))) {
                        return Ok(reached_an_end(events, cursor));
                    }
                    cursor = Point::Live(0);
                }
            }
            (Dir::Forward, Point::Live(p)) => {
                let now = h.stream.current();
                let ceiling = match to {
                    Some(Point::Live(q)) => q,
                    Some(Point::Back(_)) => 0,
                    None => now,
                };
                let after = p.max(vis.from.saturating_sub(1));
                let upto = ceiling.min(vis.to).min(now);
                let batch =
                    h.rooms
                        .timeline_range(room, after, upto, (limit - events.len()) * 2, dir)?;
                if batch.is_empty() {
                    return Ok(reached_an_end(events, cursor));
                }
                for (pos, pdu) in batch {
                    cursor = Point::Live(pos);
                    if vis.contains(pos) {
                        keep(&mut events, pdu);
                    }
                    if events.len() == limit {
                        break;
                    }
                }
            }
        }
    }
    Ok(Page {
        events,
        end: Some(cursor),
    })
}

/// A page that reached an end of what the user may see. Like Synapse, a page with events still
/// gives the point after its last one (the next request then answers an empty page without
/// `end`): clients (matrix-rust-sdk) take a missing `end` beside events as "nothing before
/// these", and Synapse's shape is what they are written against.
fn reached_an_end(events: Vec<PduRef>, cursor: Point) -> Page {
    Page {
        end: (!events.is_empty()).then_some(cursor),
        events,
    }
}
