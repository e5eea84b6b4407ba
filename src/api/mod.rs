//! The HTTP surface: the router, request extraction and fallbacks.

pub mod admin;
pub mod client;
pub mod errors;
pub mod extract;
pub mod federation;
pub mod media;
mod observe;

use std::sync::Arc;

use axum::{
    handler::Handler,
    http::{Method, StatusCode},
    routing::{get, on, MethodFilter},
    Router,
};
use ruma::api::{
    client::{
        account, alias, config, context, device, discovery, filter, membership, message, profile,
        push, read_marker, receipt, redact, relations, room, session, state, sync::sync_events,
        threads, typing,
    },
    path_builder::PathBuilder,
    IncomingRequest, Metadata,
};
use tower_http::cors::{Any, CorsLayer};

use crate::{
    error::{ErrCode, Error},
    Haven,
};
use client::{account as acc, events as ev, misc, push as pu, relations as rel, rooms as rm};

type R = Router<Arc<Haven>>;

fn method_filter(m: &Method) -> MethodFilter {
    match *m {
        Method::GET => MethodFilter::GET,
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

/// Registers `handler` on every path (stable and legacy) of the ruma endpoint `Req`.
fn add<Req, H, X>(mut r: R, handler: H) -> R
where
    Req: IncomingRequest,
    H: Handler<X, Arc<Haven>> + Clone,
    X: 'static,
{
    for path in Req::PATH_BUILDER.all_paths() {
        r = r.route(path, on(method_filter(&Req::METHOD), handler.clone()));
    }
    r
}

async fn unrecognized() -> Error {
    Error::unrecognized()
}

async fn method_not_allowed() -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrCode::Unrecognized,
        "Method not allowed for this endpoint",
    )
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// Ready for traffic: every listener bound and the database answering.
async fn readyz(
    axum::extract::State(h): axum::extract::State<Arc<Haven>>,
) -> Result<&'static str, Error> {
    let listening = h.ready.load(std::sync::atomic::Ordering::Acquire);
    let db = h.db.t.meta.get(&"schema_version".to_owned());
    match (listening, db) {
        (true, Ok(Some(_))) => Ok("ready"),
        (false, _) => Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrCode::Unknown,
            "Starting: listeners not bound yet",
        )),
        (_, Err(e)) => Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrCode::Unknown,
            format!("The database does not answer: {e}"),
        )),
        (_, Ok(None)) => Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrCode::Unknown,
            "The database has no schema version",
        )),
    }
}

/// Prometheus text format, for the metrics listener.
pub fn metrics_router(h: Arc<Haven>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(h): axum::extract::State<Arc<Haven>>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        crate::metrics::METRICS.render(&h),
                    )
                },
            ),
        )
        .with_state(h)
}

