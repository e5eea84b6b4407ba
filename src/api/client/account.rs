//! Registration, login, logout, whoami, password change, deactivation and devices.

use std::sync::Arc;

use axum::extract::State;
use ruma::api::client::{
    account::{change_password, deactivate, get_username_availability, register, whoami},
    device::{self, delete_device, delete_devices, get_device, get_devices, update_device},
    session::{get_login_types, login, logout, logout_all},
    uiaa::UserIdentifier,
};
use ruma::{MilliSecondsSinceUnixEpoch, UInt, UserId};

use crate::{
    api::extract::{ApiResult, Ruma, RumaResponse},
    config::RegistrationMode,
    error::{ErrCode, Error},
    ratelimit::Action,
    users::uiaa::{StageContext, DUMMY, PASSWORD, REGISTRATION_TOKEN},
    Haven,
};

fn auth_dict<T>(r: &Ruma<T>) -> Option<&serde_json::Value> {
    r.json.as_ref().and_then(|j| j.get("auth"))
}

pub async fn register(
    State(h): State<Arc<Haven>>,
    r: Ruma<register::v3::Request>,
) -> ApiResult<register::v3::Response> {
    let cfg = &h.config.registration;
    if r.body.kind == register::RegistrationKind::Guest {
        return Err(Error::forbidden("Guest access is not enabled").into_guest());
    }
    let as_login = r.body.login_type == Some(register::LoginType::ApplicationService)
        || auth_dict(&r)
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str())
            == Some("m.login.application_service");
    if let Some(asv) = r.session.as_ref().and_then(|s| s.appservice.clone()) {
        if !as_login {
            return Err(Error::bad_request(
                ErrCode::Unknown,
                "Appservices register users with type m.login.application_service",
            ));
        }
        return register_for_appservice(&h, &r, &asv).await;
    }
    if as_login {
        return Err(Error::unknown_token(false));
    }
    if cfg.mode == RegistrationMode::Closed {
        return Err(Error::forbidden("Registration is disabled"));
    }
    let localpart = match &r.body.username {
        Some(u) => u.to_lowercase(),
        None => format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
    };
    let user_id = h.users.user_id_for_person(&localpart)?;
    if let Some(p) = &r.body.password {
        crate::users::password::acceptable(p)?;
    }
    if h.users.exists(&user_id)? {
        return Err(Error::bad_request(
            ErrCode::UserInUse,
            "User ID already taken",
        ));
    }
    if h.appservices.exclusive_user_owner(&user_id).is_some() {
        return Err(Error::bad_request(
            ErrCode::Exclusive,
            "This user ID is reserved by an appservice",
        ));
    }
    let flows: Vec<Vec<&str>> = match cfg.mode {
        RegistrationMode::Token => vec![vec![REGISTRATION_TOKEN]],
        _ => vec![vec![DUMMY]],
    };
    let ctx = StageContext {
        user: None,
        static_tokens: &cfg.tokens,
    };
    h.users
        .uiaa
        .authenticate(&h.users, auth_dict(&r), &flows, ctx)
        .await?;
    // Counted once the client has completed the flows (each registration takes two requests).
    h.actions.check(
        Action::Registration,
        &r.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    )?;
    if cfg.mode == RegistrationMode::Token {
        let token = auth_dict(&r)
            .and_then(|a| a.get("token"))
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        if !h.users.use_registration_token(token, &cfg.tokens)? {
            return Err(Error::forbidden("Registration token is no longer valid"));
        }
    }
    let resp = create_account(&h, &r, &user_id, &localpart, r.body.password.as_deref()).await?;
    tracing::info!(user = %user_id, "registered");
    crate::appservice::greeting::greet(&h, &user_id).await;
    Ok(RumaResponse(resp))
}

/// Creates the account (display name = localpart) and, unless `inhibit_login`, its first
/// session; durable before it returns.
async fn create_account(
    h: &Haven,
    r: &Ruma<register::v3::Request>,
    user_id: &ruma::UserId,
    localpart: &str,
    password: Option<&str>,
) -> Result<register::v3::Response, Error> {
    h.users.create(user_id, password, false).await?;
    h.users
        .set_profile(user_id, Some(Some(localpart.to_owned())), None)?;
    let mut resp = register::v3::Response::new(user_id.to_owned());
    if !r.body.inhibit_login {
        let (device, token) = h.users.create_session(
            user_id,
            r.body.device_id.clone(),
            r.body.initial_device_display_name.clone(),
        )?;
        resp.access_token = Some(token);
        resp.device_id = Some(device);
    }
    h.db.durable().await?;
    Ok(resp)
}

