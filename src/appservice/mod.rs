//! The homeserver side of the Application Service API: registrations, as_token authentication
//! with user masquerading, namespace exclusivity, transaction delivery ([`sender`]), and the
//! queries and pings the homeserver sends to appservices ([`outbound`]).

pub mod greeting;
pub mod outbound;
pub mod registration;
pub mod sender;

use std::sync::Arc;

use ruma::{OwnedUserId, RoomAliasId, RoomId, UserId};

pub use registration::{LoadedRegistration, RegistrationError};

use crate::util::constant_time_eq;

/// One registered appservice.
#[derive(Debug)]
pub struct Appservice {
    pub r: LoadedRegistration,
    /// `@<sender_localpart>:<server_name>`
    pub sender: OwnedUserId,
    /// Wakes the transaction sender (after a successful ping).
    pub wake: tokio::sync::Notify,
}

impl Appservice {
    pub fn id(&self) -> &str {
        &self.r.reg.id
    }

    /// Whether `user` is in this appservice's user namespaces (or is its sender).
    pub fn owns_user(&self, user: &UserId) -> bool {
        user == self.sender || self.r.users.iter().any(|ns| ns.matches(user.as_str()))
    }

    pub fn owns_alias(&self, alias: &RoomAliasId) -> bool {
        self.r.aliases.iter().any(|ns| ns.matches(alias.as_str()))
    }

    pub fn owns_room(&self, room: &RoomId) -> bool {
        self.r.rooms.iter().any(|ns| ns.matches(room.as_str()))
    }

    pub fn rate_limited(&self) -> bool {
        self.r.reg.rate_limited.unwrap_or(true)
    }
}

/// All registered appservices.
#[derive(Debug, Default)]
pub struct Appservices {
    pub list: Vec<Arc<Appservice>>,
}

impl Appservices {
    /// Loads every registration file named in the config and validates them together.
    pub fn load(
        paths: &[std::path::PathBuf],
        server_name: &str,
    ) -> Result<Self, RegistrationError> {
        let mut regs = Vec::new();
        for p in paths {
            regs.push(registration::load(p)?);
        }
        registration::validate_set(&regs, server_name)?;
        let mut list = Vec::new();
        for r in regs {
            let sender = UserId::parse(format!("@{}:{}", r.reg.sender_localpart, server_name))
                .map_err(|e| RegistrationError {
                    file: r.file.clone(),
                    field: "sender_localpart".into(),
                    message: e.to_string(),
                })?;
            list.push(Arc::new(Appservice {
                r,
                sender,
                wake: tokio::sync::Notify::new(),
            }));
        }
        Ok(Self { list })
    }

    /// The appservice whose `as_token` this is. Every token is compared in constant time.
    pub fn by_token(&self, token: &str) -> Option<Arc<Appservice>> {
        let mut found = None;
        for a in &self.list {
            if constant_time_eq(a.r.reg.as_token.as_bytes(), token.as_bytes()) {
                found = Some(a.clone());
            }
        }
        found
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<Appservice>> {
        self.list.iter().find(|a| a.id() == id).cloned()
    }

    /// The appservice holding `user` in an exclusive namespace, if any.
    pub fn exclusive_user_owner(&self, user: &UserId) -> Option<Arc<Appservice>> {
        self.list
            .iter()
            .find(|a| {
                a.sender == user
                    || a.r
                        .users
                        .iter()
                        .any(|ns| ns.exclusive && ns.matches(user.as_str()))
            })
            .cloned()
    }

    pub fn exclusive_alias_owner(&self, alias: &RoomAliasId) -> Option<Arc<Appservice>> {
        self.list
            .iter()
            .find(|a| {
                a.r.aliases
                    .iter()
                    .any(|ns| ns.exclusive && ns.matches(alias.as_str()))
            })
            .cloned()
    }

    /// Appservices with any claim (exclusive or not) on the alias, for on-demand provisioning.
    pub fn alias_claimants(&self, alias: &RoomAliasId) -> Vec<Arc<Appservice>> {
        self.list
            .iter()
            .filter(|a| a.owns_alias(alias))
            .cloned()
            .collect()
    }

    pub fn user_claimants(&self, user: &UserId) -> Vec<Arc<Appservice>> {
        self.list
            .iter()
            .filter(|a| a.r.users.iter().any(|ns| ns.matches(user.as_str())))
            .cloned()
            .collect()
    }
}

/// Checks that `session` may create `alias`: aliases inside an appservice's exclusive
/// namespace are reserved for that appservice (`M_EXCLUSIVE`).
pub fn check_alias_allowed(
    h: &crate::Haven,
    alias: &RoomAliasId,
    session: &crate::users::Session,
) -> crate::error::Result<()> {
    if let Some(owner) = h.appservices.exclusive_alias_owner(alias) {
        if session.appservice.as_ref().map(|a| a.id()) != Some(owner.id()) {
            return Err(crate::error::Error::bad_request(
                crate::error::ErrCode::Exclusive,
                "This alias is reserved by an appservice",
            ));
        }
    }
    Ok(())
}

/// Resolves a local alias, asking the appservices that claim it to provision it on demand.
pub async fn resolve_alias(
    h: &crate::Haven,
    alias: &RoomAliasId,
) -> crate::error::Result<Option<ruma::OwnedRoomId>> {
    if alias.server_name() != h.key.server_name {
        return Ok(crate::federation::query::alias(h, alias)
            .await?
            .map(|(r, _)| r));
    }
    match h.rooms.resolve_alias(alias)? {
        Some(r) => Ok(Some(r)),
        None => outbound::query_alias(h, alias).await,
    }
}

/// An alias's room and the servers to reach it through, the alias's server first: for another
/// server's alias, all the servers that server answered; for ours, this server and every
/// server with members in the room.
pub async fn resolve_alias_servers(
    h: &crate::Haven,
    alias: &RoomAliasId,
) -> crate::error::Result<Option<(ruma::OwnedRoomId, Vec<ruma::OwnedServerName>)>> {
    if alias.server_name() != h.key.server_name {
        return Ok(crate::federation::query::alias(h, alias)
            .await?
            .map(|(room, answered)| {
                let mut servers = vec![alias.server_name().to_owned()];
                for s in answered {
                    if !servers.contains(&s) {
                        servers.push(s);
                    }
                }
                (room, servers)
            }));
    }
    match resolve_alias(h, alias).await? {
        Some(room) => {
            let servers = crate::federation::query::local_room_servers(h, &room)?;
            Ok(Some((room, servers)))
        }
        None => Ok(None),
    }
}

/// Whether a local user exists, asking the appservices that claim it to provision it on demand.
pub async fn user_exists(h: &crate::Haven, user: &UserId) -> crate::error::Result<bool> {
    if h.users.exists(user)? {
        return Ok(true);
    }
    Ok(outbound::query_user(h, user).await && h.users.exists(user)?)
}

/// Creates each appservice's sender user if it does not exist yet.
pub async fn ensure_senders(h: &crate::Haven) -> crate::error::Result<()> {
    for a in &h.appservices.list {
        if !h.users.exists(&a.sender)? {
            h.users.create(&a.sender, None, false).await?;
            h.users.set_profile(
                &a.sender,
                Some(Some(a.r.reg.sender_localpart.clone())),
                None,
            )?;
        }
    }
    h.db.durable().await?;
    Ok(())
}
