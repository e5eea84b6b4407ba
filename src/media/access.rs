//! Who may read an upload through the authenticated endpoints.
//!
//! The precise rule, "whoever may see an event that refers to it", cannot be applied: in an
//! encrypted room an attachment's `mxc://` URI travels only inside ciphertext, so the server
//! never learns which event refers to which upload (MSC3911 would make clients say so). The
//! rule is therefore about people: an upload is readable by
//! - its uploader (and the server's admins);
//! - anyone who is, or was and may still read the history of, in a room where the uploader
//!   has been a member: that is where the uploader can have shared it;
//! - anyone at all, when it is the uploader's profile picture (profiles are public here) or
//!   the picture of a room people can find without an invitation (public, knockable or
//!   restricted join rule, published in the directory, or world-readable history).
//!
//! Everyone else is told it does not exist, exactly as for an unknown ID, so nobody can probe
//! which uploads exist. What this does not stop: someone sharing one room with the uploader
//! can read what the uploader shared in another room, if they learn its ID.

use ruma::{events::StateEventType, RoomId, UserId};

use super::MediaRecord;
use crate::{error::Result, rooms::Rooms, users::Users};

/// Whether `reader` may read the local upload `mxc` (`mxc://server/id`) described by `rec`.
pub fn may_read(
    rooms: &Rooms,
    users: &Users,
    mxc: &str,
    rec: &MediaRecord,
    reader: &UserId,
) -> Result<bool> {
    let uploader = rec.uploader.as_ref();
    if reader == uploader {
        return Ok(true);
    }
    if users
        .get(uploader)?
        .is_some_and(|u| u.avatar_url.as_deref() == Some(mxc))
    {
        return Ok(true);
    }
    // Rooms of the reader's (usually few) where the uploader has been a member.
    for (room, own) in rooms.user_rooms(reader)? {
        let reads = matches!(own.membership.as_str(), "join" | "invite")
            || rooms.visible_range(&room, reader)?.is_some();
        if reads && has_been_member(rooms, &room, uploader)? {
            return Ok(true);
        }
    }
    for (room, _) in rooms.user_rooms(uploader)? {
        if is_room_picture(rooms, &room, mxc)? && is_findable(rooms, &room)? {
            return Ok(true);
        }
    }
    users.is_admin(reader)
}

/// Whether `user` has been joined to `room` (is, has left or was banned after joining; a
/// rejected invitation counts too, which only ever widens access to that user's uploads).
fn has_been_member(rooms: &Rooms, room: &RoomId, user: &UserId) -> Result<bool> {
    Ok(rooms
        .membership(room, user)?
        .is_some_and(|m| matches!(m.membership.as_str(), "join" | "leave" | "ban")))
}

fn is_room_picture(rooms: &Rooms, room: &RoomId, mxc: &str) -> Result<bool> {
    Ok(rooms
        .current_state(room, &StateEventType::RoomAvatar, "")?
        .and_then(|p| p.content_str("url"))
        .is_some_and(|url| url == mxc))
}

/// Whether people can see `room`'s name and picture without being invited to it.
fn is_findable(rooms: &Rooms, room: &RoomId) -> Result<bool> {
    Ok(matches!(
        rooms.join_rule(room)?.as_str(),
        "public" | "knock" | "restricted" | "knock_restricted"
    ) || rooms.is_published(room)?
        || rooms.history_visibility(room)? == "world_readable")
}