/// Registration of a namespace user by its appservice (`m.login.application_service`):
/// no password, no UIA, only inside the appservice's user namespaces.
async fn register_for_appservice(
    h: &Haven,
    r: &Ruma<register::v3::Request>,
    asv: &crate::appservice::Appservice,
) -> ApiResult<register::v3::Response> {
    let localpart = r
        .body
        .username
        .clone()
        .ok_or_else(|| Error::bad_request(ErrCode::MissingParam, "username is required"))?;
    let user_id = h.users.user_id_for(&localpart)?;
    if !asv.owns_user(&user_id) {
        return Err(Error::bad_request(
            ErrCode::Exclusive,
            "User ID is outside the appservice's namespaces",
        ));
    }
    Ok(RumaResponse(
        create_account(h, r, &user_id, &localpart, None).await?,
    ))
}

pub async fn register_available(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_username_availability::v3::Request>,
) -> ApiResult<get_username_availability::v3::Response> {
    if h.config.registration.mode == RegistrationMode::Closed {
        return Err(Error::forbidden("Registration is disabled"));
    }
    let user_id = h
        .users
        .user_id_for_person(&r.body.username.to_lowercase())?;
    if h.users.exists(&user_id)? {
        return Err(Error::bad_request(
            ErrCode::UserInUse,
            "User ID already taken",
        ));
    }
    Ok(RumaResponse(get_username_availability::v3::Response::new(
        true,
    )))
}

pub async fn login_types(
    _: State<Arc<Haven>>,
    _r: Ruma<get_login_types::v3::Request>,
) -> ApiResult<get_login_types::v3::Response> {
    let flows = vec![
        get_login_types::v3::LoginType::Password(Default::default()),
        get_login_types::v3::LoginType::ApplicationService(Default::default()),
    ];
    Ok(RumaResponse(get_login_types::v3::Response::new(flows)))
}

/// Opens the session a successful login asked for (on its device ID if given).
async fn start_login_session(
    h: &Haven,
    r: &Ruma<login::v3::Request>,
    user_id: ruma::OwnedUserId,
) -> Result<login::v3::Response, Error> {
    let (device, token) = h.users.create_session(
        &user_id,
        r.body.device_id.clone(),
        r.body.initial_device_display_name.clone(),
    )?;
    h.db.durable().await?;
    Ok(login::v3::Response::new(user_id, token, device))
}