/// The server-server API.
fn federation_routes(mut r: R) -> R {
    use ruma::api::federation::{discovery as fd, query as fq};
    r = add::<fd::get_server_keys::v2::Request, _, _>(r, federation::server_keys);
    r = add::<fd::get_remote_server_keys_batch::v2::Request, _, _>(r, federation::query_keys_batch);
    r = add::<fd::get_remote_server_keys::v2::Request, _, _>(r, federation::query_keys);
    r = add::<fd::get_server_version::v1::Request, _, _>(r, federation::version);
    r = add::<fq::get_profile_information::v1::Request, _, _>(r, federation::profile);
    {
        use ruma::api::federation::{event as fe, membership as fmb, transactions as ft};
        r = add::<ft::send_transaction_message::v1::Request, _, _>(r, federation::send_transaction);
        r = add::<fmb::prepare_join_event::v1::Request, _, _>(r, federation::make_join);
        r = add::<fmb::create_join_event::v2::Request, _, _>(r, federation::send_join);
        r = add::<fmb::create_invite::v2::Request, _, _>(r, federation::invite);
        r = add::<fmb::prepare_leave_event::v1::Request, _, _>(r, federation::make_leave);
        r = add::<fmb::create_leave_event::v2::Request, _, _>(r, federation::send_leave);
        r = add::<fmb::prepare_knock_event::v1::Request, _, _>(r, federation::make_knock);
        r = add::<ruma::api::federation::space::get_hierarchy::v1::Request, _, _>(
            r,
            federation::hierarchy,
        );
        use ruma::api::federation::directory as fdir;
        r = add::<fdir::get_public_rooms::v1::Request, _, _>(r, federation::public_rooms);
        r = add::<fdir::get_public_rooms_filtered::v1::Request, _, _>(
            r,
            federation::public_rooms_filtered,
        );
        r = add::<fmb::create_knock_event::v1::Request, _, _>(r, federation::send_knock);
        r = add::<fe::get_event::v1::Request, _, _>(r, federation::event);
        r = add::<fe::get_room_state_ids::v1::Request, _, _>(r, federation::state_ids);
        r = add::<fe::get_missing_events::v1::Request, _, _>(r, federation::missing_events);
        r = add::<ruma::api::federation::backfill::get_backfill::v1::Request, _, _>(
            r,
            federation::backfill,
        );
        use ruma::api::federation::{device as fdv, keys as fk};
        r = add::<fk::get_keys::v1::Request, _, _>(r, federation::user_keys_query);
        r = add::<fk::claim_keys::v1::Request, _, _>(r, federation::user_keys_claim);
        r = add::<fdv::get_devices::v1::Request, _, _>(r, federation::user_devices);
        use ruma::api::federation::authorization as fa;
        r = add::<fe::get_room_state::v1::Request, _, _>(r, federation::state);
        r = add::<fa::get_event_authorization::v1::Request, _, _>(r, federation::event_auth);
        r = add::<fq::get_room_information::v1::Request, _, _>(r, federation::query_directory);
    }
    r
}

