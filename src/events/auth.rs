//! The one authorisation check, delegating to ruma-state-res's implementation of the room
//! version's rules. Local events pass through it exactly as remote ones will.

use ruma::{
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
    EventId, UserId,
};
use serde_json::value::RawValue;

use super::pdu::{Pdu, PduRef};
use crate::error::{Error, Result};

/// Which state entries a new event's `auth_events` must reference.
pub fn auth_types(
    kind: &TimelineEventType,
    sender: &UserId,
    state_key: Option<&str>,
    content: &RawValue,
    rules: &RoomVersionRules,
) -> Result<Vec<(StateEventType, String)>> {
    ruma::state_res::auth_types_for_event(kind, sender, state_key, content, &rules.authorization)
        .map_err(|e| Error::bad_json(format!("invalid event content: {e}")))
}

/// Checks `pdu` against its own auth events and against `state_before` (the room state it
/// would apply to). A failure is `M_FORBIDDEN` with the rule that failed.
pub fn check(
    pdu: &Pdu,
    rules: &RoomVersionRules,
    fetch_event: impl Fn(&EventId) -> Option<PduRef>,
    state_before: impl Fn(&StateEventType, &str) -> Option<PduRef>,
) -> Result<()> {
    ruma::state_res::check_state_independent_auth_rules(&rules.authorization, pdu, &fetch_event)
        .map_err(|e| Error::forbidden(format!("event not authorised: {e}")))?;
    ruma::state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, &state_before)
        .map_err(|e| Error::forbidden(format!("event not authorised: {e}")))?;
    Ok(())
}