#[allow(deprecated)] // the legacy `user` field is still sent by older clients
pub async fn login(
    State(h): State<Arc<Haven>>,
    r: Ruma<login::v3::Request>,
) -> ApiResult<login::v3::Response> {
    if let login::v3::LoginInfo::ApplicationService(a) = &r.body.login_info {
        let asv = r
            .session
            .as_ref()
            .and_then(|s| s.appservice.clone())
            .ok_or_else(|| Error::unknown_token(false))?;
        let claimed = match (&a.identifier, &a.user) {
            (Some(UserIdentifier::Matrix(m)), _) => m.user.clone(),
            (None, Some(u)) => u.clone(),
            _ => {
                return Err(Error::bad_request(
                    ErrCode::MissingParam,
                    "Missing identifier",
                ))
            }
        };
        let user_id = if claimed.starts_with('@') {
            UserId::parse(claimed).map_err(|_| Error::invalid_param("Invalid user ID"))?
        } else {
            h.users.user_id_for(&claimed)?
        };
        if !asv.owns_user(&user_id) {
            return Err(Error::new(
                axum::http::StatusCode::FORBIDDEN,
                ErrCode::Exclusive,
                "User is outside the appservice's namespaces",
            ));
        }
        if !h.users.exists(&user_id)? {
            return Err(Error::forbidden(
                "The appservice has not registered this user",
            ));
        }
        return Ok(RumaResponse(start_login_session(&h, &r, user_id).await?));
    }
    let login::v3::LoginInfo::Password(p) = &r.body.login_info else {
        return Err(Error::bad_request(
            ErrCode::Unknown,
            "Unsupported login type",
        ));
    };
    let claimed = match (&p.identifier, &p.user) {
        (Some(UserIdentifier::Matrix(m)), _) => m.user.clone(),
        (None, Some(u)) => u.clone(),
        (Some(_), _) => {
            return Err(Error::bad_request(
                ErrCode::Unknown,
                "Only user identifiers are supported",
            ))
        }
        (None, None) => {
            return Err(Error::bad_request(
                ErrCode::MissingParam,
                "Missing identifier",
            ))
        }
    };
    let user_id = if claimed.starts_with('@') {
        UserId::parse(claimed.to_lowercase())
            .map_err(|_| Error::forbidden("Invalid username or password"))?
    } else {
        h.users
            .user_id_for(&claimed.to_lowercase())
            .map_err(|_| Error::forbidden("Invalid username or password"))?
    };
    if user_id.server_name() != h.config.server_name {
        return Err(Error::forbidden("Invalid username or password"));
    }
    // Guessing passwords: attempts per address and per account, and failures per account
    // (refused up front once spent, counted when a password is wrong).
    let ip = r.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
    h.actions.check(Action::LoginAddress, &ip)?;
    h.actions.check(Action::LoginAccount, user_id.as_str())?;
    if !h
        .actions
        .would_allow(Action::LoginFailure, user_id.as_str())
    {
        h.actions.check(Action::LoginFailure, user_id.as_str())?;
    }
    if let Some(u) = h.users.get(&user_id)? {
        if u.deactivated {
            return Err(Error::forbidden("This account has been deactivated")
                .with_code(ErrCode::UserDeactivated));
        }
    }
    if !h.users.check_password(&user_id, &p.password).await? {
        let _ = h.actions.check(Action::LoginFailure, user_id.as_str());
        return Err(Error::forbidden("Invalid username or password"));
    }
    let mut resp = start_login_session(&h, &r, user_id).await?;
    resp.home_server = Some(h.config.server_name.clone());
    Ok(RumaResponse(resp))
}

pub async fn logout(
    State(h): State<Arc<Haven>>,
    r: Ruma<logout::v3::Request>,
) -> ApiResult<logout::v3::Response> {
    let s = r.session()?;
    h.users.delete_device(&s.user_id, &s.device_id)?;
    crate::users::keys::mark_changed(&h.db, &h.stream, &s.user_id).await?;
    h.db.durable().await?;
    Ok(RumaResponse(logout::v3::Response::new()))
}

pub async fn logout_all(
    State(h): State<Arc<Haven>>,
    r: Ruma<logout_all::v3::Request>,
) -> ApiResult<logout_all::v3::Response> {
    h.users.delete_devices_except(r.user()?, None)?;
    crate::users::keys::mark_changed(&h.db, &h.stream, r.user()?).await?;
    h.db.durable().await?;
    Ok(RumaResponse(logout_all::v3::Response::new()))
}

pub async fn whoami(
    _: State<Arc<Haven>>,
    r: Ruma<whoami::v3::Request>,
) -> ApiResult<whoami::v3::Response> {
    let s = r.session()?;
    let mut resp = whoami::v3::Response::new(s.user_id.clone(), false);
    resp.device_id = Some(s.device_id.clone());
    Ok(RumaResponse(resp))
}

/// UIA with the account's password, as required by sensitive account operations.
/// Appservices acting for their users skip it (they manage those users' devices, MSC4190).
pub(crate) async fn password_uia<T>(h: &Haven, r: &Ruma<T>) -> Result<(), Error> {
    if r.session()?.appservice.is_some() {
        return Ok(());
    }
    let user = r.user()?;
    let ctx = StageContext {
        user: Some(user),
        static_tokens: &[],
    };
    h.users
        .uiaa
        .authenticate(&h.users, auth_dict(r), &[vec![PASSWORD]], ctx)
        .await
}

pub async fn change_password(
    State(h): State<Arc<Haven>>,
    r: Ruma<change_password::v3::Request>,
) -> ApiResult<change_password::v3::Response> {
    password_uia(&h, &r).await?;
    let s = r.session()?;
    h.users
        .set_password(&s.user_id, &r.body.new_password)
        .await?;
    if r.body.logout_devices {
        h.users
            .delete_devices_except(&s.user_id, Some(&s.device_id))?;
        crate::users::keys::mark_changed(&h.db, &h.stream, &s.user_id).await?;
    }
    h.db.durable().await?;
    Ok(RumaResponse(change_password::v3::Response::new()))
}