pub fn router(h: Arc<Haven>) -> Router {
    let mut r: R = Router::new();
    r = add::<discovery::get_supported_versions::Request, _, _>(r, misc::versions);
    r = add::<discovery::get_capabilities::v3::Request, _, _>(r, misc::capabilities);
    r = federation_routes(r);
    r = r
        .route("/.well-known/matrix/client", get(misc::well_known_client))
        .route("/.well-known/matrix/server", get(misc::well_known_server))
        .route("/_matrix/client/v3/voip/turnServer", get(misc::turn_server))
        .route("/_matrix/client/r0/voip/turnServer", get(misc::turn_server))
        .route("/healthz", get(healthz))
        .route(
            "/_matrix/media/v3/upload",
            axum::routing::post(media::upload),
        )
        .route(
            "/_matrix/media/r0/upload",
            axum::routing::post(media::upload),
        )
        .route(
            "/_matrix/media/v3/download/{server}/{id}",
            get(media::download_legacy),
        )
        .route(
            "/_matrix/media/v3/download/{server}/{id}/{name}",
            get(media::download_legacy_named),
        )
        .route(
            "/_matrix/media/r0/download/{server}/{id}",
            get(media::download_legacy),
        )
        .route(
            "/_matrix/client/v1/media/download/{server}/{id}",
            get(media::download),
        )
        .route(
            "/_matrix/client/v1/media/download/{server}/{id}/{name}",
            get(media::download_named),
        )
        .route(
            "/_matrix/client/v1/media/thumbnail/{server}/{id}",
            get(media::thumbnail),
        )
        .route(
            "/_matrix/media/v3/thumbnail/{server}/{id}",
            get(media::thumbnail_legacy),
        )
        .route(
            "/_matrix/media/r0/thumbnail/{server}/{id}",
            get(media::thumbnail_legacy),
        )
        .route(
            "/_matrix/client/v1/media/preview_url",
            get(media::preview_url),
        )
        .route("/_matrix/media/v3/preview_url", get(media::preview_url))
        .route("/_matrix/client/v1/media/config", get(media::config))
        .route("/_matrix/media/v3/config", get(media::config))
        .route("/readyz", get(readyz));

    r = add::<account::register::v3::Request, _, _>(r, acc::register);
    r = add::<account::get_username_availability::v3::Request, _, _>(r, acc::register_available);
    r = add::<account::check_registration_token_validity::v1::Request, _, _>(
        r,
        acc::registration_token_validity,
    );
    r = add::<session::get_login_types::v3::Request, _, _>(r, acc::login_types);
    r = add::<session::login::v3::Request, _, _>(r, acc::login);
    r = add::<session::logout::v3::Request, _, _>(r, acc::logout);
    r = add::<session::logout_all::v3::Request, _, _>(r, acc::logout_all);
    r = add::<account::whoami::v3::Request, _, _>(r, acc::whoami);
    r = add::<account::change_password::v3::Request, _, _>(r, acc::change_password);
    r = add::<account::deactivate::v3::Request, _, _>(r, acc::deactivate);
    r = add::<device::get_devices::v3::Request, _, _>(r, acc::get_devices);
    r = add::<device::get_device::v3::Request, _, _>(r, acc::get_device);
    r = add::<device::update_device::v3::Request, _, _>(r, acc::update_device);
    r = add::<device::delete_device::v3::Request, _, _>(r, acc::delete_device);
    r = add::<device::delete_devices::v3::Request, _, _>(r, acc::delete_devices);

    r = add::<room::create_room::v3::Request, _, _>(r, rm::create_room);
    r = add::<membership::join_room_by_id::v3::Request, _, _>(r, rm::join_by_id);
    r = add::<membership::join_room_by_id_or_alias::v3::Request, _, _>(r, rm::join_by_id_or_alias);
    r = add::<membership::leave_room::v3::Request, _, _>(r, rm::leave);
    r = add::<membership::invite_user::v3::Request, _, _>(r, rm::invite);
    r = add::<membership::kick_user::v3::Request, _, _>(r, rm::kick);
    r = add::<membership::ban_user::v3::Request, _, _>(r, rm::ban);
    r = add::<membership::unban_user::v3::Request, _, _>(r, rm::unban);
    r = add::<membership::forget_room::v3::Request, _, _>(r, rm::forget);
    r = add::<membership::joined_rooms::v3::Request, _, _>(r, rm::joined);

    r = add::<message::send_message_event::v3::Request, _, _>(r, ev::send_message);
    r = add::<state::send_state_event::v3::Request, _, _>(r, ev::send_state);
    r = add::<state::get_state_event_for_key::v3::Request, _, _>(r, ev::get_state_for_key);
    // The empty state key may be written as `/state/{type}` or `/state/{type}/`.
    for v in ["r0", "v3"] {
        let p = format!("/_matrix/client/{v}/rooms/{{room_id}}/state/{{event_type}}");
        r = r.route(
            &p,
            on(MethodFilter::PUT, ev::send_state).on(MethodFilter::GET, ev::get_state_for_key),
        );
        r = r.route(
            &format!("{p}/"),
            on(MethodFilter::PUT, ev::send_state).on(MethodFilter::GET, ev::get_state_for_key),
        );
    }
    r = add::<state::get_state_events::v3::Request, _, _>(r, ev::get_state);
    r = add::<membership::get_member_events::v3::Request, _, _>(r, ev::members);
    r = add::<membership::joined_members::v3::Request, _, _>(r, ev::joined_members);
    r = add::<message::get_message_events::v3::Request, _, _>(r, ev::messages);
    r = add::<context::get_context::v3::Request, _, _>(r, ev::context);
    r = add::<relations::get_relating_events::v1::Request, _, _>(r, rel::relating);
    r = add::<relations::get_relating_events_with_rel_type::v1::Request, _, _>(
        r,
        rel::relating_with_type,
    );
    r = add::<relations::get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
        r,
        rel::relating_with_type_and_event_type,
    );
    r = add::<threads::get_threads::v1::Request, _, _>(r, rel::threads);
    r = add::<room::get_room_event::v3::Request, _, _>(r, ev::get_event);
    r = add::<redact::redact_event::v3::Request, _, _>(r, ev::redact);

    r = add::<alias::create_alias::v3::Request, _, _>(r, misc::alias_create);
    r = add::<alias::get_alias::v3::Request, _, _>(r, misc::alias_get);
    r = add::<alias::delete_alias::v3::Request, _, _>(r, misc::alias_delete);
    r = add::<room::aliases::v3::Request, _, _>(r, misc::room_aliases);
    r = add::<profile::get_profile::v3::Request, _, _>(r, misc::profile);
    r = add::<profile::get_display_name::v3::Request, _, _>(r, misc::get_displayname);
    r = add::<profile::set_display_name::v3::Request, _, _>(r, misc::set_displayname);
    r = add::<profile::get_avatar_url::v3::Request, _, _>(r, misc::get_avatar);
    r = add::<profile::set_avatar_url::v3::Request, _, _>(r, misc::set_avatar);
    r = add::<config::set_global_account_data::v3::Request, _, _>(r, misc::set_global_ad);
    r = add::<config::get_global_account_data::v3::Request, _, _>(r, misc::get_global_ad);
    r = add::<config::set_room_account_data::v3::Request, _, _>(r, misc::set_room_ad);
    r = add::<config::get_room_account_data::v3::Request, _, _>(r, misc::get_room_ad);
    r = add::<typing::create_typing_event::v3::Request, _, _>(r, misc::typing);
    r = add::<receipt::create_receipt::v3::Request, _, _>(r, misc::receipt);
    r = add::<read_marker::set_read_marker::v3::Request, _, _>(r, misc::read_markers);
    r = add::<filter::create_filter::v3::Request, _, _>(r, misc::filter_create);
    r = add::<filter::get_filter::v3::Request, _, _>(r, misc::filter_get);
    {
        use client::backup as kb;
        use ruma::api::client::backup as b;
        r = add::<b::create_backup_version::v3::Request, _, _>(r, kb::create_version);
        r = add::<b::get_latest_backup_info::v3::Request, _, _>(r, kb::latest);
        r = add::<b::get_backup_info::v3::Request, _, _>(r, kb::get_version);
        r = add::<b::update_backup_version::v3::Request, _, _>(r, kb::update_version);
        r = add::<b::delete_backup_version::v3::Request, _, _>(r, kb::delete_version);
        r = add::<b::add_backup_keys::v3::Request, _, _>(r, kb::add_keys);
        r = add::<b::add_backup_keys_for_room::v3::Request, _, _>(r, kb::add_room_keys);
        r = add::<b::add_backup_keys_for_session::v3::Request, _, _>(r, kb::add_session_key);
        r = add::<b::get_backup_keys::v3::Request, _, _>(r, kb::get_keys);
        r = add::<b::get_backup_keys_for_room::v3::Request, _, _>(r, kb::get_room_keys);
        r = add::<b::get_backup_keys_for_session::v3::Request, _, _>(r, kb::get_session_key);
        r = add::<b::delete_backup_keys::v3::Request, _, _>(r, kb::delete_keys);
        r = add::<b::delete_backup_keys_for_room::v3::Request, _, _>(r, kb::delete_room_keys);
        r = add::<b::delete_backup_keys_for_session::v3::Request, _, _>(r, kb::delete_session_key);
    }
    {
        use client::directory as dir;
        use ruma::api::client::{directory as d, room as rm2, tag, thirdparty, user_directory};
        r = add::<d::get_public_rooms::v3::Request, _, _>(r, dir::public);
        r = add::<d::get_public_rooms_filtered::v3::Request, _, _>(r, dir::public_filtered);
        r = add::<d::get_room_visibility::v3::Request, _, _>(r, dir::visibility);
        r = add::<d::set_room_visibility::v3::Request, _, _>(r, dir::set_visibility);
        r = add::<user_directory::search_users::v3::Request, _, _>(r, dir::search_users);
        r = add::<tag::get_tags::v3::Request, _, _>(r, dir::tags);
        r = add::<tag::create_tag::v3::Request, _, _>(r, dir::set_tag);
        r = add::<tag::delete_tag::v3::Request, _, _>(r, dir::delete_tag);
        r = add::<thirdparty::get_protocols::v3::Request, _, _>(r, dir::protocols);
        r = add::<rm2::report_content::v3::Request, _, _>(r, dir::report_event);
        r = add::<rm2::report_room::v3::Request, _, _>(r, dir::report_room);
        r = add::<rm2::get_summary::v1::Request, _, _>(r, dir::summary);
        r = add::<ruma::api::client::space::get_hierarchy::v1::Request, _, _>(r, dir::hierarchy);
    }
    r = add::<ruma::api::client::presence::set_presence::v3::Request, _, _>(
        r,
        client::presence::set,
    );
    r = add::<ruma::api::client::presence::get_presence::v3::Request, _, _>(
        r,
        client::presence::get,
    );
    r = add::<ruma::api::client::search::search_events::v3::Request, _, _>(
        r,
        client::search::search,
    );
    r = add::<room::upgrade_room::v3::Request, _, _>(r, rm::upgrade);
    r = add::<ruma::api::client::sync::sync_events::v5::Request, _, _>(r, misc::sliding_sync);
    r = add::<ruma::api::client::knock::knock_room::v3::Request, _, _>(r, rm::knock);
    r = add::<push::get_pushrules_all::v3::Request, _, _>(r, pu::all);
    r = add::<push::get_pushrules_global_scope::v3::Request, _, _>(r, pu::global);
    r = add::<push::get_pushrule::v3::Request, _, _>(r, pu::get);
    r = add::<push::set_pushrule::v3::Request, _, _>(r, pu::set);
    r = add::<push::delete_pushrule::v3::Request, _, _>(r, pu::delete);
    r = add::<push::get_pushrule_enabled::v3::Request, _, _>(r, pu::enabled);
    r = add::<push::set_pushrule_enabled::v3::Request, _, _>(r, pu::set_enabled);
    r = add::<push::get_pushrule_actions::v3::Request, _, _>(r, pu::actions);
    r = add::<push::set_pushrule_actions::v3::Request, _, _>(r, pu::set_actions);
    r = add::<push::get_pushers::v3::Request, _, _>(r, pu::pushers);
    r = add::<push::set_pusher::v3::Request, _, _>(r, pu::set_pusher);
    r = add::<push::get_notifications::v3::Request, _, _>(r, pu::notifications);
    r = add::<sync_events::v3::Request, _, _>(r, misc::sync);
    r = add::<ruma::api::client::appservice::request_ping::v1::Request, _, _>(
        r,
        client::appservice::ping,
    );
    r = add::<ruma::api::client::to_device::send_event_to_device::v3::Request, _, _>(
        r,
        misc::send_to_device,
    );
    r = add::<ruma::api::client::keys::upload_keys::v3::Request, _, _>(r, client::keys::upload);
    r = add::<ruma::api::client::keys::get_keys::v3::Request, _, _>(r, client::keys::query);
    r = add::<ruma::api::client::keys::claim_keys::v3::Request, _, _>(r, client::keys::claim);
    r = add::<ruma::api::client::keys::get_key_changes::v3::Request, _, _>(
        r,
        client::keys::changes,
    );
    r = add::<ruma::api::client::keys::upload_signing_keys::v3::Request, _, _>(
        r,
        client::keys::upload_signing_keys,
    );
    r = add::<ruma::api::client::keys::upload_signatures::v3::Request, _, _>(
        r,
        client::keys::upload_signatures,
    );

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::ACCEPT,
            axum::http::HeaderName::from_static("x-requested-with"),
        ]);
    r = r.merge(admin::routes(h.clone()));
    // Only the endpoint tag is per route (it needs the matched path). The other layers wrap the
    // routed whole once: `Router::layer` would clone each of them into every one of the
    // hundreds of routes (33 MB at start-up, measured).
    let routed = r
        .route_layer(axum::middleware::from_fn(observe::tag_endpoint))
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(h);
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn(observe::observe))
            .layer(cors)
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                errors::panicked,
            ))
            .layer(axum::middleware::from_fn(errors::matrix_errors))
            .service(routed),
    )
}

/// Keeps the `Metadata` import meaningful for `Req::METHOD`.
#[allow(dead_code)]
fn _metadata_in_scope<T: Metadata>() {}