pub async fn deactivate(
    State(h): State<Arc<Haven>>,
    r: Ruma<deactivate::v3::Request>,
) -> ApiResult<deactivate::v3::Response> {
    password_uia(&h, &r).await?;
    let user = r.user()?.clone();
    crate::admin::deactivate_account(&h, &user).await?;
    Ok(RumaResponse(deactivate::v3::Response::new(
        ruma::api::client::account::ThirdPartyIdRemovalStatus::NoSupport,
    )))
}

fn device_view(id: ruma::OwnedDeviceId, d: crate::users::DeviceRecord) -> device::Device {
    let mut dev = device::Device::new(id);
    dev.display_name = d.display_name;
    dev.last_seen_ip = d.last_seen_ip;
    dev.last_seen_ts = d
        .last_seen_ts
        .and_then(UInt::new)
        .map(MilliSecondsSinceUnixEpoch);
    dev
}

pub async fn get_devices(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_devices::v3::Request>,
) -> ApiResult<get_devices::v3::Response> {
    let devices = h
        .users
        .devices(r.user()?)?
        .into_iter()
        .map(|(id, d)| device_view(id, d))
        .collect();
    Ok(RumaResponse(get_devices::v3::Response::new(devices)))
}

pub async fn get_device(
    State(h): State<Arc<Haven>>,
    r: Ruma<get_device::v3::Request>,
) -> ApiResult<get_device::v3::Response> {
    let d = h
        .users
        .device(r.user()?, &r.body.device_id)?
        .ok_or_else(|| Error::not_found("Unknown device"))?;
    Ok(RumaResponse(get_device::v3::Response::new(device_view(
        r.body.device_id.clone(),
        d,
    ))))
}

pub async fn update_device(
    State(h): State<Arc<Haven>>,
    r: Ruma<update_device::v3::Request>,
) -> ApiResult<update_device::v3::Response> {
    let user = r.user()?;
    let from_appservice = r.session()?.appservice.is_some();
    if from_appservice && h.users.device(user, &r.body.device_id)?.is_none() {
        // MSC4190: appservices create their users' devices directly.
        h.users
            .create_device(user, &r.body.device_id, r.body.display_name.clone())?;
    } else {
        h.users
            .rename_device(user, &r.body.device_id, r.body.display_name.clone())?;
    }
    h.db.durable().await?;
    Ok(RumaResponse(update_device::v3::Response::new()))
}

pub async fn delete_device(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_device::v3::Request>,
) -> ApiResult<delete_device::v3::Response> {
    if h.users.device(r.user()?, &r.body.device_id)?.is_none() {
        return Err(Error::not_found("Unknown device"));
    }
    password_uia(&h, &r).await?;
    h.users.delete_device(r.user()?, &r.body.device_id)?;
    crate::users::keys::mark_changed(&h.db, &h.stream, r.user()?).await?;
    h.db.durable().await?;
    Ok(RumaResponse(delete_device::v3::Response::new()))
}

pub async fn delete_devices(
    State(h): State<Arc<Haven>>,
    r: Ruma<delete_devices::v3::Request>,
) -> ApiResult<delete_devices::v3::Response> {
    password_uia(&h, &r).await?;
    for d in &r.body.devices {
        h.users.delete_device(r.user()?, d)?;
    }
    crate::users::keys::mark_changed(&h.db, &h.stream, r.user()?).await?;
    h.db.durable().await?;
    Ok(RumaResponse(delete_devices::v3::Response::new()))
}

/// `GET /v1/register/m.login.registration_token/validity`: whether a token would be accepted.
pub async fn registration_token_validity(
    State(h): State<Arc<Haven>>,
    r: Ruma<ruma::api::client::account::check_registration_token_validity::v1::Request>,
) -> ApiResult<ruma::api::client::account::check_registration_token_validity::v1::Response> {
    let cfg = &h.config.registration;
    if cfg.mode == crate::config::RegistrationMode::Closed {
        return Err(Error::forbidden("Registration is closed on this server"));
    }
    let valid = h
        .users
        .registration_token_valid(&r.body.token, &cfg.tokens)?;
    Ok(RumaResponse(
        ruma::api::client::account::check_registration_token_validity::v1::Response::new(valid),
    ))
}
